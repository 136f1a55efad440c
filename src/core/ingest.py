"""Ingest: record a run that happened elsewhere (a CI job, another tool) as a ``ci:*`` run.

A report names its CI run (``ci_run_id`` + ``attempt``, or a GitHub webhook's run) or its
delivery; that key makes ingest idempotent: a report seen again answers the run already
recorded. A ``queued``/``running`` report waits under ``.git/scp/ingest/`` (never in the
journal, so never reaped as a dead process's run) until its completion arrives; both
are one Run. The key and the deliveries go into run.json (``ci``), the key's marker
under ``.git/scp/ingest/done/``: an index rebuild loses neither.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, HttpUrl, field_validator, model_validator

from controlplane.core import redact
from controlplane.core.events import EventBus
from controlplane.core.ingest_pending import IngestStore, digest
from controlplane.core.ledger import Ledger
from controlplane.core.runs import Run, RunStatus, iso, new_run_id

DETAIL = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
ACTOR = r"^[\w .@\[\]-]+$"  # GitHub's bots are `name[bot]`
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # a CI run older than this is a mistake
FUTURE_SLACK = timedelta(days=1)  # clocks drift; a run dated later would stay on top for ever
SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
NO_SECRET = ("GitHub webhooks are not accepted here: set CONTROLPLANE_GITHUB_WEBHOOK_SECRET "
             "(or github_webhook_secret in the user file) to the webhook's secret")
MAX_DELIVERIES = 20  # delivery ids kept in one run.json
# what a report's status says, in our terms (seed 003 sends success|failure|running)
STATUSES = {"ok": RunStatus.OK, "success": RunStatus.OK, "failed": RunStatus.FAILED,
            "failure": RunStatus.FAILED, "cancelled": RunStatus.CANCELLED,
            "running": RunStatus.RUNNING, "queued": RunStatus.QUEUED}


class IngestedRun(BaseModel):
    """What a CI job reports about itself."""

    model_config = {"extra": "forbid"}

    pipeline: str = Field(..., pattern=DETAIL, description="becomes the subtype ci:<pipeline>")
    status: Literal["ok", "failed", "cancelled", "success", "failure", "running", "queued"]
    started_at: datetime | None = Field(None, description="ISO 8601; default: now minus duration")
    finished_at: datetime | None = Field(None, description="ISO 8601; default: now")
    duration_ms: int | None = Field(None, ge=0, le=30 * 24 * 3600 * 1000)
    duration_sec: float | None = Field(None, ge=0, le=30 * 24 * 3600)
    branch: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
    commit: str | None = Field(None, pattern=r"^[0-9a-f]{4,64}$")
    actor: str | None = Field(None, max_length=100, pattern=ACTOR)
    triggered_by: str | None = Field(None, max_length=100, pattern=ACTOR)
    url: HttpUrl | None = None
    summary: str = Field("", max_length=300)
    ci_run_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,64}$",
                                  description="the CI's id of this run: makes ingest idempotent")
    attempt: int = Field(1, ge=1, le=10_000)

    @field_validator("ci_run_id", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("started_at", "finished_at")
    @classmethod
    def _in_window(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
        latest = datetime.now(UTC) + FUTURE_SLACK
        if not EARLIEST <= value <= latest:
            raise ValueError(f"must be between {EARLIEST:%Y-%m-%d} and a day from now "
                             f"({latest:%Y-%m-%dT%H:%MZ})")
        return value

    @model_validator(mode="after")
    def _times(self) -> IngestedRun:
        if self.started_at and self.finished_at and self.finished_at < self.started_at:
            raise ValueError("finished_at is before started_at")
        if self.duration_ms is None and self.duration_sec is not None:
            self.duration_ms = round(self.duration_sec * 1000)
        return self

    @property
    def run_status(self) -> RunStatus:
        return STATUSES[self.status]


@dataclass
class Origin:
    """What identifies a report beyond its fields: its CI run (``key``) and its delivery."""

    key: str | None = None  # e.g. github/octo/repo/run/30433642/1: one Run per key
    delivery: str | None = None  # X-GitHub-Delivery
    ci: dict[str, Any] = field(default_factory=dict)  # stored in run.json under "ci"
    conclusion: str | None = None  # the CI's own word for a failure (timed_out…)

    @classmethod
    def of(cls, report: IngestedRun, delivery: str | None = None) -> Origin:
        """A report's origin from its ``ci_run_id``/``attempt`` (else its delivery id)."""
        if report.ci_run_id is None:
            return cls(key=f"delivery/{delivery}" if delivery else None, delivery=delivery)
        return cls(key=f"ci/{report.pipeline}/{report.ci_run_id}/{report.attempt}",
                   delivery=delivery,
                   ci={"run_id": report.ci_run_id, "attempt": report.attempt})


@dataclass
class Outcome:
    """What ingest did: ``recorded``, ``pending``, ``updated`` or ``duplicate``."""

    run: dict[str, Any]
    what: str

    @property
    def http_status(self) -> int:
        return 201 if self.what in ("recorded", "pending") else 200


def ingest(ledger: Ledger, bus: EventBus, report: IngestedRun,
           origin: Origin | None = None) -> Outcome:
    """Record *report* (or hold it while it runs); idempotent on *origin*'s key."""
    origin = origin or Origin.of(report)
    with IngestStore.of(ledger.scp_dir).locked() as store:
        key = origin.key or _unkeyed(report)
        pending = store.pending(key)
        if pending is None and origin.key:
            done = store.done(key) or _deterministic_id(origin.key, report)
            found = ledger.get(done) if done else None
            if found is not None and RunStatus(found.get("status", "running")).is_final:
                return Outcome(found, "duplicate")
        if not report.run_status.is_final:
            return _hold(store, bus, key, report, origin, pending)
        run = _finish(report, origin, pending)
        ledger.record(run, [{"seq": 1, "type": "run:ingested", "at": run.ended_at,
                             "data": {"url": run.target.get("url")}}])
        if origin.key:
            store.mark_done(key, run.run_id)
        store.drop_pending(key)
    final = run.to_dict()
    bus.publish("run:completed", final, run_id=run.run_id)
    return Outcome(final, "recorded")


def _unkeyed(report: IngestedRun) -> str:
    """The pending key of a report naming no CI run: its pipeline, branch and commit."""
    return f"unkeyed/{report.pipeline}/{report.branch or ''}/{report.commit or ''}"


def _deterministic_id(key: str, report: IngestedRun) -> str | None:
    """The run id a keyed report with a known start gets (found again after any rebuild)."""
    if report.started_at is None:
        return None
    return new_run_id(report.started_at.timestamp())[:-8] + digest(key)[:8]


def _new_run(report: IngestedRun, origin: Origin) -> Run:
    started = report.started_at
    if started is None and report.run_status.is_final:
        finished = report.finished_at or datetime.now(UTC)
        started = finished - timedelta(milliseconds=report.duration_ms or 0)
    run_id = (_deterministic_id(origin.key, report) if origin.key else None) \
        or new_run_id(started.timestamp() if started else None)
    run = Run.new(f"ci:{report.pipeline}", run_id=run_id)
    if started is not None:
        run.started_at = iso(started)
    return run


def _describe(run: Run, report: IngestedRun, origin: Origin) -> None:
    """Fill *run* from what the latest report says."""
    status = report.run_status
    run.summary = redact.redact(report.summary or run.summary or f"{report.pipeline} {status}")
    run.actor = {"kind": "ingest", "name": report.actor or report.triggered_by
                 or run.actor.get("name") or "ci"}
    code_ref = run.code_ref or {"commit": None, "branch": None, "dirty": False}
    run.code_ref = {**code_ref, "commit": report.commit or code_ref.get("commit"),
                    "branch": report.branch or code_ref.get("branch"), "dirty": False}
    if report.url:
        run.target = {"url": str(report.url)}
    ci = {**run.extra.get("ci", {}), **origin.ci}
    if origin.key:
        ci["key"] = origin.key
    if origin.delivery:
        seen = [d for d in ci.get("deliveries", []) if d != origin.delivery]
        ci["deliveries"] = [*seen, origin.delivery][-MAX_DELIVERIES:]
    if ci:
        run.extra["ci"] = ci


def _hold(store: IngestStore, bus: EventBus, key: str, report: IngestedRun, origin: Origin,
          pending: Run | None) -> Outcome:
    """Keep a queued/running report under .git/scp/ingest/ until its completion arrives."""
    run = pending or _new_run(report, origin)
    _describe(run, report, origin)
    if pending is None or run.status == RunStatus.QUEUED:  # never back from running to queued
        run.status = report.run_status
    store.hold(key, run)
    bus.publish("run:started" if run.status == RunStatus.RUNNING else "run:queued",
                run.to_dict(), run_id=run.run_id)
    return Outcome(run.to_dict(), "pending" if pending is None else "updated")


def _finish(report: IngestedRun, origin: Origin, pending: Run | None) -> Run:
    """The final run: the pending one (same id) finished, or a new one."""
    run = pending or _new_run(report, origin)
    _describe(run, report, origin)
    if report.started_at is not None:
        run.started_at = iso(report.started_at)
    started = run.started
    finished = report.finished_at or (
        started + timedelta(milliseconds=report.duration_ms)
        if report.duration_ms is not None and report.started_at is not None
        else datetime.now(UTC))
    run.status = report.run_status
    run.ended_at = iso(finished)
    run.duration_ms = report.duration_ms if report.duration_ms is not None else max(
        0, int((finished - started).total_seconds() * 1000))
    if run.status == RunStatus.OK:
        run.error = None
    else:
        word = origin.conclusion or str(run.status)
        run.error = {"code": f"ci_{word}", "message": f"the CI job reported {word}"}
    return run


def ingest_signature(secret: str | None, body: bytes,
                     header: str | None) -> tuple[int, str, str] | None:
    """None if *header* (``sha256=<hex>``) is the HMAC-SHA256 of *body* with *secret*;
    else the refusal as (HTTP status, error code, message): 403 with no secret, 401 if
    the signature is missing or wrong (compared in constant time)."""
    if not secret:
        return 403, "webhook_secret_unset", NO_SECRET
    if not header:
        return 401, "unsigned", (f"a GitHub webhook needs {SIGNATURE_HEADER}: give the "
                                 "webhook the same secret as github_webhook_secret")
    scheme, _, given = header.strip().partition("=")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if scheme != "sha256" or not hmac.compare_digest(given.strip().lower().encode(),
                                                     expected.encode()):
        return 401, "bad_signature", (f"{SIGNATURE_HEADER} does not match the body: check the "
                                      "webhook's secret and send the body unchanged")
    return None

