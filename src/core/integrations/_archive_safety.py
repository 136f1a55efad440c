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
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

MANIFEST = "MANIFEST.json"
FORMAT, VERSION = "scp-backup", 1
MAX_MEMBERS = 100_000
MAX_BYTES = 8 << 30  # uncompressed, all files together
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


def destination(root: Path, relative: str) -> Path:
    """Where *relative* lands in the project; ArchiveRefused if a link takes it outside."""
    base = root.resolve()
    target = base / relative
    if os.path.commonpath([target.resolve(), base]) != str(base):
        raise ArchiveRefused(f"{relative!r}: lands outside the project through a link")
    if target.is_dir() and not target.is_symlink():
        raise ArchiveRefused(f"{relative!r}: a directory is in the way")
    for parent in target.parents:
        if parent == base:
            break
        if parent.exists() and not parent.is_dir():
            raise ArchiveRefused(f"{relative!r}: {parent.relative_to(base)} is not a directory")
    return target


def _open(archive: Path) -> tarfile.TarFile:
    """The archive for reading: gzip-compressed (our own) or a plain tar (e.g. from ``tar cf``)."""
    try:
        with open(archive, "rb") as fh:
            gzipped = fh.read(2) == GZIP_MAGIC
        return tarfile.open(archive, mode="r:gz" if gzipped else "r:")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ArchiveRefused(f"{archive.name}: not a readable tar or tar.gz ({exc})") from None


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """The regular files by clean path (MANIFEST.json included); refuses everything else."""
    files: dict[str, tarfile.TarInfo] = {}
    for count, member in enumerate(tar, start=1):
        if count > MAX_MEMBERS:
            raise ArchiveRefused(f"more than {MAX_MEMBERS} members")
        relative = safe_relative(member.name, directory=member.isdir())
        if member.issym() or member.islnk():
            raise ArchiveRefused(f"{member.name!r}: a link (to {member.linkname!r}) is never "
                                 "restored")
        if member.isdir():
            continue
        if not member.isreg():
            raise ArchiveRefused(f"{member.name!r}: a device, fifo or special file")
        if relative in files:
            raise ArchiveRefused(f"{member.name!r}: appears twice")
        files[relative] = member
    return files


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
            sink.write(block)
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
                         int(f.get("mode", 0o644)) & 0o777) for f in doc["files"]]
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
    with _open(archive) as tar:
        try:
            files = _members(tar)
            manifest = read_manifest(tar, files.pop(MANIFEST, None))
            if set(manifest) != set(files):
                odd = sorted(set(manifest) ^ set(files))[:5]
                raise ArchiveRefused(f"{MANIFEST} and the members disagree: {odd}")
            if sum(e.size for e in manifest.values()) > MAX_BYTES:
                raise ArchiveRefused(f"more than {MAX_BYTES} bytes")
            _no_file_over_dir(manifest)
            for relative, member in files.items():
                expected = manifest[relative]
                if member.size != expected.size or \
                        _digest(tar, member) != (expected.size, expected.sha256):
                    raise ArchiveRefused(f"{relative!r}: size or SHA-256 differs from the "
                                         "manifest")
                destination(root, relative)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise ArchiveRefused(f"{archive.name}: damaged ({exc})") from None
    return list(manifest.values())


def restore(archive: Path, root: Path, entries: list[Entry], staging_parent: Path) -> None:
    """Stage each verified file in the project, check its hash again, then swap all in."""
    expected = {e.path: e for e in entries}
    staging_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=staging_parent, prefix=".restore-"))
    try:
        staged: list[tuple[Path, Entry]] = []
        with _open(archive) as tar:
            files = _members(tar)
            for index, entry in enumerate(entries):
                member = files.get(entry.path)
                if member is None:
                    raise ArchiveRefused(f"{entry.path!r}: gone from the archive")
                path = staging / f"new-{index}"
                with open(path, "wb") as sink:
                    got = _digest(tar, member, sink)
                if got != (entry.size, entry.sha256):
                    raise ArchiveRefused(f"{entry.path!r}: changed while being restored")
                os.chmod(path, expected[entry.path].mode or 0o644)
                staged.append((path, entry))
        _swap_in(root, staged, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_in(root: Path, staged: list[tuple[Path, Entry]], staging: Path) -> None:
    """``os.replace`` every staged file into place; on any failure undo the ones done."""
    done: list[tuple[Path, Path | None]] = []
    made: list[Path] = []
    try:
        for index, (path, entry) in enumerate(staged):
            target = destination(root, entry.path)
            missing = [p for p in target.parents if not p.exists()]
            target.parent.mkdir(parents=True, exist_ok=True)
            made += reversed(missing)
            old = None
            if target.exists() or target.is_symlink():
                old = staging / f"old-{index}"
                os.replace(target, old)
            done.append((target, old))
            os.replace(path, target)
    except BaseException:
        for target, old in reversed(done):
            if old is not None:
                os.replace(old, target)
            else:
                target.unlink(missing_ok=True)
        for directory in reversed(made):
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
