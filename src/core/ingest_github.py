"""GitHub's ``workflow_run`` and ``workflow_job`` webhooks, read as ingest reports.

A workflow run is keyed by repository, run id and attempt; a job by repository, job
id and attempt: every delivery about it (requested, in_progress, completed, and their
redeliveries) lands on one Run. Other events record nothing.
"""

from __future__ import annotations

import re
from typing import Any

from controlplane.core.actions import validate_model
from controlplane.core.errors import InvalidInput
from controlplane.core.ingest import IngestedRun, Origin

EVENTS = ("workflow_run", "workflow_job")
BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}\Z")
# GitHub's conclusion -> our status; anything else unfinished reads as failed
CONCLUSIONS = {"success": "ok", "neutral": "ok", "failure": "failed", "timed_out": "failed",
               "startup_failure": "failed", "action_required": "failed",
               "cancelled": "cancelled", "skipped": "cancelled", "stale": "cancelled"}
WAITING = frozenset({"queued", "requested", "waiting", "pending"})


def slug(text: str) -> str:
    """A subtype detail from a workflow or job name: ``Build & Test`` -> ``build-test``."""
    return re.sub(r"[^a-z0-9_.]+", "-", text.lower()).strip("-._")[:64].rstrip("-._")


def from_github(event: str, payload: dict[str, Any],
                delivery: str | None) -> tuple[IngestedRun, Origin] | str:
    """The report and origin a webhook carries, or why it records nothing."""
    if event not in EVENTS:
        return f"{event or 'no'} event: only {' and '.join(EVENTS)} are recorded"
    item = payload.get(event)
    repository = payload.get("repository")
    if not isinstance(item, dict) or not isinstance(repository, dict):
        raise InvalidInput({event if not isinstance(item, dict) else "repository":
                            "missing: not a GitHub webhook body"})
    read = _run if event == "workflow_run" else _job
    fields, names, key = read(item, payload)
    report = _validated(event, fields, names)
    full_name = str(repository.get("full_name") or "")
    ci = {"provider": "github", "event": event, "repository": full_name,
          "run_id": item.get("run_id", item.get("id")), "attempt": item.get("run_attempt", 1)}
    if event == "workflow_job":
        ci["job_id"] = item.get("id")
    conclusion = item.get("conclusion")
    return report, Origin(key=f"github/{full_name}/{key}", delivery=delivery, ci=ci,
                          conclusion=conclusion if conclusion not in (None, "success") else None)


def _status(item: dict[str, Any]) -> str:
    status = item.get("status")
    if status == "completed":
        return CONCLUSIONS.get(str(item.get("conclusion")), "failed")
    return "queued" if status in WAITING else "running"


def _actor(*users: Any) -> str | None:
    for user in users:
        if isinstance(user, dict) and isinstance(user.get("login"), str):
            return user["login"]
    return None


def _branch(value: Any) -> str | None:
    return value if isinstance(value, str) and BRANCH.match(value) else None  # a tag, a fork…


def _run(item: dict[str, Any], payload: dict[str, Any]
         ) -> tuple[dict[str, Any], dict[str, str], str]:
    workflow = payload.get("workflow")
    workflow = workflow if isinstance(workflow, dict) else {}
    name = str(item.get("name") or workflow.get("name") or "")
    status = _status(item)
    title = item.get("display_title")
    fields = {"pipeline": slug(name) or f"workflow-{item.get('workflow_id')}",
              "status": status, "started_at": item.get("run_started_at"),
              "finished_at": item.get("updated_at") if status in CONCLUSIONS.values() else None,
              "branch": _branch(item.get("head_branch")), "commit": item.get("head_sha"),
              "actor": _actor(item.get("triggering_actor"), item.get("actor"),
                              payload.get("sender")),
              "url": item.get("html_url"),
              "summary": f"{name} #{item.get('run_number')}" + (f": {title}" if title else "")}
    names = {"pipeline": "workflow_run.name", "started_at": "workflow_run.run_started_at",
             "finished_at": "workflow_run.updated_at", "commit": "workflow_run.head_sha",
             "actor": "workflow_run.triggering_actor.login", "url": "workflow_run.html_url",
             "status": "workflow_run.conclusion"}
    return fields, names, f"run/{item.get('id')}/{item.get('run_attempt', 1)}"


def _job(item: dict[str, Any], payload: dict[str, Any]
         ) -> tuple[dict[str, Any], dict[str, str], str]:
    workflow, job = str(item.get("workflow_name") or ""), str(item.get("name") or "")
    status = _status(item)
    fields = {"pipeline": (f"{slug(workflow)}.{slug(job)}".strip(".")[:64].rstrip("-._")
                           or f"job-{item.get('id')}"),
              "status": status, "started_at": item.get("started_at"),
              "finished_at": item.get("completed_at"),
              "branch": _branch(item.get("head_branch")), "commit": item.get("head_sha"),
              "actor": _actor(payload.get("sender")), "url": item.get("html_url"),
              "summary": f"{workflow} / {job}"}
    names = {"pipeline": "workflow_job.name", "started_at": "workflow_job.started_at",
             "finished_at": "workflow_job.completed_at", "commit": "workflow_job.head_sha",
             "actor": "sender.login", "url": "workflow_job.html_url",
             "status": "workflow_job.conclusion"}
    return fields, names, f"job/{item.get('id')}/{item.get('run_attempt', 1)}"


def _validated(event: str, fields: dict[str, Any], names: dict[str, str]) -> IngestedRun:
    """The report, or 422 naming the webhook's own fields."""
    fields = {k: v for k, v in fields.items() if v is not None}
    fields["summary"] = str(fields.get("summary", ""))[:300]
    try:
        return validate_model(IngestedRun, fields)
    except InvalidInput as exc:
        raise InvalidInput({names.get(name, f"{event}.{name}"): message
                            for name, message in exc.fields.items()}) from None
