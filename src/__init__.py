"""Solution Control Plane: every action becomes a Run, recorded in git and shown live."""

from controlplane.core.run_tracker import run_tracked, tracked_run
from controlplane.core.runs import Run, RunStatus

__all__ = ["Run", "RunStatus", "run_tracked", "tracked_run"]
__version__ = "0.1.0"
