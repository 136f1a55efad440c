"""Action routes as a client sees them: answers, refusals that record nothing, locks, cancel."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from pydantic import BaseModel

from controlplane.core.actions import REGISTRY, Action, register
from controlplane.core.events import default_bus
from controlplane.core.ledger import Ledger
from tests.conftest import bearer_client, git, tool_env

PASSING_SUITE = '''
def test_adds():
    assert 1 + 1 == 2

def test_prints():
    print("hello")
'''


@pytest.fixture
def suite(repo: Path) -> Path:
    tests = repo / "tests"
    tests.mkdir()
    (tests / "test_demo.py").write_text(PASSING_SUITE)
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n\nclass Adder:\n    pass\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "add a suite")
    return repo


def ledger_runs(repo: Path) -> list[dict]:
    return Ledger.open(repo).recent(limit=500)


def wait_for_event(sub, predicate, timeout: float = 60.0) -> dict:
    """The first envelope matching *predicate* (blocks on the subscription's queue)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        envelope = sub.get(timeout=max(0.01, deadline - time.monotonic()))
        if envelope is not None and predicate(envelope):
            return envelope
    raise AssertionError("event not seen in time")


def test_run_tests_for_real(suite: Path, client) -> None:
    answer = client.post("/testing/run", json={"path": "tests"})
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert body["status"] == "ok" and body["passed"] == 2 and body["failed"] == 0
    stored = Ledger.open(suite).get(body["run_id"])
    assert stored["subtype"] == "test:run" and stored["params"]["path"] == "tests"
    assert stored["actor"]["kind"] == "api" and stored["action"] == "/testing/run"


def test_failing_tests_fail_the_run(suite: Path, client) -> None:
    (suite / "tests" / "test_broken.py").write_text("def test_no():\n    assert False\n")
    body = client.post("/testing/run", json={}).json
    assert body["status"] == "failed" and body["failed"] == 1 and body["passed"] == 2
    assert body["error"]["code"] == "exit_status"


def test_coverage_for_real(suite: Path, client) -> None:
    body = client.post("/testing/coverage", json={"path": "tests"}).json
    assert body["status"] == "ok", body
    assert body["passed"] == 2 and 0 < body["percent_covered"] <= 100


@pytest.mark.parametrize(("payload", "field"), [
    ({"path": "../outside"}, "path"),
    ({"path": "/etc"}, "path"),
    ({"maxfail": "many"}, "maxfail"),
    ({"keyword": "--collect-only; rm -rf /"}, "keyword"),
])
def test_invalid_input_names_the_field_and_records_nothing(suite: Path, client, payload,
                                                            field) -> None:
    answer = client.post("/testing/run", json=payload)
    assert answer.status_code == 422
    assert answer.json["error"] == "invalid_input" and field in answer.json["fields"]
    assert ledger_runs(suite) == []


def test_every_bad_field_is_named(suite: Path, client) -> None:
    answer = client.post("/testing/run", json={"path": "../x", "maxfail": 0})
    assert set(answer.json["fields"]) == {"path", "maxfail"}
    # our own check's words, without pydantic's "Value error, " in front (shown next to the field)
    assert answer.json["fields"]["path"] == "'../x' is outside the project"


@pytest.mark.parametrize("route", ["/testing/run", "/testing/coverage"])
def test_a_path_that_is_not_there_is_refused_not_a_failed_run(suite: Path, client,
                                                               route: str) -> None:
    answer = client.post(route, json={"path": "tests/test_typo.py"})
    assert answer.status_code == 422
    assert answer.json["fields"] == {
        "path": "'tests/test_typo.py' is not in the project (no such file or directory)"}
    assert ledger_runs(suite) == []


@pytest.mark.parametrize(("data", "status"), [
    (b"{not json", 400), (b"[1, 2]", 400), (b'"text"', 400), (b"x" * (2 * 1024 * 1024), 413),
], ids=["broken", "array", "string", "2MiB"])
def test_unreadable_or_huge_bodies(suite: Path, client, data: bytes, status: int) -> None:
    answer = client.post("/testing/run", data=data, content_type="application/json")
    assert answer.status_code == status and answer.is_json
    assert ledger_runs(suite) == []


def test_tool_missing_fails_fast_and_is_recorded(suite: Path, make_app, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    app = make_app(TOOL_ENV={**os.environ, "PATH": str(empty)})
    client = bearer_client(app)
    body = client.post("/testing/run", json={}).json
    assert body["status"] == "failed" and body["error"]["code"] == "tool_missing"
    assert "pytest" in body["error"]["message"]
    assert Ledger.open(suite).get(body["run_id"])["error"]["code"] == "tool_missing"


BLOCKING_PYTEST = """#!/bin/sh
echo "fake pytest started $*"
read line < "{fifo}"
echo "released"
"""


@pytest.fixture
def blocking_pytest(suite: Path, fake_bin, tmp_path: Path):
    """A fake pytest that prints, then blocks until the test writes to a FIFO."""
    fifo = tmp_path / "release"
    os.mkfifo(fifo)
    fake_bin("pytest", BLOCKING_PYTEST.format(fifo=fifo))

    def release() -> None:
        with open(fifo, "w") as fh:
            fh.write("go\n")

    release.env = tool_env(fake_bin.dir)  # type: ignore[attr-defined]
    return release


def test_async_answer_then_lock_conflict(suite: Path, make_app, blocking_pytest) -> None:
    app = make_app(TOOL_ENV=blocking_pytest.env)
    client = bearer_client(app)
    with default_bus().subscribe(default_bus().last_id) as sub:
        first = client.post("/testing/run", json={}, headers={"Prefer": "respond-async"})
        assert first.status_code == 202
        run_id = first.json["run_id"]
        assert first.headers["Location"] == f"/api/runs/{run_id}"
        wait_for_event(sub, lambda e: e["type"] == "run:output" and e["run_id"] == run_id)
        second = client.post("/testing/run", json={})
        assert second.status_code == 409 and second.json["error"] == "run_already_in_progress"
        assert second.json["run_id"] == run_id
        assert client.get(f"/api/runs/{run_id}").json["run"]["status"] == "running"
        blocking_pytest()
        done = wait_for_event(sub, lambda e: e["type"] == "run:completed"
                              and e["run_id"] == run_id)
    assert done["data"]["status"] == "ok"  # the fake exits 0
    assert [r["run_id"] for r in ledger_runs(suite)] == [run_id]
    lines = [e["data"]["line"] for e in client.get(f"/api/runs/{run_id}").json["events"]
             if e["type"] == "run:output"]
    assert lines[0].startswith("fake pytest started -q -rfE --junitxml=")
    assert lines[0].endswith("-p no:cacheprovider -- tests") and lines[1] == "released"


def test_cancel_a_running_action(suite: Path, make_app, fake_bin) -> None:
    fake_bin("pytest", "#!/bin/sh\necho waiting\nsleep 300 &\nwait\n")
    app = make_app(TOOL_ENV=tool_env(fake_bin.dir))
    client = bearer_client(app)
    with default_bus().subscribe(default_bus().last_id) as sub:
        run_id = client.post("/testing/run", json={},
                             headers={"Prefer": "respond-async"}).json["run_id"]
        wait_for_event(sub, lambda e: e["type"] == "run:output" and e["run_id"] == run_id)
        assert client.post(f"/api/runs/{run_id}/cancel").json["outcome"] == "cancelling"
        wait_for_event(sub, lambda e: e["type"] == "run:completed" and e["run_id"] == run_id)
    stored = Ledger.open(suite).get(run_id)
    assert stored["status"] == "cancelled" and stored["error"]["code"] == "cancelled"


class Nothing(BaseModel):
    name: str = "web"


@pytest.fixture
def destructive_action():
    calls: list[str] = []

    def service(ctx, params):
        calls.append(params.name)
        return {"deleted": params.name}

    action = Action(path="/demo/delete", subtype="destroy:demo", title="Delete demo",
                    params=Nothing, service=service, destructive=True)
    register(action)
    yield calls
    REGISTRY.pop(action.path)


def test_destructive_needs_confirmation(suite: Path, destructive_action, make_app) -> None:
    client = bearer_client(make_app())
    refused = client.post("/demo/delete", json={"name": "db"})
    assert refused.status_code == 428 and refused.json["error"] == "confirmation_required"
    assert destructive_action == [] and ledger_runs(suite) == []
    done = client.post("/demo/delete", json={"name": "db", "confirm": True}).json
    assert done["status"] == "ok" and done["deleted"] == "db" and destructive_action == ["db"]
    assert Ledger.open(suite).get(done["run_id"])["subtype"] == "destroy:demo"


def test_rerun_names_what_it_reruns(suite: Path, client) -> None:
    first = client.post("/testing/run", json={"keyword": "adds"}).json
    again = client.post(f"/api/runs/{first['run_id']}/rerun").json
    assert again["status"] == "ok" and again["passed"] == 1
    stored = Ledger.open(suite).get(again["run_id"])
    assert stored["rerun_of"] == first["run_id"] and stored["params"]["keyword"] == "adds"


def test_executor_queue_pause_resume(suite: Path, make_app) -> None:
    app = make_app(SETTINGS={"executor_limit": 1})
    client = bearer_client(app)
    assert client.post("/api/executor/pause").json["paused"] is True
    queued = client.post("/testing/run", json={}, headers={"Prefer": "respond-async"}).json
    assert queued["status"] == "queued"
    assert client.get("/api/executor").json["queued"] == [queued["run_id"]]
    listed = client.get("/api/runs/recent").json["runs"]
    assert listed[0]["run_id"] == queued["run_id"] and listed[0]["status"] == "queued"
    with default_bus().subscribe(default_bus().last_id) as sub:
        client.post("/api/executor/resume")
        wait_for_event(sub, lambda e: e["type"] == "run:completed")
    assert client.post("/api/executor/drain", json={"timeout": 5}).json["running"] == []


def test_cancel_a_queued_run(suite: Path, make_app) -> None:
    app = make_app()
    client = bearer_client(app)
    client.post("/api/executor/pause")
    run_id = client.post("/testing/run", json={},
                         headers={"Prefer": "respond-async"}).json["run_id"]
    assert client.post(f"/api/runs/{run_id}/cancel").json["outcome"] == "cancelled"
    assert Ledger.open(suite).get(run_id)["status"] == "cancelled"


def test_two_concurrent_posts_one_runs_one_conflicts(suite: Path, make_app,
                                                     blocking_pytest) -> None:
    app = make_app(TOOL_ENV=blocking_pytest.env)
    answers: list = []
    barrier = threading.Barrier(2)

    def post() -> None:
        client = bearer_client(app)
        barrier.wait()
        answers.append(client.post("/testing/run", json={},
                                   headers={"Prefer": "respond-async"}))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(a.status_code for a in answers)
    assert codes == [202, 409] and all(a.is_json for a in answers)
    run_id = next(a for a in answers if a.status_code == 202).json["run_id"]
    with default_bus().subscribe(default_bus().last_id) as sub:
        blocking_pytest()
        wait_for_event(sub, lambda e: e["type"] == "run:completed" and e["run_id"] == run_id)


def test_generate_test_template_preview_write_refuse(suite: Path, client) -> None:
    preview = client.post("/testing/generate/template", json={"module": "calc.py"}).json
    assert preview["status"] == "ok" and preview["written"] is False
    assert "def test_add()" in preview["content"] and "class TestAdder" in preview["content"]
    assert not (suite / "tests" / "test_calc.py").exists()
    # plain `pytest` cannot import calc from tests/ here: the file would not collect, so no write
    refused = client.post("/testing/generate/template",
                          json={"module": "calc.py", "write": True}).json
    assert refused["status"] == "failed" and not (suite / "tests" / "test_calc.py").exists()
    assert "collect" in json.dumps(refused)
    (suite / "conftest.py").write_text("")  # rootdir on sys.path: the project can import calc
    written = client.post("/testing/generate/template",
                          json={"module": "calc.py", "write": True}).json
    assert written["written"] is True and (suite / "tests" / "test_calc.py").exists()
    again = client.post("/testing/generate/template", json={"module": "calc.py", "write": True})
    assert again.json["status"] == "failed"
    outside = client.post("/testing/generate/template",
                          json={"module": "calc.py", "output": "../evil.py", "write": True})
    assert outside.status_code == 422 and "output" in outside.json["fields"]


def test_api_recent_filters_and_cursor(suite: Path, client) -> None:
    ids = [client.post("/testing/run", json={}).json["run_id"] for _ in range(3)]
    page = client.get("/api/runs/recent?limit=2").json
    assert [r["run_id"] for r in page["runs"]] == ids[::-1][:2]
    rest = client.get(f"/api/runs/recent?limit=2&before={page['next_before']}").json
    assert [r["run_id"] for r in rest["runs"]] == [ids[0]]
    assert client.get("/api/runs/recent?type=test&status=ok").json["runs"][0]["run_id"] == ids[2]
    for query, field in (("limit=0", "limit"), ("limit=x", "limit"), ("type=nope", "type"),
                         ("status=done", "status"), ("before=../../x", "before")):
        bad = client.get(f"/api/runs/recent?{query}")
        assert bad.status_code == 422 and field in bad.json["fields"]
    assert client.get("/api/runs/20990101T000000000Z-deadbeef").status_code == 404
    metrics = client.get("/api/metrics/summary?minutes=60").json
    assert metrics["total"] == 3 and metrics["success_rate"] == 1.0


def test_openapi_lists_every_action(client) -> None:
    document = client.get("/api/openapi.json").json
    for action in REGISTRY.values():
        path = action.path.replace("<", "{").replace(">", "}")
        assert "post" in document["paths"][path]
    assert document["openapi"].startswith("3.")
