"""The contracts of the pluggable parts: what a bus backend, a coordinator and a run must offer.

Each is a ``typing.Protocol``: the in-process and the Redis implementations satisfy it
structurally, and a test (``tests/test_contracts.py``) checks them with mypy's eyes at
runtime (``isinstance`` against the ``runtime_checkable`` protocol).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class BusBackend(Protocol):
    """Numbers envelopes, keeps a replay window and delivers what other processes publish.

    ``MemoryBackend`` (one process) and ``RedisBackend`` (several workers) implement it.
    """

    epoch: str

    def append(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """Give *envelope* its id (``<epoch>-<seq>``) and keep it for replay; returns it."""

    def since(self, seq: int) -> list[dict[str, Any]] | None:
        """Envelopes after *seq*, or None when they are no longer kept (the client resyncs)."""

    def last_seq(self) -> int:
        """The sequence number of the newest envelope (0 when none)."""

    def announce(self, entry_id: str) -> None:
        """Note that a run or message will be announced live by its writer (feeds skip it)."""

    def announced(self, entry_id: str) -> bool:
        """Whether *entry_id* was announced live."""

    def start(self, deliver: Callable[[dict[str, Any]], None]) -> bool:
        """Start delivering envelopes published elsewhere; True if this backend is shared."""

    def close(self) -> None:
        """Stop delivering and release connections."""


@runtime_checkable
class Coordinator(Protocol):
    """Locks, run slots and cancel requests for an executor.

    ``LocalCoordinator`` (one process, locks also as flocks) and ``RedisCoordinator``
    (several workers) implement it.
    """

    def lock(self, key: str, run_id: str) -> str | None:
        """Take *key* for *run_id*; the holder's run id when someone else has it."""

    def unlock(self, key: str, run_id: str) -> None:
        """Release *key* if *run_id* holds it."""

    def claim_slot(self, run_id: str) -> bool:
        """Take one of the executing slots for *run_id*; False when all are taken."""

    def release_slot(self, run_id: str) -> None:
        """Give *run_id*'s slot back."""

    def refresh(self, held: dict[str, str], running: list[str]) -> None:
        """Keep the locks and slots this process holds alive (shared stores expire them)."""

    def listen(self, cancel: Callable[[str], None], slot_freed: Callable[[], None]) -> None:
        """Call *cancel* for cancel requests and *slot_freed* when another worker frees one."""

    def request_cancel(self, run_id: str) -> bool:
        """Ask whichever worker executes *run_id* to cancel it; False if none can hear."""

    def close(self) -> None:
        """Release connections and listeners."""


@runtime_checkable
class RunReporter(Protocol):
    """What an action's service may report to its run (``ActionContext.run``).

    ``ActiveRun`` implements it; a service never needs more.
    """

    summary: str

    @property
    def run_id(self) -> str:
        """The run's id."""

    @property
    def cancel_requested(self) -> threading.Event:
        """Set when someone asked to cancel the run: long work should check it."""

    @property
    def target(self) -> dict[str, Any]:
        """What the run acts on (kube context, workspace…): a service fills it in."""

    def output(self, line: str, stream: str = "stdout") -> None:
        """One line of output (without its newline)."""

    def progress(self, done: int, total: int) -> None:
        """How far the run is."""

    def add_artifact(self, path: str, sha256: str | None = None, **info: Any) -> None:
        """A file the run produced."""

    def fail(self, code: str, message: str) -> None:
        """Mark the run failed (it still runs to the end of its block)."""

    def attach_process(self, pid: int, pgid: int) -> None:
        """Note a process group the run started, so a crash can clean it up."""

    def detach_process(self, pid: int) -> None:
        """Forget a process group that has ended."""


__all__ = ["BusBackend", "Coordinator", "RunReporter"]
