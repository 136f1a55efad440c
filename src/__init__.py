"""Solution Control Plane: every action becomes a Run, recorded in git and shown live."""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing itself costs every command ~3 ms of start-up (issue 18)
if TYPE_CHECKING:
    from typing import Any

    from controlplane.core.run_tracker import run_tracked, tracked_run
    from controlplane.core.runs import Run, RunStatus

__all__ = ["Run", "RunStatus", "run_tracked", "tracked_run"]
__version__ = "0.1.0"

_LAZY = {"run_tracked": "controlplane.core.run_tracker",
         "tracked_run": "controlplane.core.run_tracker",
         "Run": "controlplane.core.runs", "RunStatus": "controlplane.core.runs"}


def __getattr__(name: str) -> Any:
    """Import the public names on first use: ``controlplane.cli`` starts without them."""
    if name not in _LAZY:
        raise AttributeError(f"module 'controlplane' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
