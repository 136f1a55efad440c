"""What the current thread or task works for: its run, and its runtime (context variables).

The tool runner and nested ``tracked_run`` calls read the run; ``tracked_run`` reads the
runtime. Kept free of heavy imports: a script's ``tracked_run`` must start fast.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from pathlib import Path

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:  # RunSink is a type only: import it under TYPE_CHECKING
    import weakref
    from typing import Any, Protocol

    class RunSink(Protocol):
        """What code running inside a Run may report to it."""

        @property
        def run_id(self) -> str:
            """The run's id."""

        @property
        def cancel_requested(self) -> threading.Event:
            """Set when someone asked to cancel the run."""

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


_current_runtime: ContextVar[Any] = ContextVar("controlplane_runtime", default=None)
# made by serve_root: weakref, a module of its own, is for a process that serves
_runtimes_by_root: weakref.WeakValueDictionary[Path, Any] | None = None
_runtimes_lock = threading.Lock()


def current_runtime() -> Any:
    """The runtime made current in this context (a request, a CLI command), if any."""
    return _current_runtime.get()


def set_current_runtime(runtime: Any):
    """Make *runtime* current; returns the token to reset it with."""
    return _current_runtime.set(runtime)


def reset_current_runtime(token) -> None:
    _current_runtime.reset(token)


def runtime_for(root: Path) -> Any:
    """The open runtime serving the project at *root* in this process, if any."""
    runtimes = _runtimes_by_root
    if not runtimes:  # a script's process: no path to resolve
        return None
    with _runtimes_lock:
        return runtimes.get(Path(root).resolve())


def serve_root(root: Path, runtime: Any) -> None:
    """Note that *runtime* serves the project at *root* in this process."""
    import weakref

    global _runtimes_by_root
    with _runtimes_lock:
        if _runtimes_by_root is None:
            _runtimes_by_root = weakref.WeakValueDictionary()
        _runtimes_by_root[Path(root).resolve()] = runtime


def stop_serving_root(root: Path, runtime: Any) -> None:
    with _runtimes_lock:
        if _runtimes_by_root is not None and _runtimes_by_root.get(Path(root).resolve()) \
                is runtime:
            del _runtimes_by_root[Path(root).resolve()]
