"""The runs API: recent, one run, its events, cancel, rerun, metrics, executor, health."""

from __future__ import annotations

import contextlib
import json
import re
from types import SimpleNamespace
from typing import Any, overload

from flask import Blueprint, Response, current_app, jsonify, request

from controlplane.core.actions import validate_model
from controlplane.core.errors import Conflict, InvalidInput, NotFound
from controlplane.core.executor import DRAIN_TIMEOUT, Job
from controlplane.core.ingest import DELIVERY_HEADER, EVENT_HEADER, IngestedRun, Origin, ingest
from controlplane.core.ingest_github import from_github
from controlplane.core.ledger.run_query import RunFilter, find_runs
from controlplane.core.metrics_feed import follow as follow_metrics
from controlplane.core.output import HEAD_EVENTS, TAIL_EVENTS, cap_events
from controlplane.core.runs import RUN_TYPES, RunStatus, is_run_id
from controlplane.ui.web.openapi import openapi_document
from controlplane.ui.web.routes import answer, read_json_body, request_actor
from controlplane.ui.web.state import state, url_prefix

bp = Blueprint("api_runs", __name__)

MAX_LIMIT = 500
DELIVERY_ID = re.compile(r"[A-Za-z0-9-]{1,64}\Z")
CATCH_UP_EVENTS = 2_000  # what the run page keeps: more would be built and dropped at once


@overload
def query_int(name: str, default: int, low: int, high: int) -> int: ...
@overload
def query_int(name: str, default: None, low: int, high: int) -> int | None: ...
def query_int(name: str, default: int | None, low: int, high: int) -> int | None:
    """An integer query parameter within bounds; aborts with 422 naming it otherwise."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput({name: "must be an integer"}) from None
    if not low <= value <= high:
        raise InvalidInput({name: f"must be between {low} and {high}"})
    return value


def query_choice(name: str, choices: tuple[str, ...] | list[str]) -> str | None:
    """A query parameter from a fixed list; aborts with 422 naming it otherwise."""
    value = request.args.get(name) or None
    if value is not None and value not in choices:
        raise InvalidInput({name: f"must be one of {', '.join(choices)}"})
    return value


def known_run(run_id: str) -> dict[str, Any]:
    """The run, or 404 (a malformed id is simply not found)."""
    run = state().ledger.get(run_id) if is_run_id(run_id) else None
    if run is None:
        raise NotFound(f"no run {run_id}")
    return run


@bp.before_app_request
def publish_metrics_updates() -> None:
    """Make sure this process turns ended runs into ``metrics:update`` (once per bus)."""
    follow_metrics(state().bus)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(ok=True)


@bp.get("/api/runs/recent")
def recent() -> Response:
    """Newest runs first; ``q`` searches id, summary, actor, branch and params; ``actor``,
    ``branch``, ``subtype``, ``since``/``until`` (days, UTC, included) filter exactly."""
    limit = query_int("limit", 50, 1, MAX_LIMIT)
    run_type = query_choice("type", RUN_TYPES)
    status = query_choice("status", [s.value for s in RunStatus])
    before = request.args.get("before") or None
    if before is not None and not is_run_id(before):
        raise InvalidInput({"before": "must be a run id"})
    flt = RunFilter.of({**request.args.to_dict(), "type": run_type or "",
                        "status": status or ""})
    runs = find_runs(state().ledger, flt, limit=limit, before=before)
    next_cursor = runs[-1]["run_id"] if len(runs) == limit else None
    return jsonify(runs=runs, next_before=next_cursor)


@bp.get("/api/runs/search")
def search() -> Response:
    text = (request.args.get("q") or "")[:100]
    limit = query_int("limit", 10, 1, 50)
    plane = state()
    plane.ledger.catch_up()
    return jsonify(runs=plane.ledger.index.search(text, limit=limit))


@bp.get("/api/runs/<run_id>")
def one_run(run_id: str) -> Response:
    run = known_run(run_id)
    ledger = state().ledger
    events = ledger.events(run_id)
    if len(events) > HEAD_EVENTS + TAIL_EVENTS + 1:  # a running run's spool: not capped yet
        events, _ = cap_events(events)
    return jsonify(run=run, events=events,
                   mentions=ledger.index.messages(limit=50, mentioning=run_id))


@bp.get("/api/runs/<run_id>/events")
def run_events(run_id: str) -> Response:
    run = known_run(run_id)
    after = query_int("after", 0, 0, 2**62)
    # Catching up after a gap: the newest events only (what a page keeps), the rest marked;
    # read from the end of the raw log, so a million-line run costs what is returned.
    events = state().ledger.events(run_id, after=after, raw=True, tail=CATCH_UP_EVENTS)
    return jsonify(run_id=run_id, status=run.get("status"), events=events)


@bp.get("/api/runs/<run_id>/log")
def raw_log(run_id: str) -> Response:
    """The whole output as plain text (the ledger keeps head and tail; this keeps all).

    Streamed from the raw log line by line: memory stays flat however long the run.
    """
    known_run(run_id)
    lines = (f"[{e['data'].get('stream', 'stdout')}] {e['data'].get('line', '')}\n"
             for e in state().ledger.iter_events(run_id)
             if e.get("type") == "run:output" and isinstance(e.get("data"), dict))
    return Response(lines, mimetype="text/plain", headers={
        "Content-Disposition": f'attachment; filename="{run_id}.log"'})


@bp.post("/api/runs/<run_id>/cancel")
def cancel(run_id: str) -> Response:
    """Cancel an in-flight run of any process: ``cancelled`` (it was queued here),
    ``cancelling`` (its tools are being stopped) or ``requested`` (it has no tool running:
    its code is asked to stop); 409 once it has ended."""
    return jsonify(run_id=run_id, outcome=cancel_run(run_id))


def cancel_run(run_id: str) -> str:
    """Cancel an in-flight run for the asker (the API and the runs list's form post)."""
    run = known_run(run_id)
    status = run.get("status")
    if status not in (RunStatus.QUEUED, RunStatus.RUNNING):
        raise Conflict(f"run {run_id} has already ended ({status}): nothing to cancel")
    plane = state()
    return plane.executor.cancel_anywhere(run_id, plane.ledger.journal,
                                          queued=status == RunStatus.QUEUED, by=request_actor())


@bp.post("/api/runs/<run_id>/rerun")
def rerun(run_id: str) -> Response:
    """A new run of the same action with the same parameters, naming what it reruns.

    It goes through the one start path, checked like the action itself: a destructive
    action needs ``{"confirm": true}`` (else 428) and its precheck runs; the asker is
    the new run's actor.
    """
    confirmed = read_json_body().get("confirm", False) is True
    return answer(state(), rerun_job(run_id, confirmed))


def rerun_job(run_id: str, confirmed: bool) -> Job:
    """Start the rerun of *run_id* for the asker (the API and the runs list's form post)."""
    run = known_run(run_id)
    plane = state()
    action = plane.actions.get(run.get("action") or "")
    if action is None:
        raise Conflict(f"run {run_id} was not started by an action of this server")
    params = dict(run.get("params") or {})
    secret = params.pop("_withheld_fields", [])
    if secret:
        raise InvalidInput({name: "a secret is not stored: start a new run and enter it"
                            for name in secret})
    return plane.submit(action, params, actor=request_actor(), confirm=confirmed,
                        rerun_of=run_id, route=route_of(action, params))


def route_of(action: Any, params: dict[str, Any]) -> str:
    """The concrete route a run of *action* with *params* was posted to (``<name>`` filled)."""
    path = action.path
    for name in action.url_params:
        path = path.replace(f"<{name}>", str(params.get(name, "")))
    return path


def retry_params(run: dict[str, Any], action: Any) -> dict[str, Any] | None:
    """A failed run's parameters narrowed to its failing tests (``node_ids``), or None when
    it cannot be retried that way (not failed, no names, an action without ``node_ids``)."""
    names = (run.get("result") or {}).get("failed_tests")
    if run.get("status") != RunStatus.FAILED or not isinstance(names, list) or not names \
            or action is None or "node_ids" not in action.params.model_fields:
        return None
    params = {k: v for k, v in (run.get("params") or {}).items() if not k.startswith("_")}
    return {**params, "node_ids": [n for n in names if isinstance(n, str)]}


@bp.post("/api/runs/<run_id>/retry-failed")
def retry_failed(run_id: str) -> Response:
    """A new run of a failed test run's action with only its failing tests (``node_ids``
    from the result's ``failed_tests``); 409 when the run named none."""
    confirmed = read_json_body().get("confirm", False) is True
    return answer(state(), retry_job(run_id, confirmed))


def retry_job(run_id: str, confirmed: bool) -> Job:
    """Start the retry of *run_id*'s failing tests for the asker (the API and the run
    page's form post)."""
    run = known_run(run_id)
    plane = state()
    action = plane.actions.get(run.get("action") or "")
    params = retry_params(run, action)
    if params is None or action is None:  # no action: retry_params said None already
        raise Conflict(f"run {run_id} names no failing tests to retry: use Rerun")
    return plane.submit(action, params, actor=request_actor(), confirm=confirmed,
                        rerun_of=run_id, route=route_of(action, params))


@bp.post("/api/runs/ingest")
def ingest_run() -> tuple[Response, int]:
    """Record a run that happened elsewhere (CI) as ``ci:<pipeline>``: with the ingest token,
    or a GitHub ``workflow_run``/``workflow_job`` webhook signed with its secret.

    Idempotent on the CI run (id + attempt) or the delivery: 201 recorded or pending
    (``queued``/``running`` waits for its completion), 200 updated or already recorded
    (``X-Controlplane-Ingest`` says which); 202 for a webhook event that records nothing.
    """
    plane = state()
    delivery = request.headers.get(DELIVERY_HEADER) or None
    if delivery is not None and not DELIVERY_ID.match(delivery):
        raise InvalidInput({DELIVERY_HEADER: "must be up to 64 letters, digits and '-'"})
    if request.environ.get("controlplane.auth") == "github":  # the gate checked its signature
        translated = from_github(request.headers.get(EVENT_HEADER, ""), webhook_body(), delivery)
        if isinstance(translated, str):
            return jsonify(ignored=translated), 202
        report, origin = translated
    else:
        report = validate_model(IngestedRun, read_json_body())
        origin = Origin.of(report, delivery)
    outcome = ingest(plane.ledger, plane.bus, report, origin)
    response = jsonify(outcome.run)
    response.headers["X-Controlplane-Ingest"] = outcome.what
    return response, outcome.http_status


def webhook_body() -> dict[str, Any]:
    """A webhook's JSON, sent as ``application/json`` or as the form field ``payload``."""
    if request.mimetype != "application/x-www-form-urlencoded":
        return read_json_body()
    try:
        body = json.loads(request.form.get("payload", ""))
    except ValueError:
        raise InvalidInput({"payload": "must be the webhook's JSON"}) from None
    if not isinstance(body, dict):
        raise InvalidInput({"payload": "must be a JSON object"})
    return body


def metrics_query() -> tuple[RunFilter, int | None]:
    """The runs list's filters and the ``minutes`` window of a metrics request (422 if bad)."""
    minutes = query_int("minutes", None, 1, 60 * 24 * 366)
    flt = RunFilter.of({**request.args.to_dict(),
                        "type": query_choice("type", RUN_TYPES) or "",
                        "status": query_choice("status", [s.value for s in RunStatus]) or ""})
    return flt, minutes


@bp.get("/api/metrics/summary")
def metrics() -> Response:
    """Figures over the last ``minutes`` of the runs the runs list's filters select."""
    flt, minutes = metrics_query()
    plane = state()
    plane.ledger.catch_up()
    return jsonify(plane.ledger.index.filtered_metrics(flt, minutes))


@bp.get("/api/metrics/durations")
def metrics_durations() -> Response:
    """``duration_trend``: per day (UTC) of the runs the filters select in the last
    ``minutes``, ``{day, runs, p50_s, p95_s}``, exact nearest-rank percentiles."""
    flt, minutes = metrics_query()
    plane = state()
    plane.ledger.catch_up()
    return jsonify(window_minutes=minutes,
                   duration_trend=plane.ledger.index.duration_trend(flt, minutes))


@bp.get("/api/executor")
def executor_state() -> Response:
    return jsonify(executor_view())


def executor_view() -> dict[str, Any]:
    """This server's executor, plus ``elsewhere``: the runs in flight in the clone's other
    processes (``controlplane exec``, scripts, other workers), read from the journal."""
    plane = state()
    view = plane.executor.state()
    here = set(view["running"]) | set(view["queued"])
    elsewhere: dict[str, list[str]] = {"running": [], "queued": []}
    for run in plane.ledger.active():
        if run["run_id"] not in here and run.get("status") in elsewhere:
            elsewhere[run["status"]].append(run["run_id"])
    return {**view, "elsewhere": elsewhere}


@bp.post("/api/executor/<command>")
def executor_command(command: str) -> Response:
    """``pause``, ``resume``, ``drain`` (pause, then wait up to ``timeout`` s, default 300,
    for running runs; answers ``remaining``: what still runs and what is still queued,
    here and elsewhere) or ``cancel-queued`` (answers ``cancelled``: the run ids)."""
    return jsonify(executor_do(command, read_json_body().get("timeout", DRAIN_TIMEOUT)))


EXECUTOR_COMMANDS = ("pause", "resume", "drain", "cancel-queued")


def check_command(command: str) -> None:
    """404 for a command the executor does not have."""
    if command not in EXECUTOR_COMMANDS:
        raise NotFound(f"no executor command {command!r}: pause, resume, drain or cancel-queued")


def executor_do(command: str, timeout: Any = DRAIN_TIMEOUT) -> dict[str, Any]:
    """Carry out an executor *command* for the asker (the API and the operations card's
    form post); the executor's view after it, with ``remaining`` (and ``cancelled``)."""
    check_command(command)
    plane = state()
    executor = plane.executor
    extra: dict[str, Any] = {}
    if command == "pause":
        executor.pause()
    elif command == "resume":
        executor.resume()
    elif command == "drain":
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) \
                or not 0 <= timeout <= 3600:
            raise InvalidInput({"timeout": "must be a number of seconds from 0 to 3600"})
        executor.drain(float(timeout))
    elif command == "cancel-queued":
        cancelled = executor.cancel_queued()
        for run in plane.ledger.active():  # queued in another process of this clone
            if run.get("status") == RunStatus.QUEUED and run["run_id"] not in cancelled:
                with contextlib.suppress(NotFound, Conflict):
                    plane.executor.cancel_anywhere(run["run_id"], plane.ledger.journal,
                                                   queued=True, by=request_actor())
                    cancelled.append(run["run_id"])
        extra["cancelled"] = cancelled
    view = executor_view()
    return {**view, "remaining": in_flight_ids(view), **extra}


def in_flight_ids(view: dict[str, Any]) -> dict[str, list[str]]:
    """The run ids running and queued in every process of the clone, from an
    ``executor_view``: this server's and the others' (``elsewhere``)."""
    return {kind: sorted(set(view[kind]) | set(view["elsewhere"][kind]))
            for kind in ("running", "queued")}


@bp.get("/api/actions")
def actions() -> Response:
    """Every declared action with its parameter schema (the dashboard builds forms from it)."""
    return jsonify(actions=[
        {"path": a.path, "subtype": a.subtype, "title": a.title, "integration": a.integration,
         "destructive": a.destructive, "url_params": a.url_params,
         "schema": a.params.model_json_schema(), "description": a.description}
        for a in state().actions.values()])


@bp.get("/api/openapi.json")
def openapi() -> Response:
    """The OpenAPI document of every route this app serves."""
    prefix = url_prefix()
    document = openapi_document(dict(state().actions), OurRules(current_app.url_map, prefix),
                                current_app.view_functions)
    if prefix:
        document["servers"] = [{"url": prefix}]
    return jsonify(document)


class OurRules:
    """The app's URL rules that are ours (endpoint ``controlplane.…``), paths below *prefix*."""

    def __init__(self, url_map: Any, prefix: str) -> None:
        self.url_map, self.prefix = url_map, prefix

    def iter_rules(self) -> Any:
        for rule in self.url_map.iter_rules():
            if rule.endpoint.startswith("controlplane."):
                yield SimpleNamespace(rule=rule.rule[len(self.prefix):] or "/",
                                      methods=rule.methods, endpoint=rule.endpoint)
