"""Stale git lock files: a git process killed mid-write leaves ``<file>.lock`` behind.

Git never removes such a lock itself, and every later write of that file (the
ledger branch, a run tag, the project's index) fails until someone does. A
lock is *stale* when it is older than ``STALE_AFTER`` seconds, no process has
it open and no git process works in this repository (a git process may hold a
lock with its file already closed). Only stale locks are ever removed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

STALE_AFTER = 60.0  # seconds; git holds a lock for the length of one write
TOP_LEVEL = ("index.lock", "HEAD.lock", "packed-refs.lock", "config.lock", "shallow.lock")


def lock_files(git_dir: Path) -> list[Path]:
    """Every ``*.lock`` git may leave in *git_dir*: top-level files and refs."""
    found = [git_dir / name for name in TOP_LEVEL if (git_dir / name).exists()]
    refs = git_dir / "refs"
    if refs.is_dir():
        found += sorted(p for p in refs.rglob("*.lock") if p.is_file())
    return found


def _git_at_work(places: tuple[str, ...]) -> bool:
    """True if a git process (or a process holding a lock open) works in one of *places*."""
    for process in psutil.process_iter(["name", "cwd", "cmdline"]):
        info = process.info
        name = info.get("name") or ""
        if not name.startswith("git"):
            continue
        where = [info.get("cwd") or "", *(info.get("cmdline") or [])]
        if any(text.startswith(place) for text in where for place in places):
            return True
    return False


def _open_anywhere(paths: set[str]) -> bool:
    for process in psutil.process_iter():
        try:
            if any(f.path in paths for f in process.open_files()):
                return True
        except (psutil.Error, OSError):
            continue
    return False


def stale_locks(git_dir: Path, work_tree: Path | None = None,
                older_than: float = STALE_AFTER, candidates: list[Path] | None = None
                ) -> list[Path]:
    """The lock files of *git_dir* that no live process can own any more."""
    now = time.time()
    old = []
    for path in lock_files(git_dir) if candidates is None else candidates:
        try:
            if now - path.stat().st_mtime >= older_than:
                old.append(path)
        except OSError:
            continue  # released meanwhile
    if not old:
        return []
    places = tuple(str(p.resolve()) for p in (git_dir, work_tree) if p is not None)
    if _git_at_work(places) or _open_anywhere({str(p) for p in old}):
        return []
    return old


def clear_stale_locks(git_dir: Path, work_tree: Path | None = None,
                      older_than: float = STALE_AFTER,
                      candidates: list[Path] | None = None) -> list[str]:
    """Remove the stale locks; returns their paths relative to *git_dir* (logged)."""
    removed = []
    for path in stale_locks(git_dir, work_tree, older_than, candidates):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("could not remove the stale lock %s: %s", path, exc)
            continue
        name = str(path.relative_to(git_dir))
        log.warning("removed the stale git lock %s (its git process died)", name)
        removed.append(name)
    return removed
