"""Cancel, rerun and retry from the runs list and a run's page with JavaScript off.

Each row of the runs list holds two small forms (``templates/controlplane/_macros.html``,
``run_row``) and a run's page three (``run.html``: Cancel run, Rerun, Retry failed), each
posting ``csrf_token`` (the gate takes it as the CSRF proof, DECISIONS §5) to
``/runs/<id>/cancel``, ``/runs/<id>/rerun`` or ``/runs/<id>/retry-failed``. They do what
the JSON routes do (``api_runs.cancel_run``, ``rerun_job``, ``retry_job``) and answer 303
to the run's page; a refusal is a page saying why, and a destructive action's rerun a
confirmation page. With JavaScript the pages send the JSON calls instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from controlplane.core.errors import ConfirmationRequired, ControlPlaneError, InvalidInput
from controlplane.core.executor import Job
from controlplane.ui.web.api_runs import cancel_run, rerun_job, retry_job, retry_params
from controlplane.ui.web.state import base_url, state

bp = Blueprint("run_forms", __name__)


def run_page_url(run_id: str) -> str:
    return f"{base_url()}/runs/{run_id}"


def refusal_page(run_id: str, what: str, error: ControlPlaneError, *,
                 confirming: bool = False) -> tuple[str, int]:
    """Why *what* did not happen (or the confirmation a destructive rerun needs)."""
    run: dict[str, Any] = state().ledger.get(run_id) or {}
    fields = error.extra.get("fields") if isinstance(error, InvalidInput) else None
    params = {k: v for k, v in (run.get("params") or {}).items() if not str(k).startswith("_")}
    if what == "retry-failed":  # what the retry would run: the failing tests only
        params = retry_params(run, state().actions.get(run.get("action") or "")) or params
    page = render_template("controlplane/run_form_post.html", page="runs", run_id=run_id,
                           run=run, what=what, problem=error.message, fields=fields or {},
                           params=params, confirming=confirming,
                           in_progress=error.extra.get("run_id", ""))
    return page, 200 if confirming else error.status


@bp.post("/runs/<run_id>/cancel")
def cancel_form(run_id: str) -> BaseResponse | tuple[str, int]:
    """Cancel an in-flight run; 303 to its page."""
    try:
        cancel_run(run_id)
    except ControlPlaneError as exc:
        return refusal_page(run_id, "cancel", exc)
    return redirect(run_page_url(run_id), code=303)


@bp.post("/runs/<run_id>/rerun")
def rerun_form(run_id: str) -> BaseResponse | tuple[str, int]:
    """Rerun an ended run (``confirm=yes`` for a destructive action); 303 to the new run."""
    return started_or_refused(run_id, "rerun", rerun_job)


@bp.post("/runs/<run_id>/retry-failed")
def retry_form(run_id: str) -> BaseResponse | tuple[str, int]:
    """Run a failed test run's failing tests again (``confirm=yes`` for a destructive
    action); 303 to the new run."""
    return started_or_refused(run_id, "retry-failed", retry_job)


def started_or_refused(run_id: str, what: str, start: Callable[[str, bool], Job]
                       ) -> BaseResponse | tuple[str, int]:
    """303 to the run *start* began for *run_id*, or the page saying why it did not."""
    try:
        job = start(run_id, request.form.get("confirm") == "yes")
    except ConfirmationRequired as exc:
        return refusal_page(run_id, what, exc, confirming=True)
    except ControlPlaneError as exc:
        return refusal_page(run_id, what, exc)
    return redirect(run_page_url(job.active.run_id), code=303)
