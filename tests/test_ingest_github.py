"""GitHub webhooks and seed 003's payload through POST /api/runs/ingest: signed, idempotent,
one Run from in_progress to completed, bots as actors."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from controlplane.core.ledger import Ledger
from tests.conftest import bearer_client

SECRET = "webhook-secret-7f3a9c"
INGEST = "ci-only-token-123456"
FIXTURE = json.loads((Path(__file__).parent / "github_webhooks" / "workflow_run.completed.json")
                     .read_text())
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


@pytest.fixture
def app(make_app):
    return make_app(SETTINGS={"github_webhook_secret": SECRET, "ingest_token": INGEST})


def signed(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook(client, payload: dict[str, Any], *, event: str = "workflow_run",
            delivery: str = DELIVERY, signature: str | None = None):
    body = json.dumps(payload).encode()
    return client.post("/api/runs/ingest", data=body, headers={
        "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/5bd0bd8",
        "X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
        "X-GitHub-Hook-ID": "292430182", "X-Hub-Signature-256": signature or signed(body)})


def in_progress() -> dict[str, Any]:
    """The same workflow run as GitHub reports it while it runs."""
    payload = copy.deepcopy(FIXTURE)
    payload["action"] = "in_progress"
    payload["workflow_run"].update(status="in_progress", conclusion=None,
                                   updated_at="2026-11-20T10:00:05Z")
    return payload


def recorded(repo: Path) -> list[dict[str, Any]]:
    return Ledger.open(repo).recent(include_active=False)


def test_the_same_delivery_posted_twice_over_http_records_one_run(repo: Path, served: str
                                                                  ) -> None:
    body = json.dumps(FIXTURE).encode()
    answers = []
    for _ in range(2):  # GitHub's "Redeliver" sends the same body and delivery id
        request = urllib.request.Request(f"{served}/api/runs/ingest", data=body, headers={
            "Content-Type": "application/json", "X-GitHub-Event": "workflow_run",
            "X-GitHub-Delivery": DELIVERY, "X-Hub-Signature-256": signed(body)})
        with urllib.request.urlopen(request, timeout=30) as answer:
            answers.append((answer.status, answer.headers["X-Controlplane-Ingest"],
                            json.loads(answer.read())))
    (first_status, first_what, run), (second_status, second_what, again) = answers
    assert (first_status, first_what) == (201, "recorded")
    assert (second_status, second_what) == (200, "duplicate") and again == run
    runs = recorded(repo)
    assert [r["run_id"] for r in runs] == [run["run_id"]]
    assert run["subtype"] == "ci:build-and-test" and run["status"] == "failed"
    assert run["error"]["code"] == "ci_failure"
    assert run["actor"] == {"kind": "ingest", "name": "github-actions[bot]"}
    assert run["code_ref"]["commit"] == FIXTURE["workflow_run"]["head_sha"]
    assert run["code_ref"]["branch"] == "main" and run["duration_ms"] == 330_000
    assert run["started_at"] == "2026-11-20T10:00:00.000Z"
    assert run["target"]["url"] == FIXTURE["workflow_run"]["html_url"]
    assert run["ci"] == {"provider": "github", "event": "workflow_run",
                         "repository": "octo-org/octo-repo", "run_id": 11873926531,
                         "attempt": 1, "key": "github/octo-org/octo-repo/run/11873926531/1",
                         "deliveries": [DELIVERY]}


def test_in_progress_then_completed_is_one_run_with_the_final_status(repo: Path, app) -> None:
    client = app.test_client()
    running = webhook(client, in_progress(), delivery="11111111-0000-0000-0000-000000000001")
    assert running.status_code == 201 and running.headers["X-Controlplane-Ingest"] == "pending"
    pending = running.get_json()
    assert pending["status"] == "running" and recorded(repo) == []
    held = list((Ledger.open(repo).scp_dir / "ingest").glob("*.json"))
    assert len(held) == 1  # waits under .git/scp/ingest/, not in the journal
    assert not list((Ledger.open(repo).scp_dir / "journal").glob("*.json"))
    # a later process opening the ledger (recovery of dead runs) leaves it waiting
    Ledger.forget_instances()
    assert Ledger.open(repo).interrupted == [] and held[0].exists()
    reader = bearer_client(app)  # listed and shown while it runs, like a local run
    listed = reader.get("/api/runs/recent").get_json()["runs"]
    assert [(r["run_id"], r["status"]) for r in listed] == [(pending["run_id"], "running")]
    assert reader.get(f"/api/runs/{pending['run_id']}").get_json()["run"]["status"] == "running"
    done = webhook(client, FIXTURE, delivery="11111111-0000-0000-0000-000000000002")
    assert done.status_code == 201 and done.headers["X-Controlplane-Ingest"] == "recorded"
    final = done.get_json()
    assert final["run_id"] == pending["run_id"] and final["status"] == "failed"
    assert [r["run_id"] for r in recorded(repo)] == [final["run_id"]]
    assert final["ci"]["deliveries"] == ["11111111-0000-0000-0000-000000000001",
                                         "11111111-0000-0000-0000-000000000002"]
    assert not held[0].exists()
    late = webhook(client, in_progress(), delivery="11111111-0000-0000-0000-000000000003")
    assert late.status_code == 200 and late.headers["X-Controlplane-Ingest"] == "duplicate"
    assert late.get_json()["status"] == "failed" and len(recorded(repo)) == 1


def test_dedupe_survives_an_index_rebuild_and_lost_local_state(repo: Path, app) -> None:
    client = app.test_client()
    first = webhook(client, FIXTURE).get_json()
    ledger = Ledger.open(repo)
    ledger.rebuild_index()
    for marker in (ledger.scp_dir / "ingest" / "done").iterdir():
        marker.unlink()  # even without the marker: the run id follows from the CI run
    again = webhook(client, FIXTURE, delivery="22222222-0000-0000-0000-000000000001")
    assert again.status_code == 200 and again.get_json()["run_id"] == first["run_id"]
    assert len(recorded(repo)) == 1
    rerun = copy.deepcopy(FIXTURE)  # "Re-run jobs": the same run id, attempt 2: a new Run
    rerun["workflow_run"].update(run_attempt=2, run_started_at="2026-11-20T11:00:00Z",
                                 updated_at="2026-11-20T11:02:00Z", conclusion="success")
    second = webhook(client, rerun, delivery="22222222-0000-0000-0000-000000000002")
    assert second.status_code == 201 and second.get_json()["status"] == "ok"
    assert len(recorded(repo)) == 2


@pytest.mark.parametrize("signature", ["sha256=" + "0" * 64, "sha1=abc", "", None])
def test_a_bad_signature_is_401_and_records_nothing(repo: Path, app, signature) -> None:
    body = json.dumps(FIXTURE).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "workflow_run",
               "X-GitHub-Delivery": DELIVERY}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    answer = app.test_client().post("/api/runs/ingest", data=body, headers=headers)
    assert answer.status_code == 401, answer.get_json()
    assert answer.get_json()["error"] in ("bad_signature", "unsigned")
    tampered = webhook(app.test_client(), FIXTURE, signature=signed(body, "another-secret"))
    assert tampered.status_code == 401
    assert recorded(repo) == [] and not list((Ledger.open(repo).scp_dir / "ingest").glob("*.json"))


def test_a_signed_body_changed_in_transit_is_refused(repo: Path, app) -> None:
    body = json.dumps(FIXTURE).encode()
    changed = body.replace(b'"failure"', b'"success"')
    answer = app.test_client().post("/api/runs/ingest", data=changed, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "workflow_run",
        "X-Hub-Signature-256": signed(body)})
    assert answer.status_code == 401 and recorded(repo) == []


def test_without_a_secret_github_webhooks_are_refused_clearly(repo: Path, make_app) -> None:
    client = make_app(SETTINGS={"ingest_token": INGEST}).test_client()
    answer = webhook(client, FIXTURE)
    assert answer.status_code == 403
    assert "CONTROLPLANE_GITHUB_WEBHOOK_SECRET" in answer.get_json()["message"]
    assert recorded(repo) == []


def test_a_valid_signature_opens_nothing_else(app) -> None:
    body = b"{}"
    answer = app.test_client().get("/api/runs/recent", headers={
        "X-Hub-Signature-256": signed(body), "X-GitHub-Event": "workflow_run"})
    assert answer.status_code == 401


def test_other_events_and_form_encoded_bodies(repo: Path, app) -> None:
    client = app.test_client()
    ping = webhook(client, {"zen": "Design for failure.", "hook_id": 1}, event="ping")
    assert ping.status_code == 202 and "only workflow_run and workflow_job" in \
        ping.get_json()["ignored"]
    form = "payload=" + urllib.parse.quote(json.dumps(FIXTURE))
    answer = client.post("/api/runs/ingest", data=form, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-GitHub-Event": "workflow_run",
        "X-Hub-Signature-256": signed(form.encode())})
    assert answer.status_code == 201, answer.get_json()
    assert recorded(repo)[0]["status"] == "failed"


def test_a_malformed_webhook_is_422_naming_github_fields(repo: Path, app) -> None:
    broken = copy.deepcopy(FIXTURE)
    broken["workflow_run"]["head_sha"] = "not-a-sha"
    answer = webhook(app.test_client(), broken)
    assert answer.status_code == 422 and "workflow_run.head_sha" in answer.get_json()["fields"]
    missing = webhook(app.test_client(), {"action": "completed", "repository": {}})
    assert missing.status_code == 422 and "workflow_run" in missing.get_json()["fields"]
    assert recorded(repo) == []


def test_workflow_job_events_make_one_run_per_job(repo: Path, app) -> None:
    job = {"id": 33011448851, "run_id": 11873926531, "run_attempt": 1,
           "workflow_name": "Build and Test", "name": "test (3.12)", "head_branch": "main",
           "head_sha": "9f2c1e4b7a8d3f6e5c0b1a2d3e4f5a6b7c8d9e0f", "status": "queued",
           "conclusion": None, "created_at": "2026-11-20T10:00:01Z",
           "started_at": "2026-11-20T10:00:01Z", "completed_at": None,
           "html_url": "https://github.com/octo-org/octo-repo/actions/runs/11873926531/job/"
                       "33011448851", "labels": ["ubuntu-latest"], "runner_name": None,
           "steps": []}
    base = {"repository": FIXTURE["repository"], "sender": {"login": "dependabot[bot]"}}
    client = app.test_client()
    for number, (action, changes) in enumerate([
            ("queued", {}),
            ("in_progress", {"status": "in_progress", "started_at": "2026-11-20T10:00:09Z",
                             "runner_name": "GitHub Actions 2"}),
            ("completed", {"status": "completed", "conclusion": "success",
                           "started_at": "2026-11-20T10:00:09Z",
                           "completed_at": "2026-11-20T10:03:09Z"})]):
        payload = {**base, "action": action, "workflow_job": {**job, **changes}}
        answer = webhook(client, payload, event="workflow_job",
                         delivery=f"33333333-0000-0000-0000-00000000000{number}")
        assert answer.status_code in (200, 201), answer.get_json()
    runs = recorded(repo)
    assert len(runs) == 1 and runs[0]["status"] == "ok"
    assert runs[0]["subtype"] == "ci:build-and-test.test-3.12"
    assert runs[0]["actor"]["name"] == "dependabot[bot]" and runs[0]["duration_ms"] == 180_000
    assert runs[0]["ci"]["job_id"] == 33011448851


# -- seed 003's payload, with the ingest token -------------------------------------------


def token_client(app):
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {INGEST}"
    return client


def test_seed_payload_running_then_success_is_one_run(repo: Path, app) -> None:
    client = token_client(app)
    commit = "a1b2c3d"
    running = client.post("/api/runs/ingest", json={
        "pipeline": "deploy-prod", "status": "running", "commit": commit, "branch": "main",
        "triggered_by": "github-actions[bot]"})
    assert running.status_code == 201, running.get_json()
    assert running.get_json()["status"] == "running" and recorded(repo) == []
    done = client.post("/api/runs/ingest", json={
        "pipeline": "deploy-prod", "status": "success", "duration_sec": 312.5,
        "commit": commit, "branch": "main", "triggered_by": "github-actions[bot]"})
    assert done.status_code == 201, done.get_json()
    run = done.get_json()
    assert run["run_id"] == running.get_json()["run_id"] and run["status"] == "ok"
    assert run["duration_ms"] == 312_500 and run["code_ref"]["commit"] == commit
    assert run["actor"] == {"kind": "ingest", "name": "github-actions[bot]"}
    assert [r["run_id"] for r in recorded(repo)] == [run["run_id"]]
    failure = client.post("/api/runs/ingest", json={
        "pipeline": "deploy-prod", "status": "failure", "duration_sec": 3, "commit": commit,
        "triggered_by": "renovate[bot]"})
    assert failure.status_code == 201 and failure.get_json()["status"] == "failed"
    assert len(recorded(repo)) == 2  # a later run of the same commit is a run of its own


def test_a_keyed_report_posted_twice_records_one_run(repo: Path, app) -> None:
    client = token_client(app)
    report = {"pipeline": "build", "status": "failure", "ci_run_id": 98765, "attempt": 1,
              "duration_sec": 42}
    first, second = (client.post("/api/runs/ingest", json=report) for _ in range(2))
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.get_json()["run_id"] == second.get_json()["run_id"]
    assert first.get_json()["ci"] == {"run_id": "98765", "attempt": 1,
                                      "key": "ci/build/98765/1"}
    assert len(recorded(repo)) == 1


def test_the_same_delivery_posted_at_once_records_one_run(repo: Path, served: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    body = json.dumps(FIXTURE).encode()

    def post(_: int) -> str:
        request = urllib.request.Request(f"{served}/api/runs/ingest", data=body, headers={
            "Content-Type": "application/json", "X-GitHub-Event": "workflow_run",
            "X-GitHub-Delivery": DELIVERY, "X-Hub-Signature-256": signed(body)})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.headers["X-Controlplane-Ingest"]

    with ThreadPoolExecutor(6) as pool:
        outcomes = sorted(pool.map(post, range(6)))
    assert outcomes == ["duplicate"] * 5 + ["recorded"]
    assert len(recorded(repo)) == 1
