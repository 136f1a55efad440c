"""Writing under a root without a link carrying the write outside it or into ``.git``.

Every directory on the way is opened ``openat`` style (``dir_fd``, ``O_NOFOLLOW``),
one component at a time. A component that is a symbolic link is resolved by hand
and followed only while it stays inside the root and out of ``.git``: symlinked
directories inside the project stay usable (DECISIONS §8). The last component is
never followed: a link there is replaced by the file written, never written through.
One mechanism for restore (``_archive_safety``) and every writer (``_atomic_files``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pydantic import ValidationInfo

from controlplane.core.errors import InvalidInput

MAX_LINKS = 40
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
OUTSIDE = "lands outside the project (through a link)"
IN_GIT = "lands inside .git"


class UnsafePath(InvalidInput):
    """Nothing was written: the path would leave the root or reach into ``.git``."""

    code = "unsafe_path"

    def __init__(self, relative: str, why: str, field_name: str = "path") -> None:
        super().__init__({field_name: f"{relative!r} {why}"},
                         f"{field_name}: {relative!r} {why}: choose a path inside the project")
        self.relative, self.why = relative, why


@dataclass
class Parent:
    """The directory a file lands in: an open descriptor, the file's name, where it is."""

    fd: int | None  # None when the directory does not exist yet (a check only)
    name: str
    resolved: str  # the file's path under the root, links resolved
    made: list[str] = field(default_factory=list)  # directories created, outermost first

    def lstat(self) -> os.stat_result | None:
        """What is at the file's name now (a link not followed); None if nothing."""
        return _lstat(self.name, self.fd) if self.fd is not None else None


@dataclass(frozen=True)
class Landing:
    """Where a path would land (from ``check``): its resolved path, and what is there now."""

    resolved: str
    exists: bool
    is_dir: bool


def _lstat(name: str, fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def relative_in(root: Path, target: Path) -> str:
    """*target* relative to *root*, lexically (no link in *target* is followed)."""
    if not target.is_absolute():
        return target.as_posix()
    for base in (root.absolute(), root.resolve()):
        if target.is_relative_to(base):
            return target.relative_to(base).as_posix()
    raise UnsafePath(str(target), "is outside the project")


def _split(relative: str) -> list[str]:
    if not relative or "\x00" in relative:
        raise UnsafePath(relative, "is not a file name")
    parts = [p for p in PurePosixPath(relative).parts if p not in ("", ".", "/")]
    if PurePosixPath(relative).is_absolute() or not parts or parts[-1] == "..":
        raise UnsafePath(relative, "is not a file name under the project")
    return parts


def _is_git(name: str) -> bool:
    return name.lower() == ".git"


class _Walk:
    """The walk from the root: the resolved components so far and the open directory."""

    def __init__(self, root: Path, relative: str, create: bool) -> None:
        self.root_real = os.path.realpath(root)
        self.relative, self.create = relative, create
        self.here: list[str] = []
        self.made: list[str] = []
        self.fd: int | None = os.open(root, DIR_FLAGS & ~os.O_NOFOLLOW)

    def refuse(self, why: str) -> UnsafePath:
        return UnsafePath(self.relative, why)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def step(self, name: str, pending: list[str]) -> bool:
        """Go into *name*; a link puts its target's components in front of *pending* (True)."""
        if name == "..":
            if not self.here:
                raise self.refuse(OUTSIDE)
            self.here.pop()
            self._reopen()
            return False
        if _is_git(name):
            raise self.refuse(IN_GIT)
        if self.fd is None:  # below a directory that does not exist yet
            self.here.append(name)
            return False
        try:
            new = os.open(name, DIR_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            made = self._missing(name)
            if made is None:  # a check only: from here on the walk is by name
                self.here.append(name)
                return False
            new = made
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            found = _lstat(name, self.fd)
            if found is None or not stat.S_ISLNK(found.st_mode):
                where = "/".join([*self.here, name])
                raise self.refuse(f"goes through {where!r}, which is not a directory") from None
            pending[:0] = self._link_target(os.readlink(name, dir_fd=self.fd))
            return True
        self.close()
        self.fd = new
        self.here.append(name)
        return False

    def _missing(self, name: str) -> int | None:
        if not self.create:
            self.close()
            return None
        with contextlib.suppress(FileExistsError):  # made meanwhile: opened below all the same
            os.mkdir(name, 0o777, dir_fd=self.fd)
            self.made.append("/".join([*self.here, name]))
        return os.open(name, DIR_FLAGS, dir_fd=self.fd)

    def _link_target(self, target: str) -> list[str]:
        if os.path.isabs(target):
            if os.path.commonpath([target, self.root_real]) != self.root_real:
                raise self.refuse(OUTSIDE)
            self.here = []
            self._reopen()
            target = os.path.relpath(target, self.root_real)
        return [p for p in PurePosixPath(target).parts if p not in ("", ".")]

    def _reopen(self) -> None:
        """Open the resolved directory again from the root (each component a real directory)."""
        self.close()
        fd = os.open(self.root_real, DIR_FLAGS)
        try:
            for name in self.here:
                try:
                    new = os.open(name, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if self.create:
                        raise
                    os.close(fd)
                    return
                os.close(fd)
                fd = new
        except OSError:
            os.close(fd)
            raise self.refuse("changed while being written") from None
        self.fd = fd


@contextlib.contextmanager
def parent_of(root: Path, relative: str, create: bool = True) -> Iterator[Parent]:
    """The directory *relative* lands in under *root*, walked safely (see the module).

    *create*: make missing directories (``Parent.made`` lists them); otherwise the
    walk only checks, and ``Parent.fd`` is None below the first missing directory.
    UnsafePath when the path leaves the root, reaches into ``.git``, goes through
    something that is not a directory, or through more than MAX_LINKS links.
    """
    parts = _split(relative)
    name = parts[-1]
    walk = _Walk(root, relative, create)
    try:
        if _is_git(name):
            raise walk.refuse(IN_GIT)
        pending, links = parts[:-1], 0
        while pending:
            links += walk.step(pending.pop(0), pending)
            if links > MAX_LINKS:
                raise walk.refuse("goes through too many links")
        yield Parent(walk.fd, name, "/".join([*walk.here, name]), walk.made)
    finally:
        walk.close()


def check(root: Path, relative: str) -> Landing:
    """Where *relative* would land (nothing created); UnsafePath as ``parent_of``."""
    with parent_of(root, relative, create=False) as parent:
        found = parent.lstat()
        return Landing(parent.resolved, found is not None,
                       found is not None and stat.S_ISDIR(found.st_mode))


@contextlib.contextmanager
def temporary_file(parent: Parent, mode: int | None) -> Iterator[tuple[int, str]]:
    """A new file (descriptor, name) beside *parent.name*, removed unless renamed away."""
    assert parent.fd is not None
    tmp = f".{parent.name[:100]}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, FILE_FLAGS, 0o666 if mode is None else mode & 0o777, dir_fd=parent.fd)
    try:
        if mode is not None:
            os.fchmod(fd, mode & 0o777)
        yield fd, tmp
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=parent.fd)


def written_path(value: str | None, info: ValidationInfo) -> str | None:
    """A pydantic after-validator for a path the action writes (a ``ProjectPath``): refused
    before any run when a link takes it out of the project or into ``.git``."""
    root = (info.context or {}).get("project_root")
    if value is None or root is None:
        return value
    root = Path(root)
    target = (root / value).resolve()
    if target == root.resolve():
        return value
    try:
        check(root, relative_in(root, target))
    except UnsafePath as exc:
        raise ValueError(f"{value!r} {exc.why}") from None
    return value
