"""Pass SIGTERM and SIGHUP on to a run's tool: ``controlplane exec`` must not leave orphans.

The tool runs in a process group of its own (see :mod:`controlplane.core.tools`), so a
signal sent to ``exec`` alone never reaches it. While :class:`SignalForwarder` is
active, such a signal is sent on to the tool's group and cancels the run: the tool's
runner then escalates (SIGINT, SIGTERM, SIGKILL) if the tool ignores it, and the run
is recorded ``cancelled``. ``exit_code`` is then ``128 + n``, as a shell reports it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from types import FrameType, TracebackType

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    from typing import Any

    from controlplane.core.context import RunSink

FORWARDED = (signal.SIGTERM, signal.SIGHUP)


def shell_exit_code(returncode: int | None) -> int:
    """The exit code a shell reports: 128+n for a process killed by signal n, 1 if unknown."""
    if returncode is None:
        return 1
    return 128 - returncode if returncode < 0 else returncode


class SignalForwarder:
    """While entered (main thread), SIGTERM and SIGHUP cancel the run :meth:`bind` names and
    go on to the process groups its tool starts; :meth:`bind` returns the run sink to pass
    to ``run_tool`` (it learns the groups). A signal before ``bind`` cancels the run at once.
    """

    def __init__(self) -> None:
        self.run: RunSink | None = None
        self.run_id = ""
        self.cancel_requested = threading.Event()
        self.received: int | None = None  # the first signal that stopped us, if any
        self._groups: set[int] = set()
        self._previous: dict[int, Any] = {}

    def bind(self, run: RunSink) -> SignalForwarder:
        """Forward to *run*'s tools from now on; returns the sink to run them with."""
        self.run, self.run_id = run, run.run_id
        self.cancel_requested = run.cancel_requested
        if self.received is not None:
            self.cancel_requested.set()
        return self

    # the run sink, passed through

    def output(self, line: str, stream: str = "stdout") -> None:
        if self.run is not None:
            self.run.output(line, stream)

    def attach_process(self, pid: int, pgid: int) -> None:
        if self.run is not None:
            self.run.attach_process(pid, pgid)
        self._groups.add(pgid)
        if self.received is not None:  # the signal came while the tool was being started
            self._send(pgid, self.received)

    def detach_process(self, pid: int) -> None:
        self._groups.discard(pid)
        if self.run is not None:
            self.run.detach_process(pid)

    # the signals

    def __enter__(self) -> SignalForwarder:
        if threading.current_thread() is threading.main_thread():
            for number in FORWARDED:
                self._previous[number] = signal.signal(number, self._forward)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    @property
    def exit_code(self) -> int | None:
        """128+n once signal n stopped the run, else None."""
        return None if self.received is None else 128 + self.received

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.received).name if self.received else ""

    def _forward(self, number: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = number
        self.cancel_requested.set()  # the runner escalates if the tool ignores the signal
        for pgid in list(self._groups):
            self._send(pgid, number)

    @staticmethod
    def _send(pgid: int, number: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # gone already
            os.killpg(pgid, number)
