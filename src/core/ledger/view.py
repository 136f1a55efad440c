"""The readable view ``.scp-ledger/``: the ledger's files as plain files, kept current.

Not a git worktree: a worktree's index grows with the ledger. The view holds
the ledger commit it reflects in ``.scp-ledger/.head`` and, like the index,
takes one run directly from its writer or catches up from a tree diff. Writes
are serialised between processes by a lock file.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from controlplane.core.ledger.journal import write_atomic

VIEW_DIR = ".scp-ledger"


class LedgerView:
    """The directory of readable ledger files inside the project's work tree."""

    def __init__(self, root: Path, lock_path: Path) -> None:
        self.root = root
        self.lock_path = lock_path
        self.head_path = root / ".head"

    @contextmanager
    def locked(self) -> Iterator[None]:
        with open(self.lock_path, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def head(self) -> str | None:
        try:
            return self.head_path.read_text().strip() or None
        except OSError:
            return None

    def apply(self, expected_head: str | None, new_head: str,
              upserts: Iterable[tuple[str, Mapping[str, bytes]]], removed: Iterable[str]) -> bool:
        """Move from *expected_head* to *new_head*; False (nothing done) if the head differs."""
        with self.locked():
            if self.head() != expected_head:
                return False
            for directory, files in upserts:
                target = self.root / directory
                target.mkdir(parents=True, exist_ok=True)
                for name, data in files.items():
                    write_atomic(target / name, data)
            for directory in removed:
                shutil.rmtree(self.root / directory, ignore_errors=True)
            self.root.mkdir(parents=True, exist_ok=True)
            write_atomic(self.head_path, new_head.encode())
            return True

    def clear(self) -> None:
        with self.locked():
            shutil.rmtree(self.root / "ledger", ignore_errors=True)
            self.head_path.unlink(missing_ok=True)


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
