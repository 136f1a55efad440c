"""What a power cut may lose of the ledger: the ``durability`` operator setting.

* ``record``: libgit2 fsyncs every object, the ref and their directories before a record
  returns (``enable_fsync_gitdir``; process-wide, so the strictest ledger of a process
  wins). A power cut loses nothing recorded.
* ``batched`` (default): the file system holding ``.git`` is flushed (``syncfs``) at most
  ``BATCH_SECONDS`` after a record, and when the process exits (by a ``sync -f`` process
  started then, which the exit does not wait for). A power cut loses at most
  the records of that last second; a tip whose objects did not reach the disk is moved
  back by ``controlplane ledger doctor``, which records those runs again from the view.
* ``none``: the kernel writes back when it likes (about 30 s on Linux); the same repair.

Caches (view, index) are never flushed: they are rebuilt from the ledger.
"""

from __future__ import annotations

import atexit
import functools
import os
import threading
from pathlib import Path

from controlplane.core import lazy, settings
from controlplane.core.lazy import Lazy

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    import pygit2
else:
    pygit2 = Lazy(globals(), "pygit2")  # only the "record" mode uses it

log = lazy.Logger(__name__)

MODES = ("none", "record", "batched")
BATCH_SECONDS = 1.0


@functools.cache
def _syncfs_function():
    """libc's ``syncfs``, looked up at the first flush: in the process's own symbols, else
    by ``find_library`` (which runs ``ldconfig``: milliseconds at every CLI exit)."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        pass
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


def flush_filesystem(path: Path) -> None:
    """Write back every dirty page of the file system holding *path* (``syncfs``)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        syncfs = _syncfs_function()
        if syncfs is None or syncfs(fd) != 0:
            os.sync()  # no syncfs: every file system
    finally:
        os.close(fd)


class Durability:
    """One ledger's durability mode; ``recorded()`` after each commit on the ledger."""

    def __init__(self, git_dir: Path, mode: str) -> None:
        if mode not in MODES:
            raise settings.SettingsError(f"durability must be one of {', '.join(MODES)} "
                                         f"(got {mode!r})")
        self.git_dir = git_dir
        self.mode = mode
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._exit_hook = False
        if mode == "record":
            pygit2.settings.enable_fsync_gitdir(True)

    def recorded(self) -> None:
        """A commit was made: nothing to do (``none``, ``record``) or flush soon (batched)."""
        if self.mode != "batched":
            return
        with self._lock:
            if self._timer is not None:
                return  # the pending flush covers this record too
            self._timer = threading.Timer(BATCH_SECONDS, self.flush)
            self._timer.daemon = True
            self._timer.name = "scp-flush"
            self._timer.start()
            if not self._exit_hook:
                atexit.register(self.flush_at_exit)  # a script or the CLI exits first
                self._exit_hook = True

    def flush(self) -> None:
        """Flush now if a batch is pending."""
        if self._take_pending():
            self._flush_here()

    def flush_at_exit(self) -> None:
        """At exit, a pending batch is flushed by ``sync --file-system`` in a process of its
        own, started now and not waited for: the exit (a CLI command's answer) does not wait
        for the disk, and the flush still starts at once (well within ``BATCH_SECONDS``).
        Here, as before, if that process cannot start."""
        if self._take_pending() and not _flush_detached(self.git_dir):
            self._flush_here()

    def _take_pending(self) -> bool:
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is None:
            return False
        timer.cancel()
        return True

    def _flush_here(self) -> None:
        try:
            flush_filesystem(self.git_dir)
        except FileNotFoundError:  # the repository was deleted: none of its files are left
            log.debug("no flush: %s is gone", self.git_dir)
        except OSError as exc:
            log.warning("could not flush the ledger to disk: %s", exc)


def _flush_detached(path: Path) -> bool:
    """Start ``sync -f <path>`` (coreutils' ``syncfs``) in a session of its own, so a
    Ctrl-C at the terminal does not stop it; False if it cannot start. Not waited for: the
    exiting process's parent (init, a subreaper) reaps it."""
    devnull = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    try:
        os.posix_spawnp("sync", ["sync", "--file-system", str(path)], os.environ,
                        file_actions=devnull, setsid=True)
    except OSError:
        return False
    return True
