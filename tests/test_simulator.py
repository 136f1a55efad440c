"""The simulator endpoint: off by default, live demo runs when enabled, never pushed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controlplane.core.ledger import Ledger
from controlplane.core.run_tracker import tracked_run
from tests.conftest import TOKEN, bearer_client, git, make_repo

FAST = {"count": 4, "rate": 600, "duration_scale": 0.001, "seed": 7}


def simulated(app, body: dict | None = None) -> dict:
    """Start a simulation through the API and wait for all its runs to end."""
    answer = bearer_client(app).post("/api/simulate", json=body or FAST)
    assert answer.status_code == 202, answer.get_json()
    return app.extensions["controlplane"].extra["simulator"].wait(30)


def test_off_by_default_answers_404_saying_how_to_enable(make_app) -> None:
    client = bearer_client(make_app())
    for method, path in (("post", "/api/simulate"), ("post", "/api/simulate/stop"),
                         ("get", "/api/simulate")):
        answer = getattr(client, method)(path, json=FAST)
        assert answer.status_code == 404
        body = answer.get_json()
        assert body["error"] == "not_found"
        assert "--simulator" in body["message"] and "CONTROLPLANE_SIMULATOR=1" in body["message"]


def test_the_project_file_cannot_enable_it(repo: Path, make_app) -> None:
    (repo / ".controlplane.yaml").write_text("simulator: true\n")
    from controlplane.core import settings

    assert any(w.startswith("simulator: refused from .controlplane.yaml")
               for w in settings.warnings(repo))
    assert bearer_client(make_app()).post("/api/simulate", json=FAST).status_code == 404


def test_the_environment_enables_live_demo_runs(repo: Path, make_app, monkeypatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_SIMULATOR", "1")
    app = make_app()
    plane = app.extensions["controlplane"]
    seen: list[str] = []
    disconnect = plane.bus.connect(lambda envelope: seen.append(envelope["type"]))
    try:
        status = simulated(app)
    finally:
        disconnect()
    assert status["started"] == status["finished"] == 4 and not status["running"]
    assert {"run:started", "run:output", "run:completed"} <= set(seen)
    recent = bearer_client(app).get("/api/runs/recent?limit=50").get_json()
    runs = recent["runs"] if isinstance(recent, dict) else recent
    demo = [r for r in runs if r["run_id"] in status["run_ids"]]
    assert len(demo) == 4
    assert all(r["actor"] == {"kind": "demo", "name": "simulator"} for r in demo)
    assert all(r["status"] in ("ok", "failed") for r in demo)
    page = bearer_client(app).get(f"/runs/{demo[0]['run_id']}")
    assert page.status_code == 200 and b"collecting" in page.data  # its output is kept


def test_bad_parameters_are_named(make_app, monkeypatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_SIMULATOR", "1")
    client = bearer_client(make_app())
    answer = client.post("/api/simulate", json={"count": 0, "rate": "fast",
                                                "duration_scale": 99, "colour": "red"})
    assert answer.status_code == 422
    assert set(answer.get_json()["fields"]) == {"count", "rate", "duration_scale", "colour"}
    assert client.post("/api/simulate", data="[1]",
                       content_type="application/json").status_code == 400


def test_a_cookie_post_needs_the_csrf_token(make_app, monkeypatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_SIMULATOR", "1")
    client = make_app().test_client()
    assert client.post("/api/simulate", json=FAST).status_code == 401
    assert client.get(f"/login?token={TOKEN}").status_code == 303
    refused = client.post("/api/simulate", json=FAST)
    assert refused.status_code == 403 and refused.get_json()["error"] == "csrf"


def test_stop_cancels_runs_in_flight(make_app, monkeypatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_SIMULATOR", "1")
    app = make_app()
    client = bearer_client(app)
    slow = {"count": 3, "rate": 600, "duration_scale": 10, "seed": 1}
    assert client.post("/api/simulate", json=slow).status_code == 202
    assert client.post("/api/simulate", json=slow).status_code == 409  # one at a time
    stopped = client.post("/api/simulate/stop").get_json()
    assert not stopped["running"] and stopped["finished"] == stopped["started"] >= 1
    ledger = app.extensions["controlplane"].ledger
    statuses = {ledger.get(run_id)["status"] for run_id in stopped["run_ids"]}
    assert statuses == {"cancelled"}


@pytest.fixture
def clone(tmp_path: Path) -> tuple[Path, Path]:
    """A bare remote holding the project's code and a clone of it."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(make_repo(tmp_path / "seed")), str(remote))
    git(tmp_path, "clone", "-q", str(remote), str(tmp_path / "work"))
    work = tmp_path / "work"
    git(work, "config", "user.name", "Test User")
    git(work, "config", "user.email", "test@example.com")
    return remote, work


def test_demo_runs_are_never_pushed(clone, make_app, monkeypatch) -> None:
    remote, work = clone
    monkeypatch.setenv("CONTROLPLANE_SIMULATOR", "1")
    status = simulated(make_app(REPO=work))
    with tracked_run(work, "test", "test:real", "a real run") as real:
        real.output("real output")
    pushed = subprocess.run([sys.executable, "-m", "controlplane", "ledger", "push"], cwd=work,
                            capture_output=True, text=True, timeout=120)
    assert pushed.returncode == 0, pushed.stderr
    remote_tree = git(remote, "ls-tree", "-r", "--name-only", "scp-ledger")
    assert real.run_id in remote_tree
    assert not any(run_id in remote_tree for run_id in status["run_ids"])
    remote_refs = git(remote, "for-each-ref", "--format=%(refname)")
    assert f"refs/scp/run/{real.run_id}" in remote_refs
    assert not any(run_id in remote_refs for run_id in status["run_ids"])
    assert "scp-demo" not in remote_refs
    # locally they stay listed, from their own branch, and survive an index rebuild
    local = git(work, "ls-tree", "-r", "--name-only", "scp-demo")
    assert all(run_id in local for run_id in status["run_ids"])
    ledger = Ledger.open(work)
    ledger.rebuild_index()
    listed = {r["run_id"] for r in ledger.recent(limit=50)}
    assert set(status["run_ids"]) | {real.run_id} <= listed


def test_serve_simulator_flag_enables_it_for_a_real_server(repo: Path, tmp_path: Path) -> None:
    from tests.test_serve import BEARER, Events, Server, request

    off = Server(repo, tmp_path)
    try:
        assert request(off, "POST", "/api/simulate", FAST, BEARER).status == 404
    finally:
        off.kill()
    server = Server(repo, tmp_path, "--simulator")
    try:
        events = Events(server)
        answer = request(server, "POST", "/api/simulate", {**FAST, "count": 2}, BEARER)
        assert answer.status == 202, answer.body
        done = [events.wait_for(lambda e: e["type"] == "run:completed") for _ in range(2)]
        events.close()
        assert all(e["data"]["actor"]["kind"] == "demo" for e in done)
        recent = request(server, "GET", "/api/runs/recent", headers=BEARER).json()
        listed = {r["run_id"] for r in (recent["runs"] if isinstance(recent, dict) else recent)}
        assert {e["run_id"] for e in done} <= listed
        assert server.stop() == 0
    finally:
        server.kill()
    assert git(repo, "for-each-ref", "refs/heads/scp-ledger") == ""  # nothing for sync


def test_doctor_repairing_a_pruned_tip_does_not_move_demo_runs_to_the_ledger(repo: Path) -> None:
    from controlplane.core.runs import Run, RunStatus
    from tests.reliability.fault_support import cli, listed_runs
    from tests.reliability.test_gc_prune import break_the_tip

    for number in range(3):
        assert cli(repo, "exec", "test:gc", "--", "echo", f"line {number}").returncode == 0
    ledger = Ledger.open(repo)
    demo = Run.new("test:run", summary="demo", code_ref=ledger.store.code_ref(),
                   actor={"kind": "demo", "name": "simulator"})
    demo.finish(RunStatus.OK)
    ledger.record(demo, [])
    Ledger.forget_instances()
    break_the_tip(repo, lost=2)
    doctor = cli(repo, "ledger", "doctor")
    assert doctor.returncode == 0 and "recorded again" in doctor.stdout, doctor.stderr
    assert demo.run_id not in git(repo, "ls-tree", "-r", "--name-only", "scp-ledger")
    assert demo.run_id in git(repo, "ls-tree", "-r", "--name-only", "scp-demo")
    assert demo.run_id in {r["run_id"] for r in listed_runs(repo)}
