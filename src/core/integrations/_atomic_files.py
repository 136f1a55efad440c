"""Writing files whole or not at all, and hashing them (vault, content, backup, pages)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_writer(target: Path, mode: int | None = None, exclusive: bool = False
                  ) -> Iterator[IO[bytes]]:
    """A binary file that becomes *target* (``os.replace``) when the block ends without error.

    Readers see the old file or the new one, never a part; the data is flushed to disk
    before the rename; on an error the temporary file is removed and *target* untouched.
    *mode* sets the permissions (default: the umask's). *exclusive*: hard-link instead of
    replace, so that an existing *target* is never replaced (FileExistsError).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        if exclusive:
            os.link(tmp, target)
        else:
            os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_atomic(target: Path, data: bytes, mode: int | None = None) -> None:
    """Write *data* to *target* whole or not at all (see ``atomic_writer``)."""
    with atomic_writer(target, mode) as fh:
        fh.write(data)


def create_exclusive(target: Path, data: bytes, mode: int | None = None) -> bool:
    """Write *data* as the new file *target*, whole; False (nothing written) if it exists.

    The complete temporary file is hard-linked into place, which fails if *target*
    exists: two racing creators cannot both win, and neither overwrites.
    """
    try:
        with atomic_writer(target, mode, exclusive=True) as fh:
            fh.write(data)
    except FileExistsError:
        return False
    return True


def replace_dir(staged: Path, target: Path) -> None:
    """Put the directory *staged* in place of *target* (moved aside first, then removed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old."))
        os.replace(target, old / target.name)
    try:
        os.replace(staged, target)
    except BaseException:
        if old is not None:
            os.replace(old / target.name, target)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def sha256_file(path: Path) -> str:
    """The SHA-256 of *path*'s content, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def relative_to_root(root: Path, path: Path) -> str:
    """*path* relative to the project *root*, POSIX style."""
    return path.resolve().relative_to(root.resolve()).as_posix()
