"""Ingest: record a run that happened elsewhere (a CI job, another tool) as a ``ci:*`` run."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, HttpUrl, field_validator, model_validator

from controlplane.core import redact
from controlplane.core.events import EventBus
from controlplane.core.ledger import Ledger
from controlplane.core.runs import Run, RunStatus, iso, new_run_id

DETAIL = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # a CI run older than this is a mistake
FUTURE_SLACK = timedelta(days=1)  # clocks drift; a run dated later would stay on top for ever
SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
NO_SECRET = ("GitHub webhooks are not accepted here: set CONTROLPLANE_GITHUB_WEBHOOK_SECRET "
             "(or github_webhook_secret in the user file) to the webhook's secret")


class IngestedRun(BaseModel):
    """What a CI job reports about itself."""

    model_config = {"extra": "forbid"}

    pipeline: str = Field(..., pattern=DETAIL, description="becomes the subtype ci:<pipeline>")
    status: Literal["ok", "failed", "cancelled"]
    started_at: datetime | None = Field(None, description="ISO 8601; default: now minus duration")
    finished_at: datetime | None = Field(None, description="ISO 8601; default: now")
    duration_ms: int | None = Field(None, ge=0, le=30 * 24 * 3600 * 1000)
    branch: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
    commit: str | None = Field(None, pattern=r"^[0-9a-f]{7,64}$")
    actor: str | None = Field(None, max_length=100, pattern=r"^[\w .@-]+$")
    url: HttpUrl | None = None
    summary: str = Field("", max_length=300)

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
        return self


def ingest(ledger: Ledger, bus: EventBus, report: IngestedRun) -> dict[str, Any]:
    """Record *report* as a finished ``ci:<pipeline>`` run; returns its run.json."""
    finished = report.finished_at or datetime.now(UTC)
    started = report.started_at or (
        finished - timedelta(milliseconds=report.duration_ms or 0))
    duration = report.duration_ms if report.duration_ms is not None else int(
        (finished - started).total_seconds() * 1000)
    run = Run.new(f"ci:{report.pipeline}", run_id=new_run_id(started.timestamp()),
                  summary=redact.redact(report.summary or f"{report.pipeline} {report.status}"),
                  actor={"kind": "ingest", "name": report.actor or "ci"},
                  code_ref={"commit": report.commit, "branch": report.branch, "dirty": False},
                  target={"url": str(report.url)} if report.url else {})
    run.status = RunStatus(report.status)
    run.ended_at, run.duration_ms = iso(finished), duration
    if report.status != "ok":
        run.error = {"code": f"ci_{report.status}",
                     "message": f"the CI job reported {report.status}"}
    ledger.record(run, [{"seq": 1, "type": "run:ingested", "at": iso(finished),
                         "data": {"url": str(report.url) if report.url else None}}])
    final = run.to_dict()
    bus.publish("run:completed", final, run_id=run.run_id)
    return final


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
