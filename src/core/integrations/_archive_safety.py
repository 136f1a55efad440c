"""Backup archives: made with a manifest of hashes, checked whole before anything is written.

A backup is a tar.gz of regular files plus ``MANIFEST.json`` (each file's
relative path, size, mode and SHA-256). ``verify`` reads the archive without
writing anything and refuses it (``ArchiveRefused`` naming the member) when a
member is a link, a device or anything but a regular file or a directory; when
a path is absolute, holds ``..``, reaches into ``.git`` or would land outside
the project through a symlink in the project; when the manifest and the
members disagree, a size or hash differs, or the archive is too big.
``restore`` then stages every file inside the project, checks each hash again,
and swaps them in with ``os.replace``, rolling every swap back if one fails.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from controlplane.core.integrations import _safe_paths as safe_paths

MANIFEST = "MANIFEST.json"
FORMAT, VERSION = "scp-backup", 1
MAX_MEMBERS = 100_000
MAX_BYTES = 8 << 30  # uncompressed, all files together
MAX_RATIO, RATIO_FLOOR = 100, 64 << 20  # a bomb: expanding beyond 100x and beyond 64 MiB
OVERHEAD = (MAX_MEMBERS + 1) * 1024 + (64 << 20)  # tar headers and padding, the manifest
SAFE_MODE = 0o755  # restored permissions: no set-id, sticky or group/other write bits
BLOCK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"


class ArchiveRefused(Exception):
    """The archive is not restored; the message names the member and why."""

    code = "archive_refused"


@dataclass(frozen=True)
class Entry:
    path: str
    size: int
    sha256: str
    mode: int = 0o644


class HashingReader:
    """A file wrapper that hashes what is read through it (for ``tarfile.addfile``)."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh, self.digest, self.size = fh, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data


def write_archive(target: IO[bytes], root: Path, files: list[str]) -> list[Entry]:
    """Write the project files *files* (relative) and their manifest as tar.gz into *target*."""
    entries = []
    with tarfile.open(fileobj=target, mode="w:gz", compresslevel=6) as tar:
        for relative in files:
            path = root / relative
            stat = path.stat()
            info = tarfile.TarInfo(relative)
            info.size, info.mode, info.mtime = stat.st_size, stat.st_mode & 0o777, stat.st_mtime
            with open(path, "rb") as fh:
                reader = HashingReader(fh)
                tar.addfile(info, reader)  # type: ignore[arg-type]
            entries.append(Entry(relative, reader.size, reader.digest.hexdigest(), info.mode))
        _add_manifest(tar, entries)
    return entries


def _add_manifest(tar: tarfile.TarFile, entries: list[Entry]) -> None:
    manifest = json.dumps({"format": FORMAT, "version": VERSION,
                           "files": [asdict(e) for e in entries]}, indent=2).encode()
    info = tarfile.TarInfo(MANIFEST)
    info.size, info.mode = len(manifest), 0o644
    tar.addfile(info, io.BytesIO(manifest))


def text_archive(files: dict[str, str]) -> str:
    """A plain (uncompressed) ustar backup of ASCII *files*, as text: for declaration examples,
    whose files are text."""
    buffer = io.BytesIO()
    entries = []
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for relative, content in files.items():
            data = content.encode("ascii")
            info = tarfile.TarInfo(relative)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
            entries.append(Entry(relative, len(data), hashlib.sha256(data).hexdigest()))
        _add_manifest(tar, entries)
    return buffer.getvalue().decode("ascii")


def safe_relative(name: str, directory: bool = False) -> str:
    """*name* as a clean relative path; ArchiveRefused if it is absolute, climbs or hits .git.

    A *directory* may be the archive's top (``./``), which gives ``""``.
    """
    if not name or "\x00" in name or "\\" in name:
        raise ArchiveRefused(f"{name!r}: not a plain relative path")
    pure = PurePosixPath(name)
    if pure.is_absolute():
        raise ArchiveRefused(f"{name!r}: absolute path")
    parts = [p for p in pure.parts if p != "."]
    if ".." in parts:
        raise ArchiveRefused(f"{name!r}: path climbs out with '..'")
    if not parts and not directory:
        raise ArchiveRefused(f"{name!r}: empty path")
    if any(p.lower() == ".git" for p in parts):
        raise ArchiveRefused(f"{name!r}: inside .git")
    return "/".join(parts)


def destination(root: Path, relative: str) -> str:
    """Where *relative* lands in the project (links resolved); ArchiveRefused if a link takes
    it outside or into .git, or a directory is in the way."""
    try:
        landing = safe_paths.check(root, relative)
    except safe_paths.UnsafePath as exc:
        raise ArchiveRefused(f"{relative!r}: {exc.why}") from None
    if landing.is_dir:
        raise ArchiveRefused(f"{relative!r}: a directory is in the way")
    return landing.resolved


def restored_mode(mode: int) -> int:
    """The permissions a restored file gets: no set-id, sticky or group/other write bits."""
    return mode & SAFE_MODE or 0o644


def expansion_limit(archive_size: int) -> int:
    """How many bytes an archive of *archive_size* bytes may expand to (bombs are refused)."""
    return min(MAX_BYTES + OVERHEAD, max(RATIO_FLOOR, MAX_RATIO * archive_size))


class ExpansionCap:
    """A stream that refuses to give more than *limit* bytes (counted, not taken from headers)."""

    def __init__(self, stream: io.BufferedIOBase, limit: int, name: str) -> None:
        self.stream, self.limit, self.name, self.total = stream, limit, name, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size if size >= 0 else BLOCK)
        self.total += len(data)
        if self.total > self.limit:
            raise ArchiveRefused(f"{self.name}: expands beyond {self.limit} bytes "
                                 f"({MAX_RATIO}x its size, at least {RATIO_FLOOR >> 20} MiB): "
                                 "an archive bomb is never restored")
        return data


class StagingFailed(Exception):
    """Writing a staged file failed (the OSError is its cause): not the archive's fault."""


@contextlib.contextmanager
def _reading(archive: Path) -> Iterator[tarfile.TarFile]:
    """The archive as a tar stream, read once front to back, decompressed under a cap."""
    try:
        raw = archive.open("rb")
    except OSError as exc:
        raise ArchiveRefused(f"{archive.name}: not readable ({exc.strerror})") from None
    with raw:
        gzipped = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        limit = expansion_limit(os.fstat(raw.fileno()).st_size)
        stream: io.BufferedIOBase = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
        capped = ExpansionCap(stream, limit, archive.name)
        try:
            with tarfile.open(fileobj=capped, mode="r|") as tar:  # type: ignore[call-overload]
                yield tar
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise ArchiveRefused(f"{archive.name}: not a readable tar or tar.gz, or damaged "
                                 f"({exc})") from None


def _member_path(member: tarfile.TarInfo) -> str | None:
    """A regular file's clean path (None for a directory); refuses every other kind."""
    relative = safe_relative(member.name, directory=member.isdir())
    if member.issym() or member.islnk():
        raise ArchiveRefused(f"{member.name!r}: a link (to {member.linkname!r}) is never "
                             "restored")
    if member.isdir():
        return None
    if not member.isreg():
        raise ArchiveRefused(f"{member.name!r}: a device, fifo or special file")
    return relative


Sink = Callable[[str], contextlib.AbstractContextManager[IO[bytes] | None]]


def _no_sink(relative: str) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


def _scan(archive: Path, sink: Sink = _no_sink
          ) -> tuple[dict[str, tuple[int, str]], dict[str, Entry]]:
    """One pass over *archive*: each regular file's (size, SHA-256) by path, and the manifest.

    *sink* gives, per path, a file the content is copied to (or None).
    """
    files: dict[str, tuple[int, str]] = {}
    manifest: dict[str, Entry] | None = None
    with _reading(archive) as tar:
        for count, member in enumerate(tar, start=1):
            if count > MAX_MEMBERS:
                raise ArchiveRefused(f"more than {MAX_MEMBERS} members")
            relative = _member_path(member)
            if relative is None:
                continue
            if relative in files or (relative == MANIFEST and manifest is not None):
                raise ArchiveRefused(f"{member.name!r}: appears twice")
            if relative == MANIFEST:
                manifest = read_manifest(tar, member)
                continue
            try:
                staged = sink(relative)
            except OSError as exc:
                raise StagingFailed(str(exc)) from exc
            with staged as target:
                files[relative] = _digest(tar, member, target)
    if manifest is None:
        raise ArchiveRefused(f"no {MANIFEST}: not a backup made by the control plane")
    return files, manifest


def _digest(tar: tarfile.TarFile, member: tarfile.TarInfo, sink: IO[bytes] | None = None
            ) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    source = tar.extractfile(member)
    if source is None:  # only regular files get here
        raise ArchiveRefused(f"{member.name!r}: not a regular file")
    for block in iter(lambda: source.read(BLOCK), b""):
        digest.update(block)
        size += len(block)
        if sink is not None:
            try:
                sink.write(block)
            except OSError as exc:
                raise StagingFailed(str(exc)) from exc
    return size, digest.hexdigest()


def read_manifest(tar: tarfile.TarFile, member: tarfile.TarInfo | None) -> dict[str, Entry]:
    if member is None:
        raise ArchiveRefused(f"no {MANIFEST}: not a backup made by the control plane")
    if member.size > 64 << 20:
        raise ArchiveRefused(f"{MANIFEST} is too big")
    try:
        doc: Any = json.loads(tar.extractfile(member).read())  # type: ignore[union-attr]
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise ArchiveRefused(f"{MANIFEST}: not a {FORMAT} v{VERSION} manifest")
        entries = [Entry(safe_relative(f["path"]), int(f["size"]), str(f["sha256"]),
                         restored_mode(int(f.get("mode", 0o644)))) for f in doc["files"]]
    except (ValueError, KeyError, TypeError, AttributeError,
            OverflowError, RecursionError):  # "size": 1e999 is inf; [[[… deeper than the stack
        raise ArchiveRefused(f"{MANIFEST} is unreadable") from None
    by_path = {e.path: e for e in entries}
    if len(by_path) != len(entries):
        raise ArchiveRefused(f"{MANIFEST} lists a file twice")
    return by_path


def _no_file_over_dir(manifest: dict[str, Entry]) -> None:
    for relative in manifest:
        for parent in PurePosixPath(relative).parents:
            if str(parent) in manifest:
                raise ArchiveRefused(f"{relative!r}: {parent} is also a file in the archive")


def verify(archive: Path, root: Path) -> list[Entry]:
    """Every check, nothing written: the manifest's entries if the archive may be restored."""
    files, manifest = _scan(archive)
    if set(manifest) != set(files):
        odd = sorted(set(manifest) ^ set(files))[:5]
        raise ArchiveRefused(f"{MANIFEST} and the members disagree: {odd}")
    if sum(e.size for e in manifest.values()) > MAX_BYTES:
        raise ArchiveRefused(f"more than {MAX_BYTES} bytes")
    _no_file_over_dir(manifest)
    for relative, expected in manifest.items():
        if files[relative] != (expected.size, expected.sha256):
            raise ArchiveRefused(f"{relative!r}: size or SHA-256 differs from the manifest")
    landed: dict[str, str] = {}
    for relative in manifest:
        resolved = destination(root, relative)
        if resolved in landed:  # two paths, one file, through a link
            raise ArchiveRefused(f"{relative!r}: lands on the same file as {landed[resolved]!r}")
        landed[resolved] = relative
    return list(manifest.values())


def restore(archive: Path, root: Path, entries: list[Entry], staging_parent: Path) -> None:
    """Stage each verified file in the project, check its hash again, then swap all in."""
    expected = {e.path: e for e in entries}
    _check_staging(root, staging_parent)
    staging_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=staging_parent, prefix=".restore-"))
    names = {relative: f"new-{index}" for index, relative in enumerate(expected)}

    def stage(relative: str) -> contextlib.AbstractContextManager[IO[bytes] | None]:
        if relative not in names:
            return contextlib.nullcontext()
        return open(staging / names[relative], "xb")

    try:
        try:
            files, _ = _scan(archive, stage)
        except StagingFailed as exc:
            raise exc.__cause__ from None  # type: ignore[misc]
        for relative, entry in expected.items():
            if files.get(relative) != (entry.size, entry.sha256):
                raise ArchiveRefused(f"{relative!r}: changed while being restored")
            os.chmod(staging / names[relative], restored_mode(entry.mode))
        if set(files) != set(expected):
            raise ArchiveRefused(f"{archive.name}: changed while being restored")
        _swap_in(root, [(names[e.path], e) for e in entries], staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_staging(root: Path, staging_parent: Path) -> None:
    """Staging inside the project must not be carried out of it or into .git by a link."""
    try:
        relative = safe_paths.relative_in(root, staging_parent)
    except safe_paths.UnsafePath:
        return  # a place of the caller's own, outside the project
    destination(root, f"{relative}/.restore")


def _swap_in(root: Path, staged: list[tuple[str, Entry]], staging: Path) -> None:
    """Rename every staged file into place (each directory walked safely); on any failure
    undo the ones done and remove the directories made."""
    done: list[tuple[str, str | None]] = []
    made: list[str] = []
    staging_fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, (name, entry) in enumerate(staged):
            try:
                with safe_paths.parent_of(root, entry.path) as parent:
                    made += parent.made
                    found = parent.lstat()
                    if found is not None and stat.S_ISDIR(found.st_mode):
                        raise ArchiveRefused(f"{entry.path!r}: a directory is in the way")
                    old = None
                    if found is not None:
                        old = f"old-{index}"
                        os.rename(parent.name, old, src_dir_fd=parent.fd, dst_dir_fd=staging_fd)
                    done.append((parent.resolved, old))
                    os.rename(name, parent.name, src_dir_fd=staging_fd, dst_dir_fd=parent.fd)
            except safe_paths.UnsafePath as exc:
                raise ArchiveRefused(f"{entry.path!r}: {exc.why}") from None
    except BaseException:
        _undo(root, done, made, staging_fd)
        raise
    finally:
        os.close(staging_fd)


def _undo(root: Path, done: list[tuple[str, str | None]], made: list[str], staging_fd: int
          ) -> None:
    """Put back what ``_swap_in`` moved aside, newest first, then remove the directories made."""
    for resolved, old in reversed(done):
        with contextlib.suppress(OSError, safe_paths.UnsafePath), \
                safe_paths.parent_of(root, resolved, create=False) as parent:
            if parent.fd is None:
                continue
            if old is not None:
                os.rename(old, parent.name, src_dir_fd=staging_fd, dst_dir_fd=parent.fd)
            else:
                os.unlink(parent.name, dir_fd=parent.fd)
    for directory in reversed(made):
        with contextlib.suppress(OSError, safe_paths.UnsafePath), \
                safe_paths.parent_of(root, directory, create=False) as parent:
            if parent.fd is not None:
                os.rmdir(parent.name, dir_fd=parent.fd)
