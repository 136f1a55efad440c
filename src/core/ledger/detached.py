"""Processes meant to outlive this one: a roll-up of packs, ``git gc --auto``, an ``rm -rf``.

Each runs in a session of its own (a Ctrl-C at the terminal does not reach it), with no
input or output, and is never waited for by an exit. This module holds the only strong
reference to each ``Popen``, dropped once the process is seen to have ended; callers keep
a :class:`Detached` handle. At exit, the handles of processes still running are let go
with Popen's "subprocess N is still running" ResourceWarning ignored: that warning is for
a child left running by mistake, and a script run with warnings on (``-X dev``, pytest)
printed it for every roll-up still working when the script ended.
"""

from __future__ import annotations

import atexit
import threading
import warnings

from controlplane.core.lazy import Lazy

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
else:
    subprocess = Lazy(globals(), "subprocess")  # at a first start: a read needs none

_running: list[subprocess.Popen[bytes]] = []
_lock = threading.Lock()
_release_registered = False


class Detached:
    """A handle on a detached process: ``poll()`` and ``wait()`` answer None while it runs."""

    __slots__ = ("_process", "pid")

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        import weakref  # with the first process started: a command that starts none skips it

        self._process = weakref.ref(process)
        self.pid = process.pid

    def poll(self) -> int | None:
        """None while it runs; its exit code (0 when already let go: it had ended)."""
        process = self._process()
        return 0 if process is None else process.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Its exit code, waited for at most *timeout* s (``subprocess.TimeoutExpired``)."""
        process = self._process()
        return 0 if process is None else process.wait(timeout)


def start(argv: list[str]) -> Detached:
    """Start *argv* detached; OSError if it cannot start."""
    global _release_registered
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True,
                               close_fds=True)
    with _lock:
        _running[:] = [other for other in _running if other.poll() is None]
        _running.append(process)
        if not _release_registered:
            atexit.register(_release)
            _release_registered = True
    return Detached(process)


def _release() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        with _lock:
            _running.clear()  # the last references: each Popen is freed here, not later
