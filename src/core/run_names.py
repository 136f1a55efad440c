"""The names a command checks before it reads anything: run types and statuses.

Apart from :mod:`controlplane.core.runs` (the Run model, with datetime and its patterns)
so that ``runs list`` validates ``--type`` and ``--status`` without importing it.
"""

from __future__ import annotations

from enum import StrEnum

RUN_TYPES: tuple[str, ...] = (
    "install",
    "build",
    "deploy",
    "destroy",
    "setup",
    "plan",
    "validate",
    "format",
    "test",
    "scan",
    "generate",
    "backup",
    "restore",
    "git",
    "ci",
)


class RunStatus(StrEnum):
    """Where a run is in its life; the last four are final."""

    QUEUED = "queued"
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def is_final(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)
