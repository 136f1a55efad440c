"""Solution Control Plane: every action becomes a Run, recorded in git and shown live."""

from __future__ import annotations

from controlplane.core import lazy

TYPE_CHECKING = False  # typing itself costs every command ~3 ms of start-up (issue 18)
if TYPE_CHECKING:
    from controlplane.core.run_tracker import run_tracked, tracked_run
    from controlplane.core.runs import Run, RunStatus

__all__ = ["Run", "RunStatus", "run_tracked", "tracked_run"]
__version__ = "0.1.0"

__getattr__ = lazy.exports(globals(), {  # controlplane.cli starts without them
    "run_tracked": "controlplane.core.run_tracker",
    "tracked_run": "controlplane.core.run_tracker",
    "Run": "controlplane.core.runs", "RunStatus": "controlplane.core.runs"})
