"""The dashboard's pages, rendered on the server: they work with JavaScript off.

Every page is escaped Jinja (never ``|safe`` on user text) holding what the APIs
would answer (runs, a run and its output, metrics, action forms), plus
``static/js/pages/<page>.js``, which enhances that markup: live rows, streaming
output, toasts. Markup the JS adds comes from ``<template>`` elements rendered by
the same macros (docs/dashboard.md). No inline script or style: the CSP allows
only what ``static/`` serves.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from flask import Blueprint, abort, render_template, request

from controlplane.core.actions import Action
from controlplane.core.ledger.run_query import RunFilter, find_runs
from controlplane.core.output import HEAD_EVENTS, TAIL_EVENTS, cap_events
from controlplane.core.runs import RUN_TYPES, RunStatus, is_run_id
from controlplane.ui.web import ops_forms
from controlplane.ui.web.commit_links import commit_base
from controlplane.ui.web.forms import fields_of, form_id
from controlplane.ui.web.state import base_url, state

bp = Blueprint("pages", __name__)

METRICS_DAYS = 14
PAGE_LINES = 2_000  # what the run page keeps (static/js/pages/run.js keeps as many)
TERMINAL_CODES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]")


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
            "host_login": "authorize" in state().extra, "cp_duration": format_duration,
            "cp_time": format_time}


# -- figures as the JS formats them (static/js/format.js), for the pages without JS ----------


def format_duration(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{max(0, round(ms))} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min {int(seconds % 60):02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def format_time(iso: str | None) -> str:
    """An ISO timestamp as UTC text (the JS shows local time)."""
    return f"{iso[:19].replace('T', ' ')} UTC" if iso else "—"


FINAL_STATUSES = frozenset(status.value for status in RunStatus if status.is_final)


def in_flight(status: object) -> bool:
    """Not ended (yet): the rule by which a run offers Cancel rather than Rerun, on its
    page and in the runs list (``static/js/format.js`` ``isFinal``, in the browser)."""
    return status not in FINAL_STATUSES


def format_json(value: Any) -> str:
    """*value* as ``JSON.stringify(value, null, 2)`` writes it (static/js/run-details.js):
    readable text for the page to escape, not ``tojson``'s ``\\u0027`` for a script."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def format_percent(rate: float | None) -> str:
    if rate is None:
        return "—"
    return f"{rate * 100:.0f} %" if rate in (0, 1) else f"{rate * 100:.1f} %"


def kpi_values(summary: dict[str, Any]) -> dict[str, Any]:
    """The KPI cards' texts from ``/api/metrics/summary``'s answer."""
    p95 = summary.get("p95_duration_ms")
    return {
        "total": f"{summary.get('total', 0):,}", "success_rate":
        format_percent(summary.get("success_rate")),
        "avg_duration_ms": format_duration(summary.get("avg_duration_ms")),
        "last_status": summary.get("last_status"),
        "notes": {"total": f"{summary.get('ok', 0):,} ok · {summary.get('failed', 0):,} failed",
                  "success_rate": "of all finished runs",
                  "avg_duration_ms": "" if p95 is None else f"95 % under {format_duration(p95)}",
                  "last_status": "of the latest run"},
    }



RUNS_PAGE = 50  # rows a page shows (static/js/runs-table.js loads as many)


def run_filters() -> RunFilter:
    """The runs list's filters from the query: unknown types, statuses and days are ignored."""
    statuses = [s.value for s in RunStatus]
    values = request.args.to_dict()
    values["type"] = values.get("type", "") if values.get("type") in RUN_TYPES else ""
    values["status"] = values.get("status", "") if values.get("status") in statuses else ""
    return RunFilter.of(values, strict=False)


def job_url(run: dict[str, Any]) -> str | None:
    """An ingested CI run's job page (http/https only), else None."""
    url = (run.get("target") or {}).get("url") if run.get("type") == "ci" else None
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def pipeline_groups(flt: RunFilter, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs list grouped by pipeline: the KPIs' per-pipeline figures (same filters, same
    window), each with its newest finished run matching the filters (one indexed query each)."""
    index = state().ledger.index
    groups = []
    for entry in summary.get("pipelines") or []:
        name = entry["subtype"]
        last = index.filtered(replace(flt, subtype=name), limit=1) if name else []
        groups.append({**entry, "last_run": last[0]["run_id"] if last else None})
    return groups


@bp.get("/")
def runs_page() -> str:
    flt = run_filters()
    grouped = request.args.get("group") == "pipeline"
    before = request.args.get("before") or None
    if before is not None and not is_run_id(before):
        before = None
    plane = state()
    if grouped:
        plane.ledger.catch_up()
    runs = [] if grouped else find_runs(plane.ledger, flt, limit=RUNS_PAGE, before=before)
    next_before = runs[-1]["run_id"] if len(runs) == RUNS_PAGE else None
    dated = bool(flt.since or flt.until)
    summary = plane.ledger.index.filtered_metrics(flt, None if dated else METRICS_DAYS * 24 * 60)
    groups = pipeline_groups(flt, summary) if grouped else None
    return render_template("controlplane/runs.html", page="runs", run_types=RUN_TYPES,
                           groups=groups, view={"group": "pipeline"} if grouped else {},
                           statuses=[s.value for s in RunStatus], filters=flt,
                           query=flt.query(), runs=runs, before=before, next_before=next_before,
                           choices=plane.ledger.index.distinct_values(),
                           commit_base=commit_base(plane.root), job_url=job_url,
                           kpis=kpi_values(summary), dated=dated, ops=ops_forms.card(),
                           ops_done=ops_forms.done_note(request.args))


WINDOWS = {"1h": 60, "24h": 24 * 60, "7d": 7 * 24 * 60, "30d": 30 * 24 * 60}
DEFAULT_WINDOW = "7d"


@bp.get("/metrics")
def metrics_page() -> str:
    window = request.args.get("window") or DEFAULT_WINDOW
    window = window if window in WINDOWS else DEFAULT_WINDOW
    minutes = WINDOWS[window]
    flt = RunFilter.of({"subtype": request.args.get("subtype") or ""})  # one pipeline, or all
    plane = state()
    plane.ledger.catch_up()
    summary = plane.ledger.index.filtered_metrics(flt, minutes)
    trend = {t["day"]: t for t in plane.ledger.index.duration_trend(flt, minutes)}
    per_type = sorted((summary.get("per_type") or {}).items(), key=lambda kv: -kv[1]["total"])
    breakdown = [{"type": name, **counts, "rate": format_percent(
        counts["ok"] / (counts["ok"] + counts["failed"])
        if counts["ok"] + counts["failed"] else None)} for name, counts in per_type]
    per_day = sorted((summary.get("per_day") or {}).items(), reverse=True)
    pipelines = [{**p, "rate": format_percent(p["success_rate"]),
                  "avg": format_duration(p["avg_duration_ms"])} for p in summary["pipelines"]]
    return render_template("controlplane/metrics.html", page="metrics",
                           days=max(1, minutes // (24 * 60)), minutes=minutes, window=window,
                           windows=list(WINDOWS), kpis=kpi_values(summary),
                           breakdown=breakdown, per_day=per_day, pipelines=pipelines,
                           trend=trend, subtype=flt.subtype,
                           subtypes=plane.ledger.index.distinct_values()["subtype"])


def known_run_or_404(run_id: str) -> dict[str, Any]:
    """The run, or abort with 404 (an HTML page for a browser)."""
    run = state().ledger.get(run_id) if is_run_id(run_id) else None
    if run is None:
        abort(404, f"There is no run {run_id} in this project.")
    return run


def visible_line(line: str) -> str:
    """A recorded line as a terminal shows it: colours dropped, the text after a lone CR."""
    line = TERMINAL_CODES.sub("", line).rstrip("\r")
    return line.rsplit("\r", 1)[-1]


def recorded_output(run_id: str) -> tuple[list[dict[str, Any]], int, int]:
    """(lines, hidden, last seq): the run's output as recorded, the last PAGE_LINES of it."""
    events = state().ledger.events(run_id)
    if len(events) > HEAD_EVENTS + TAIL_EVENTS + 1:  # a running run's spool: not capped yet
        events, _ = cap_events(events)
    lines = []
    for event in events:
        data = event.get("data") or {}
        if event.get("type") == "run:output":
            lines.append({"stream": str(data.get("stream") or "stdout"),
                          "text": visible_line(str(data.get("line", "")))})
        elif event.get("type") == "run:truncated":
            lines.append({"stream": "marker", "omitted": data.get("omitted_events", 0)})
    last_seq = max((int(e.get("seq") or 0) for e in events), default=0)
    hidden = max(0, len(lines) - PAGE_LINES)
    return lines[hidden:], hidden, last_seq


def shown(values: Any) -> dict[str, Any]:
    """A params or result dict without its private ``_`` keys (as the JS shows them)."""
    return {k: v for k, v in (values or {}).items() if not str(k).startswith("_")} \
        if isinstance(values, dict) else {}


def failing_tests(run: dict[str, Any]) -> list[str]:
    """The failing tests' node ids a failed test run's result names (``failed_tests``)."""
    if run.get("status") != "failed":
        return []
    names = (run.get("result") or {}).get("failed_tests")
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def retry_supported(run: dict[str, Any]) -> bool:
    """Whether the run's action can rerun only some tests (it takes ``node_ids``)."""
    action = state().actions.get(run.get("action") or "")
    return action is not None and "node_ids" in action.params.model_fields


def cancel_note(run: dict[str, Any]) -> str:
    """One calm line for a cancelled run: who or what cancelled it, never a traceback."""
    message = str((run.get("error") or {}).get("message") or "").strip()
    first = message.splitlines()[0] if message else ""
    return f"This run was {first}." if first.startswith("cancelled") else \
        "This run was cancelled before it finished."


@bp.get("/runs/<run_id>")
def run_page(run_id: str) -> str:
    run = known_run_or_404(run_id)
    lines, hidden, last_seq = recorded_output(run["run_id"])
    params, result = (shown(run.get(part)) for part in ("params", "result"))
    return render_template("controlplane/run.html", page="run", run_id=run["run_id"],
                           failures=failing_tests(run), cancel_note=cancel_note(run),
                           retry_supported=retry_supported(run),
                           subtype=run.get("subtype", ""), run=run, params=params, result=result,
                           withheld=(run.get("params") or {}).get("_withheld_fields") or [],
                           lines=lines, hidden_lines=hidden, last_seq=last_seq)


@bp.get("/integrations")
def integrations_page() -> str:
    grouped = by_integration()
    overview = [{"name": name, "actions": sorted(a.title for a in grouped[name])}
                for name in sorted(grouped)]
    return render_template("controlplane/integrations.html", page="integrations",
                           integrations=overview)


def latest_runs(actions: list[Action]) -> dict[str, dict[str, Any]]:
    """Each action's newest run: one in flight (any process of the clone), else the index's."""
    plane = state()
    plane.ledger.catch_up()
    latest: dict[str, dict[str, Any]] = {}
    for run in plane.ledger.active():  # newest last is not promised: keep the newest id
        path = run.get("action")
        if isinstance(path, str) and run["run_id"] > latest.get(path, {}).get("run_id", ""):
            latest[path] = run
    for action in actions:
        if action.path not in latest:
            found = plane.ledger.index.latest_of_action(action.path, action.subtype)
            if found is not None:
                latest[action.path] = found
    return latest


@bp.get("/integrations/<name>")
def integration_page(name: str) -> str:
    actions = by_integration().get(name)
    if not actions:
        abort(404, f"There is no integration called {name}.")
    latest = latest_runs(actions)
    cards = [{"action": a, "fields": fields_of(a), "form_id": form_id(a),
              "latest": latest.get(a.path)} for a in actions]
    return render_template("controlplane/integration.html", page="integration", integration=name,
                           action_count=len(actions), cards=cards)
