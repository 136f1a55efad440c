"""Writing files whole or not at all, and hashing them (vault, content, backup, pages).

Every write goes through ``_safe_paths``: no link carries it out of its root or into .git.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from controlplane.core.integrations._safe_paths import parent_of, relative_in, temporary_file


@contextlib.contextmanager
def atomic_writer(target: Path, mode: int | None = None, exclusive: bool = False, *,
                  root: Path | None = None) -> Iterator[IO[bytes]]:
    """A binary file that becomes *target* when the block ends without error.

    Readers see the old file or the new one, never a part; the data is flushed to disk
    before the rename; on an error the temporary file is removed and *target* untouched.
    *root*: the directory *target* must stay under; each directory between them is walked
    without letting a link lead outside it or into ``.git`` (``_safe_paths``; UnsafePath).
    Without *root* only the last component is guarded. A link at *target* is replaced,
    never written through. *mode* sets the permissions (default: 0666 less the umask).
    *exclusive*: hard-link instead of replace, so that an existing *target* is never
    replaced (FileExistsError).
    """
    if root is None:
        target.parent.mkdir(parents=True, exist_ok=True)
        base, relative = target.parent, target.name
    else:
        base, relative = root, relative_in(root, target)
    with parent_of(base, relative) as parent, temporary_file(parent, mode) as (fd, tmp):
        with os.fdopen(os.dup(fd), "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            os.link(tmp, parent.name, src_dir_fd=parent.fd, dst_dir_fd=parent.fd)
        else:
            os.replace(tmp, parent.name, src_dir_fd=parent.fd, dst_dir_fd=parent.fd)


def write_atomic(target: Path, data: bytes, mode: int | None = None, *,
                 root: Path | None = None) -> None:
    """Write *data* to *target* whole or not at all (see ``atomic_writer``)."""
    with atomic_writer(target, mode, root=root) as fh:
        fh.write(data)


def create_exclusive(target: Path, data: bytes, mode: int | None = None, *,
                     root: Path | None = None) -> bool:
    """Write *data* as the new file *target*, whole; False (nothing written) if it exists.

    The complete temporary file is hard-linked into place, which fails if *target*
    exists: two racing creators cannot both win, and neither overwrites.
    """
    try:
        with atomic_writer(target, mode, exclusive=True, root=root) as fh:
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
