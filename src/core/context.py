"""The run the current thread or task is working for (a context variable).

The tool runner and nested ``tracked_run`` calls read it; nothing else should.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import Protocol


class RunSink(Protocol):
    """What code running inside a Run may report to it."""

    run_id: str
    cancel_requested: threading.Event

    def output(self, line: str, stream: str = "stdout") -> None:
        """Record one line of output (already without its newline)."""

    def attach_process(self, pid: int, pgid: int) -> None:
        """Note a process group the run started, so a crash can clean it up."""

    def detach_process(self, pid: int) -> None:
        """Forget a process group that has ended."""


_current_run: ContextVar[RunSink | None] = ContextVar("controlplane_current_run", default=None)


def current_run() -> RunSink | None:
    """Return the run this code is executing for, or None outside any run."""
    return _current_run.get()


def set_current_run(run: RunSink | None):
    """Make *run* current; returns the token to reset it with."""
    return _current_run.set(run)


def reset_current_run(token) -> None:
    """Restore the run that was current before ``set_current_run``."""
    _current_run.reset(token)
