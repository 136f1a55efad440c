"""Plain-file reads of a git directory, for commands that must start fast (no pygit2).

Each answers only the simple, common case and returns None otherwise; the caller then
asks pygit2, so an unusual repository (linked worktree, ``.git`` file, bare, another file
system on the way up, a symbolic or reftable ref) behaves exactly as before.
"""

from __future__ import annotations

import mmap
import os
import stat

_HEX = frozenset("0123456789abcdef")


def is_oid(text: str) -> bool:
    """A SHA-1 or SHA-256 object id in lower-case hex (no regex: compiling one costs a
    command's start ~0.5 ms)."""
    return len(text) in (40, 64) and _HEX.issuperset(text)


def _plain_config(text: str) -> bool:
    """False if the config makes the repository bare, moves its work tree or includes
    another file: cases left to pygit2."""
    for line in text.lower().splitlines():
        line = line.strip()
        if line.startswith("[include"):
            return False
        key, equals, value = line.partition("=")
        if equals and (key.strip() == "worktree" or (
                key.strip() == "bare" and value.strip() in ("true", "yes", "on", "1"))):
            return False
    return True


def discover(start: str) -> tuple[str, str] | None:
    """(work tree, git dir) when *start* (an absolute, resolved path) lies in a plain
    repository: a ``.git`` directory above it on the same file system, nothing that looks
    like a git directory on the way. None: let pygit2 discover it."""
    try:
        device = os.stat(start).st_dev
    except OSError:
        return None
    here = start
    while True:
        dot_git = os.path.join(here, ".git")
        try:
            mode = os.lstat(dot_git).st_mode
        except FileNotFoundError:
            mode = None
        except OSError:
            return None
        if mode is not None:
            return (here, dot_git) if stat.S_ISDIR(mode) and _plain(dot_git) \
                else None
        if _looks_like_git_dir(here):
            return None  # inside a git directory or a bare repository
        parent = os.path.dirname(here)
        try:
            if parent == here or os.stat(parent).st_dev != device:
                return None
        except OSError:
            return None
        here = parent


def _looks_like_git_dir(path: str) -> bool:
    return os.path.exists(os.path.join(path, "HEAD")) \
        and os.path.isdir(os.path.join(path, "objects"))


def _plain(git_dir: str) -> bool:
    """A git directory with its work tree just above it, as ``git init`` makes it."""
    if not (_looks_like_git_dir(git_dir) and os.path.isdir(os.path.join(git_dir, "refs"))):
        return False
    if os.path.lexists(os.path.join(git_dir, "commondir")):
        return False
    try:
        with open(os.path.join(git_dir, "config"), encoding="utf-8") as config:
            return _plain_config(config.read())
    except (OSError, UnicodeDecodeError):
        return False


def read_ref(git_dir: str | os.PathLike[str], name: str) -> str | None:
    """The object id *name* (``refs/heads/…``) points at, from its loose file or
    ``packed-refs``; None if it is symbolic, absent or not readable that way."""
    try:
        text = read_small(f"{git_dir}/{name}").decode("ascii").strip()
    except FileNotFoundError:
        return _packed(git_dir, name)
    except (OSError, UnicodeDecodeError):
        return None
    return text if is_oid(text) else None


_REAL: dict[str, tuple[str, int, int]] = {}  # path -> (its realpath, device, inode)


def real_path(path: str | os.PathLike[str]) -> str:
    """``os.path.realpath(path)``, remembered while *path* still leads to the same directory
    or file (one stat, where realpath takes an lstat and some Python per component: a
    record resolves its project's path twice)."""
    text = os.fspath(path)
    try:
        found = os.stat(text)
    except OSError:
        return os.path.realpath(text)
    known = _REAL.get(text)
    if known is not None and known[1] == found.st_dev and known[2] == found.st_ino:
        return known[0]
    real = os.path.realpath(text)
    if len(_REAL) > 256:
        _REAL.clear()
    _REAL[text] = (real, found.st_dev, found.st_ino)
    return real


def read_small(path: str) -> bytes:
    """A small file's bytes with the least system calls (``open()`` adds an fstat, an
    ioctl and two seeks: a record reads refs several times)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
            if len(chunk) < 4096:
                break
        return b"".join(chunks)
    finally:
        os.close(fd)


def _packed(git_dir: str | os.PathLike[str], name: str) -> str | None:
    """*name*'s id in ``packed-refs``: one search of the file's bytes (100,000 run tags make
    it megabytes; a line-by-line read took milliseconds)."""
    try:
        with open(f"{git_dir}/packed-refs", "rb") as packed:
            size = os.fstat(packed.fileno()).st_size
            data = mmap.mmap(packed.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    except OSError:
        return None
    try:
        return _find_packed(data, name)
    finally:
        if isinstance(data, mmap.mmap):
            data.close()


def _find_packed(data: bytes | mmap.mmap, name: str) -> str | None:
    header_end = data.find(b"\n") + 1 if data[:1] == b"#" else 0
    if b" sorted" in data[:header_end]:
        return _bisect_packed(data, name.encode(), header_end)
    needle = b" " + name.encode() + b"\n"
    at = data.find(needle)
    while at != -1:
        start = data.rfind(b"\n", 0, at) + 1
        oid = data[start:at].decode("ascii", "replace")
        if is_oid(oid):
            return oid
        at = data.find(needle, at + 1)
    return None


def _bisect_packed(data: bytes | mmap.mmap, target: bytes, low: int) -> str | None:
    """*target*'s id in a ``sorted`` packed-refs: a binary search of its lines, as git reads
    it (about 17 steps at 100,000 refs, where a scan read megabytes)."""
    high = len(data)
    while low < high:
        middle = (low + high) // 2
        start = data.rfind(b"\n", 0, middle) + 1  # the line holding the middle byte
        if data[start:start + 1] == b"^":  # a peeled id: its ref is the line before
            start = data.rfind(b"\n", 0, start - 1) + 1
        end = data.find(b"\n", start)
        end = len(data) if end == -1 else end
        oid, _, ref = bytes(data[start:end]).partition(b" ")
        if ref == target:
            text = oid.decode("ascii", "replace")
            return text if is_oid(text) else None
        if ref < target:
            low = end + 1
            if data[low:low + 1] == b"^":
                following = data.find(b"\n", low)
                low = len(data) if following == -1 else following + 1
        else:
            high = start
    return None


def read_head(git_dir: str | os.PathLike[str]) -> tuple[str, str | None] | None:
    """(HEAD's commit, its branch or None when detached) from ``HEAD`` and the branch's loose
    file or ``packed-refs``; None if HEAD is unborn, points outside ``refs/heads/`` or is not
    readable that way."""
    try:
        text = read_small(f"{git_dir}/HEAD").decode("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if is_oid(text):
        return text, None
    name = text.removeprefix("ref: ").strip() if text.startswith("ref: ") else ""
    branch = name.removeprefix("refs/heads/")
    if not name.startswith("refs/heads/") or not branch or ".." in name:
        return None
    commit = read_ref(git_dir, name)
    return (commit, branch) if commit is not None else None
