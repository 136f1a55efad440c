"""Errors a caller can act on, each carrying the HTTP status the web layer answers with.

```
ControlPlaneError (500, "internal")
├── BadRequest (400, "bad_request")           unreadable JSON
├── InvalidInput (422, "invalid_input")       names every bad field in .fields
├── NotFound (404, "not_found")
├── ConfirmationRequired (428, "confirmation_required")
├── Conflict (409, "conflict")
│   └── RunInProgress (409, "run_already_in_progress")  .run_id
└── ToolError (failed runs) — see controlplane.core.tools
```
The core raises them without knowing HTTP; ``ui.web.errors`` renders them as JSON.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    from typing import Any


class ControlPlaneError(Exception):
    """Base: ``status`` and ``code`` for the answer, ``message`` for people."""

    status = 500
    code = "internal"

    def __init__(self, message: str = "", **extra: Any) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code.replace("_", " ")
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


class BadRequest(ControlPlaneError):
    status, code = 400, "bad_request"


class InvalidInput(ControlPlaneError):
    status, code = 422, "invalid_input"

    def __init__(self, fields: dict[str, str], message: str = "invalid input") -> None:
        super().__init__(message, fields=fields)
        self.fields = fields


class NotFound(ControlPlaneError):
    status, code = 404, "not_found"


class ConfirmationRequired(ControlPlaneError):
    status, code = 428, "confirmation_required"


class Conflict(ControlPlaneError):
    status, code = 409, "conflict"


class RunInProgress(Conflict):
    code = "run_already_in_progress"

    def __init__(self, run_id: str, lock_key: str) -> None:
        super().__init__(f"a run with lock {lock_key!r} is already queued or running",
                         run_id=run_id, lock_key=lock_key)
        self.run_id = run_id
