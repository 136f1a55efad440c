"""The dashboard's pages: server-rendered shells that small ES modules fill in from the APIs.

Every page is escaped Jinja (never ``|safe`` on user text) plus
``static/js/<page>.js``; the modules fetch the JSON APIs and follow the live
events (one EventSource per tab, ``static/js/live.js``). No inline script or
style: the CSP allows only what ``static/`` serves.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template

from controlplane.core.actions import Action
from controlplane.core.runs import RUN_TYPES, RunStatus, is_run_id
from controlplane.ui.web.forms import fields_of, form_id
from controlplane.ui.web.state import base_url, state

bp = Blueprint("pages", __name__)

METRICS_DAYS = 14


def by_integration() -> dict[str, list[Action]]:
    """The actions this app serves, by integration."""
    grouped: dict[str, list[Action]] = {}
    for action in state().actions.values():
        grouped.setdefault(action.integration, []).append(action)
    return grouped


def integration_names() -> list[str]:
    """Every integration with at least one served action, sorted."""
    return sorted(by_integration())


def navigation() -> dict[str, Any]:
    """What every page of ours needs: the integrations menu and the base path for the JS."""
    return {"nav_integrations": integration_names(), "controlplane_base": base_url(),
            "host_login": "authorize" in state().extra}



@bp.get("/")
def runs_page() -> str:
    return render_template("controlplane/runs.html", page="runs", run_types=RUN_TYPES,
                           statuses=[s.value for s in RunStatus])


@bp.get("/metrics")
def metrics_page() -> str:
    return render_template("controlplane/metrics.html", page="metrics", days=METRICS_DAYS)


def known_run_or_404(run_id: str) -> dict[str, Any]:
    """The run, or abort with 404 (an HTML page for a browser)."""
    run = state().ledger.get(run_id) if is_run_id(run_id) else None
    if run is None:
        abort(404, f"There is no run {run_id} in this project.")
    return run


@bp.get("/runs/<run_id>")
def run_page(run_id: str) -> str:
    run = known_run_or_404(run_id)
    return render_template("controlplane/run.html", page="run", run_id=run["run_id"],
                           subtype=run.get("subtype", ""))


@bp.get("/integrations")
def integrations_page() -> str:
    grouped = by_integration()
    overview = [{"name": name, "actions": sorted(a.title for a in grouped[name])}
                for name in sorted(grouped)]
    return render_template("controlplane/integrations.html", page="integrations",
                           integrations=overview)


@bp.get("/integrations/<name>")
def integration_page(name: str) -> str:
    actions = by_integration().get(name)
    if not actions:
        abort(404, f"There is no integration called {name}.")
    cards = [{"action": a, "fields": fields_of(a), "form_id": form_id(a)} for a in actions]
    return render_template("controlplane/integration.html", page="integration", integration=name,
                           action_count=len(actions), cards=cards)
