"""The route factory: every declared action becomes ``POST <path>`` in its integration's blueprint.

Order of checks (auth and Host come first, in ``security``): parse the JSON
body (400), validate it against the declaration's model (422 naming every bad
field), confirmation for destructive actions (428), the lock (409), then the
tracked run in the executor. Refusals record nothing. A started run answers
200 with the result, ``run_id`` and ``status`` when it ends, or 202 with
``Location`` at once under ``Prefer: respond-async``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel
from werkzeug.exceptions import HTTPException

from controlplane.core.actions import Action
from controlplane.core.errors import BadRequest
from controlplane.core.executor import Job
from controlplane.core.run_tracker import default_actor
from controlplane.core.runtime import Runtime
from controlplane.ui.web.state import base_url, state


def read_json_body() -> dict[str, Any]:
    """The request's JSON object; aborts with 400 ``BadRequest`` if unreadable or not an object."""
    try:  # a broken transfer (bad chunk framing, a client gone) is the client's error
        raw = request.get_data(cache=True)
    except HTTPException:  # e.g. 413: the body is over the limit
        raise
    except Exception:
        raise BadRequest("the body could not be read (broken transfer encoding?)") from None
    if not raw:
        return {}
    try:
        body = request.get_json(force=True, silent=False)
    except Exception:  # werkzeug raises BadRequest subclasses with HTML bodies: answer ours
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def request_actor() -> dict[str, str]:
    """Who asks: the actor a host app's ``authorize`` returned, else ``web`` for a
    logged-in browser, ``api`` for a Bearer client."""
    host_actor = request.environ.get("controlplane.actor")
    if host_actor is not None:
        return dict(host_actor)
    kind = "web" if request.environ.get("controlplane.auth") == "cookie" else "api"
    return {"kind": kind,
            "name": request.environ.get("controlplane.user") or default_actor()["name"]}


def start_action(plane: Runtime, action: Action, params: BaseModel | dict[str, Any],
                 path: str, *, actor: dict[str, str] | None = None,
                 rerun_of: str | None = None, confirm: bool = False) -> Job:
    """Submit an action through the runtime's one start path (``Runtime.submit``)."""
    data = params.model_dump() if isinstance(params, BaseModel) else params
    return plane.submit(action, data, actor=actor or default_actor("web"), confirm=confirm,
                        rerun_of=rerun_of, route=path)


def answer(plane: Runtime, job: Job) -> Response:
    """202 + Location under ``Prefer: respond-async``, else wait and answer 200 with the result."""
    run_id = job.active.run_id
    if "respond-async" in request.headers.get("Prefer", ""):
        location = f"{base_url()}/api/runs/{run_id}"
        response = jsonify({"run_id": run_id, "status": str(job.active.run.status),
                            "location": location})
        response.status_code = 202
        response.headers["Location"] = location
        return response
    plane.executor.wait(run_id)
    final = job.final or job.active.run.to_dict()
    plane.executor.forget(run_id)
    body = dict(final.get("result") or {})
    body.update(run_id=run_id, status=final["status"])
    if final.get("error"):
        body["error"] = final["error"]
    return jsonify(body)


def make_view(action: Action):
    """The view for one action."""

    def view(**url_values: str) -> Response:
        plane = state()
        body = read_json_body()
        confirmed = body.pop("confirm", False) is True
        job = plane.submit(action, {**body, **url_values}, actor=request_actor(),
                           confirm=confirmed, route=request.path)
        return answer(plane, job)

    view.__name__ = "action_" + action.path.strip("/").replace("/", "_").replace("<", "") \
        .replace(">", "").replace("-", "_")
    view.__doc__ = action.title
    return view


def build_blueprints(actions: dict[str, Action]) -> list[Blueprint]:
    """One blueprint per integration, one POST route per action."""
    blueprints: dict[str, Blueprint] = {}
    for action in actions.values():
        bp = blueprints.get(action.integration)
        if bp is None:
            bp = blueprints[action.integration] = Blueprint(f"actions_{action.integration}",
                                                            __name__)
        bp.add_url_rule(action.path, view_func=make_view(action), methods=["POST"])
    return list(blueprints.values())
