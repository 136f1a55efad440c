"""A CI job posts its result: it becomes a ci:* run, with a token that can do nothing else."""

from __future__ import annotations

from pathlib import Path

from controlplane.core.ledger import Ledger
from tests.conftest import git


def test_ingest_records_a_ci_run(repo: Path, make_app) -> None:
    app = make_app(SETTINGS={"ingest_token": "ci-only-token-123456"})
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = "Bearer ci-only-token-123456"
    commit = git(repo, "rev-parse", "HEAD").strip()
    answer = client.post("/api/runs/ingest", json={
        "pipeline": "build", "status": "failed", "started_at": "2026-11-20T10:00:00Z",
        "finished_at": "2026-11-20T10:05:30Z", "branch": "main", "commit": commit[:12],
        "actor": "github-actions", "url": "https://ci.example/run/42"})
    assert answer.status_code == 201, answer.get_json()
    run = answer.get_json()
    assert run["subtype"] == "ci:build" and run["status"] == "failed"
    assert run["actor"] == {"kind": "ingest", "name": "github-actions"}
    assert run["duration_ms"] == 330_000 and run["run_id"].startswith("20261120T100000000Z")
    assert run["target"]["url"] == "https://ci.example/run/42"
    assert Ledger.open(repo).get(run["run_id"])["status"] == "failed"
    assert git(repo, "cat-file", "-t", f"refs/scp/run/{run['run_id']}").strip() == "tag"
    # the ingest token can do nothing else
    assert client.get("/api/runs/recent").status_code == 403
    assert client.post("/testing/run", json={}).status_code == 403


def test_ingest_validates_every_field(repo: Path, client) -> None:
    answer = client.post("/api/runs/ingest", json={
        "pipeline": "Bad Name", "status": "exploded", "commit": "xyz", "url": "javascript:x",
        "surprise": 1})
    assert answer.status_code == 422
    assert {"pipeline", "status", "commit", "url", "surprise"} <= set(answer.get_json()["fields"])
    reversed_times = client.post("/api/runs/ingest", json={
        "pipeline": "x", "status": "ok", "started_at": "2026-11-20T10:00:00Z",
        "finished_at": "2026-11-20T09:00:00Z"})
    assert reversed_times.status_code == 422
    assert Ledger.open(repo).recent() == []
