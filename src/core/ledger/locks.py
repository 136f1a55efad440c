"""Stale git lock files: a git process killed mid-write leaves ``<file>.lock`` behind.

Git never removes such a lock itself, and every later write of that file (the
ledger branch, a run tag, the project's index) fails until someone does. A
lock is *stale* when it is older than ``STALE_AFTER`` seconds, no process has
it open and no git process works in this repository (a git process may hold a
lock with its file already closed). Only stale locks are ever removed.

Our own writers name themselves while they move a ref (``ref_move``): a ref lock
left by one of them that died is known to be dead and is removed at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from controlplane.core import lazy
from controlplane.core.runs import default_host, process_alive, process_start_time

log = lazy.Logger(__name__)

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
    import psutil  # here: its import costs start-up time of every command

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
    import psutil

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


WRITER_LOCK = "ref-writer.lock"  # under .git/scp/: who moves a ledger ref right now
WRITER_WAIT = 30.0  # seconds a ref move waits for another writer of ours


class WriterLockTimeout(OSError):
    """Another live writer held the ref writer lock for ``WRITER_WAIT`` seconds."""


_WRITER_LOCKS: dict[Path, Path] = {}  # git dir -> its writer lock (a record moves 2 refs)


def _writer_lock(git_dir: Path) -> Path:
    path = _WRITER_LOCKS.get(git_dir)
    if path is None:
        if len(_WRITER_LOCKS) > 100:
            _WRITER_LOCKS.clear()
        path = _WRITER_LOCKS[git_dir] = git_dir / "scp" / WRITER_LOCK
    return path


@contextlib.contextmanager
def ref_move(git_dir: Path, ref: str, work_tree: Path | None = None,
             wait: float = WRITER_WAIT) -> Iterator[None]:
    """Hold our writer lock while moving *ref* (``refs/heads/scp-ledger``, a run tag).

    The lock is an ``flock`` on ``.git/scp/ref-writer.lock``, which names the holder
    (host, pid, start time, ref) while it moves the ref and is emptied after. A record
    still there when the lock is next taken means its writer died mid-move: the
    ``<ref>.lock`` it left (libgit2's) is removed at once, unless a git process works
    here or has it open. Locks of other git programs keep the age rule of
    ``clear_stale_locks``.
    """
    path = _writer_lock(git_dir)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:  # the first ref move of this clone
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        _flock_within(fd, wait, path)
        _clear_after_dead_writer(git_dir, work_tree, os.pread(fd, 4096, 0))
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder(ref), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # moved, or libgit2 failed cleanly: no lock of ours is left
    finally:
        os.close(fd)  # drops the flock


_HOLDER: dict[int, str] = {}  # pid -> this process's part of the record (a fork: another)


def _holder(ref: str) -> bytes:
    pid = os.getpid()
    head = _HOLDER.get(pid)
    if head is None:
        _HOLDER.clear()
        head = _HOLDER[pid] = json.dumps({"host": default_host(), "pid": pid,
                                          "start": process_start_time(pid)})[:-1]
    return f"{head}, \"ref\": {json.dumps(ref)}}}".encode()


def _flock_within(fd: int, wait: float, path: Path) -> None:
    deadline = time.monotonic() + wait
    pause = 0.0005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 4096, 0).decode(errors="replace") or "unknown"
                raise WriterLockTimeout(f"another writer held {path} for {wait:g} s "
                                        f"({holder}); is it stuck?") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.01)


def _clear_after_dead_writer(git_dir: Path, work_tree: Path | None, record: bytes) -> list[str]:
    """Remove the ref lock a writer that died mid-move left; returns what was removed."""
    if not record:
        return []
    try:
        holder = json.loads(record)
        ref, pid, start = str(holder["ref"]), int(holder["pid"]), holder.get("start")
        host = holder.get("host")
    except (ValueError, KeyError, TypeError):
        return []  # cut short: its writer died before naming the ref (no lock taken yet)
    if host != default_host() or process_alive(pid, start) or ".." in ref:
        return []
    lock = git_dir / f"{ref}.lock"
    if not lock.exists():
        return []
    removed = clear_stale_locks(git_dir, work_tree, older_than=0.0, candidates=[lock])
    for name in removed:
        log.warning("removed %s: the writer that held it (pid %s) died mid-write", name, pid)
    return removed
