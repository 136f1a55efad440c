"""The readable view ``.scp-ledger/``: the ledger's files as plain files, kept current.

Not a git worktree: a worktree's index grows with the ledger. The view holds
the ledger commit it reflects in ``.scp-ledger/.head`` and, like the index,
takes one run directly from its writer or catches up from a tree diff. Writes
are serialised between processes by a lock file.

The view writes and deletes only entry directories of the ledger layout
(``layout.entry_of``), walking to them one component at a time without
following symlinks, so no path can lead it outside its root. It is private:
the root is 0700, files 0600.
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

from controlplane.core import lazy
from controlplane.core.ledger.layout import ENTRY_FILES, entry_of

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    import shutil
else:
    shutil = lazy.Lazy(globals(), "shutil")  # a damaged view's deletion

log = lazy.Logger(__name__)

VIEW_DIR = ".scp-ledger"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_HEAD = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}", re.ASCII)


def write_private(path: Path, data: bytes) -> None:
    """Write *data* to *path* (0600) via a temporary file and a rename; never via a symlink."""
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _write_at(dir_fd, path.name, data)
    finally:
        os.close(dir_fd)


def _write_at(dir_fd: int, name: str, data: bytes) -> None:
    """Write file *name* (0600) of directory *dir_fd* through a temporary file."""
    tmp = f".{name}.{os.getpid()}.tmp"
    with suppress(FileNotFoundError):  # a stale one (any mode, maybe a symlink) goes first
        os.unlink(tmp, dir_fd=dir_fd)
    try:
        _create_at(dir_fd, tmp, data)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:  # a full disk: no temporary file stays behind
        with suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


class LedgerView:
    """The directory of readable ledger files inside the project's work tree."""

    def __init__(self, root: Path, lock_path: Path) -> None:
        self.root = root
        self.lock_path = lock_path
        self.head_path = root / ".head"
        try:
            make_private(root)
        except OSError as exc:
            log.warning("could not make the view %s private: %s", root, exc)

    @contextmanager
    def locked(self) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # drops the flock

    def head(self) -> str | None:
        """The commit the view reflects. ``.head`` is rewritten in place (``_set_head``): a
        read that catches a write half done is made again under the lock."""
        found = self._read_head()
        if found is None or _HEAD.fullmatch(found):
            return found
        with self.locked():
            return self._read_head()

    def _read_head(self) -> str | None:
        try:
            fd = os.open(self.head_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            return os.read(fd, 200).decode("ascii", "replace").strip() or None
        finally:
            os.close(fd)

    def apply(self, expected_head: str | None, new_head: str,
              upserts: Iterable[tuple[str, Mapping[str, bytes]]], removed: Iterable[str]) -> bool:
        """Move from *expected_head* to *new_head*; False (nothing done) if the head differs.

        A directory outside the ledger layout is skipped (logged), never written or removed.
        """
        with self.locked():
            if self._read_head() != expected_head:  # under the lock: never half written
                return False
            root_fd = self._open_root()
            try:
                for directory, files in upserts:
                    self._write_entry(root_fd, directory, files)
                for directory in removed:
                    self._remove_entry(root_fd, directory)
                _set_head(root_fd, new_head.encode())
            finally:
                os.close(root_fd)
            return True

    def replace_with(self, fresh: Path, old: Path) -> bool:
        """Put the view built at *fresh* in place of this one (two renames under the lock),
        the old one moved to *old* for the caller to delete; False (nothing moved) if a
        rename fails (*fresh* on another file system, or the view not a plain directory)."""
        with self.locked():
            try:
                os.rename(self.root, old)
            except FileNotFoundError:
                pass
            except OSError:
                return False
            try:
                os.rename(fresh, self.root)
            except OSError:
                with suppress(OSError):
                    os.rename(old, self.root)  # the old view back: it is still a good one
                return False
        return True

    def clear(self) -> None:
        with self.locked():
            try:
                root_fd = os.open(self.root, _DIR_FLAGS)
            except OSError:
                return  # none yet, or not a plain directory: nothing of ours to clear
            try:
                shutil.rmtree("ledger", dir_fd=root_fd, ignore_errors=True)
                with suppress(FileNotFoundError):
                    os.unlink(".head", dir_fd=root_fd)
            finally:
                os.close(root_fd)

    def _open_root(self) -> int:
        try:
            return os.open(self.root, _DIR_FLAGS)
        except FileNotFoundError:  # the first record: made, then opened below
            with suppress(FileExistsError):
                os.mkdir(self.root, 0o700)
        except OSError:
            pass  # a symlink or a file: said below
        try:
            return os.open(self.root, _DIR_FLAGS)
        except OSError as exc:
            raise OSError(exc.errno, f"the view {self.root} is not a plain directory (a "
                                     "symlink?): remove it, the next read rebuilds it") from None

    def _write_entry(self, root_fd: int, directory: str, files: Mapping[str, bytes]) -> None:
        entry = entry_of(directory)
        if entry is None:
            log.warning("view: skipped %s, not a ledger entry directory", ascii(directory))
            return
        *parents, leaf = directory.split("/")
        fd = _walk(root_fd, parents, create=True)
        try:
            fresh = _mkdir(fd, leaf)
            child = os.open(leaf, _DIR_FLAGS, dir_fd=fd)  # ELOOP/ENOTDIR on a symlink
        finally:
            os.close(fd)
        fd = child
        try:
            for name, data in files.items():
                if name in ENTRY_FILES[entry[0]]:
                    # a directory this apply made holds nothing to replace: written in place
                    (_create_at if fresh else _write_at)(fd, name, data)
                else:
                    log.warning("view: skipped %s in %s", ascii(name), directory)
        finally:
            os.close(fd)

    def _remove_entry(self, root_fd: int, directory: str) -> None:
        if entry_of(directory) is None:
            log.warning("view: did not remove %s, not a ledger entry directory",
                        ascii(directory))
            return
        *parents, name = directory.split("/")
        try:
            fd = _walk(root_fd, parents, create=False)
        except OSError as exc:  # gone already, or a symlink on the way: not ours to remove
            if not isinstance(exc, FileNotFoundError):
                log.warning("view: did not remove %s: %s", directory, exc)
            return
        try:
            shutil.rmtree(name, dir_fd=fd, ignore_errors=True)  # refuses a symlink
        finally:
            os.close(fd)


def _set_head(root_fd: int, head: bytes) -> None:
    """Write ``.head``: in place when it holds an id of the same length, else through a
    temporary file. A rename over an existing file makes ext4 flush the new one
    (``auto_da_alloc``): 1-3 ms per record on the development VM."""
    try:
        fd = os.open(".head", os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd)
    except FileNotFoundError:
        fd = None
    if fd is not None:
        try:
            found = os.fstat(fd)
            if stat.S_ISREG(found.st_mode) and found.st_size == len(head) \
                    and os.pwrite(fd, head, 0) == len(head):
                return
        finally:
            os.close(fd)
    _write_at(root_fd, ".head", head)


def _mkdir(dir_fd: int, name: str) -> bool:
    """Make directory *name* (0700) in *dir_fd*; False if it exists already."""
    try:
        os.mkdir(name, 0o700, dir_fd=dir_fd)
    except FileExistsError:
        return False
    return True


def _create_at(dir_fd: int, name: str, data: bytes) -> None:
    """Write the new file *name* (0600) of directory *dir_fd*: no temporary file, no rename."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _walk(root_fd: int, parts: list[str], create: bool) -> int:
    """An fd of the directory *parts* below *root_fd*, never following a symlink."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:  # opened first: the day's directories exist for all but its first entry
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)  # ELOOP/ENOTDIR on a symlink
            except FileNotFoundError:
                if not create:
                    raise
                with suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_private(root: Path) -> None:
    """Make an existing view 0700 (and, the first time, every file in it 0600)."""
    try:
        info = os.lstat(root)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode) or not stat.S_IMODE(info.st_mode) & 0o077:
        return  # a symlink is refused when written; an already private view is left alone
    for _, dirs, files, dir_fd in os.fwalk(root, follow_symlinks=False):
        for name in dirs + files:
            found = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(found.st_mode):
                os.chmod(name, 0o700, dir_fd=dir_fd)
            elif stat.S_ISREG(found.st_mode):
                os.chmod(name, 0o600, dir_fd=dir_fd)
    os.chmod(root, 0o700)


def exclude_from_status(git_dir: Path, pattern: str = f"/{VIEW_DIR}/") -> None:
    """List the view in ``.git/info/exclude`` so the project's status stays clean."""
    exclude = git_dir / "info" / "exclude"
    try:
        current = exclude.read_text() if exclude.exists() else ""
    except OSError:
        return
    if pattern in current.splitlines():
        return
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with open(exclude, "a") as fh:
        fh.write(("" if current.endswith("\n") or not current else "\n") + pattern + "\n")
    os.utime(exclude)
