"""The simulator API: ``POST /api/simulate`` starts live demo runs, ``POST /api/simulate/stop``
ends them, ``GET /api/simulate`` says how far it got.

Off unless ``controlplane serve --simulator`` or ``CONTROLPLANE_SIMULATOR=1`` (or the user
file): then every route answers 404 saying how to enable it. Auth and CSRF are the parent
blueprint's gate, as for every other POST.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from controlplane.core.errors import NotFound
from controlplane.core.runtime import Runtime
from controlplane.core.simulator import SimulationParams, Simulator
from controlplane.ui.web.routes import read_json_body
from controlplane.ui.web.state import state

bp = Blueprint("api_simulate", __name__)
KEY = "simulator"  # Runtime.extra: the app's Simulator, made on first use
DISABLED = ("the simulator is off: start `controlplane serve --simulator` or set "
            "CONTROLPLANE_SIMULATOR=1 (a project file cannot enable it)")


def simulator() -> Simulator:
    """This app's simulator; NotFound (404) when the settings leave it off."""
    plane: Runtime = state()
    if not plane.settings.get("simulator"):
        raise NotFound(DISABLED)
    found = plane.extra.get(KEY)
    if found is None:
        found = plane.extra.setdefault(KEY, Simulator(plane.ledger, plane.bus))
    return found


@bp.get("/api/simulate")
def simulation_status() -> Response:
    """How far the simulation got: running, started, finished, in flight, its run ids."""
    return jsonify(simulator().status())


@bp.post("/api/simulate")
def start_simulation() -> tuple[Response, int]:
    """Start live demo runs: ``count``, ``rate`` (a minute), ``duration_scale``, ``seed``."""
    sim = simulator()
    params = SimulationParams.parse(read_json_body())
    return jsonify(sim.start(params)), 202


@bp.post("/api/simulate/stop")
def stop_simulation() -> Response:
    """Start no more demo runs and cancel those in flight."""
    return jsonify(simulator().stop())
