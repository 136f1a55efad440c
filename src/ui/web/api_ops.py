"""Operations views: the processes working in this clone and the settings diagnostics.

``GET /api/processes`` and ``GET /api/diagnostics`` (JSON, gated like every /api route);
the dashboard renders the same through ``ops_processes()`` and ``ops_diagnostics()``
(``_processes.html``, ``_diagnostics.html``). This worker's heartbeat starts with the app
(``start_heartbeat``) and stops with its runtime.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, jsonify

from controlplane.core.diagnostics import Diagnostics
from controlplane.core.processes import BEAT_SECONDS, STALE_AFTER, WorkerHeartbeat, list_processes
from controlplane.core.runtime import Runtime
from controlplane.ui.web.state import state

bp = Blueprint("api_ops", __name__)

DIAGNOSTICS_KEY = "diagnostics"
HEARTBEAT_KEY = "heartbeat"  # Runtime.close stops it


def start_heartbeat(plane: Runtime) -> None:
    """Beat this server worker's heartbeat file until the runtime closes."""
    plane.extra[HEARTBEAT_KEY] = WorkerHeartbeat(plane.ledger, plane.bus).start()


def diagnostics_of(plane: Runtime) -> Diagnostics:
    found = plane.extra.get(DIAGNOSTICS_KEY)
    if found is None:
        found = plane.extra[DIAGNOSTICS_KEY] = Diagnostics(
            plane.root, plane.ledger.git_dir, plane.settings, plane.actions, plane.tool_env)
    return found


def processes_view() -> dict[str, Any]:
    plane = state()
    own = plane.extra.get(HEARTBEAT_KEY)
    return {"processes": list_processes(plane.ledger, own), "beat_seconds": BEAT_SECONDS,
            "stale_after": STALE_AFTER, "at": time.time()}


def diagnostics_view() -> dict[str, Any]:
    return {"diagnostics": [d.to_dict() for d in diagnostics_of(state()).current()]}


@bp.get("/api/processes")
def processes() -> Response:
    """Server workers and processes with runs in flight: heartbeat, running, processed."""
    return jsonify(processes_view())


@bp.get("/api/diagnostics")
def diagnostics() -> Response:
    """Warnings about the settings: missing tools, no git remote, refused settings."""
    return jsonify(diagnostics_view())


@bp.app_context_processor
def ops_templates() -> dict[str, Any]:
    """What the dashboard's partials call (only when they render)."""
    return {"ops_processes": processes_view, "ops_diagnostics": diagnostics_view}
