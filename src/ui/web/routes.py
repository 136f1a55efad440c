"""The route factory: every declared action becomes ``POST <path>`` in its integration's blueprint.

Order of checks (auth and Host come first, in ``security``): parse the JSON
body (400), validate it against the declaration's model (422 naming every bad
field), confirmation for destructive actions (428), the lock (409), then the
tracked run in the executor. Refusals record nothing. A started run answers
200 with the result, ``run_id`` and ``status`` when it ends, or 202 with
``Location`` at once under ``Prefer: respond-async``.

A form post (``application/x-www-form-urlencoded``, a page with JavaScript off; the
gate took its ``csrf_token`` field as the CSRF proof) starts the run the same way and
answers 303 to the run's page; its refusals are pages: the form again with each
message next to its field (422), a confirmation page for a destructive action
(DECISIONS §5), the run in progress (409).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, redirect, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from controlplane.core.actions import Action
from controlplane.core.errors import (
    BadRequest,
    ConfirmationRequired,
    ControlPlaneError,
    InvalidInput,
    RunInProgress,
)
from controlplane.core.executor import Job
from controlplane.core.run_tracker import default_actor
from controlplane.core.runtime import Runtime
from controlplane.ui.web.forms import body_from_form, fields_of, form_id
from controlplane.ui.web.state import base_url, state

FORM_MIME = "application/x-www-form-urlencoded"
BROWSER_AUTH = ("cookie", "host")  # a login of ours or the host app's: a browser's form post


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

    def view(**url_values: str) -> BaseResponse | tuple[str, int]:
        plane = state()
        if request.mimetype == FORM_MIME and g.get("controlplane_auth") in BROWSER_AUTH:
            return form_post(plane, action, url_values)  # a page: its answers are pages
        body = read_json_body()
        confirmed = body.pop("confirm", False) is True
        job = plane.submit(action, {**body, **url_values}, actor=request_actor(),
                           confirm=confirmed, route=request.path)
        return answer(plane, job)

    view.__name__ = "action_" + action.path.strip("/").replace("/", "_").replace("<", "") \
        .replace(">", "").replace("-", "_")
    view.__doc__ = action.title
    return view


def form_post(plane: Runtime, action: Action,
              url_values: dict[str, str]) -> BaseResponse | tuple[str, int]:
    """A form post with JavaScript off: 303 to the new run's page, or a page saying why not."""
    form = request.form
    for name in action.url_params:  # the form's address names them: <name> is the form's field
        if url_values.get(name) == f"<{name}>":
            url_values[name] = form.get(name, "")
    body, errors = body_from_form(action, form)
    if errors:
        return form_page(action, errors, 422)
    route = action.path
    for name, value in url_values.items():
        route = route.replace(f"<{name}>", value)
    try:
        job = plane.submit(action, {**body, **url_values}, actor=request_actor(),
                           confirm=form.get("confirm") == "yes", route=route)
    except InvalidInput as exc:
        return form_page(action, exc.fields, 422)
    except ConfirmationRequired:
        return form_page(action, {}, 200, confirming=True)
    except RunInProgress as exc:
        return form_page(action, {}, 409, problem=exc.message, run_in_progress=exc.run_id)
    except ControlPlaneError as exc:
        return form_page(action, {}, exc.status, problem=exc.message)
    return redirect(f"{base_url()}/runs/{job.active.run_id}", code=303)


def form_page(action: Action, errors: dict[str, str], status: int, *, confirming: bool = False,
              problem: str = "", run_in_progress: str = "") -> tuple[str, int]:
    """The action's form again, holding what was posted (never a secret), with what to do."""
    values = {k: v for k, v in request.form.items() if k not in ("csrf_token", "confirm")}
    fields = fields_of(action)
    for field in fields:
        if field.kind == "secret":
            values.pop(field.name, None)
    page = render_template("controlplane/action_post.html", page="integration",
                           integration=action.integration, action=action, fields=fields,
                           form_id=form_id(action),
                           values=values, errors=errors, confirming=confirming,
                           problem=problem, run_in_progress=run_in_progress)
    return page, status


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
