"""A script uses tracked_run in a fresh repository: the run lands in git, the view and the index."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from controlplane import Run, RunStatus, run_tracked, tracked_run
from controlplane.core.events import default_bus
from controlplane.core.ledger import Ledger, NotARepository
from controlplane.core.runs import ledger_dir
from tests.conftest import git


def test_run_lands_in_ledger_view_index_and_tag(repo: Path) -> None:
    tags_before, describe_before = git(repo, "tag"), git(repo, "describe", "--tags", check=False)
    with tracked_run("test", "test:nightly", summary="nightly suite", project_root=repo) as run:
        run.output("collected 3 items")
        run.result = {"passed": 3}
    run_id = run.run_id
    path = f"{ledger_dir(run_id)}/run.json"
    stored = json.loads(git(repo, "show", f"scp-ledger:{path}"))
    assert stored["status"] == "ok" and stored["subtype"] == "test:nightly"
    assert stored["result"] == {"passed": 3} and stored["schema"] == 1
    assert stored["code_ref"]["commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert stored["code_ref"]["branch"] == "main" and stored["code_ref"]["dirty"] is False
    assert json.loads((repo / ".scp-ledger" / path).read_text()) == stored
    assert git(repo, "cat-file", "-t", f"refs/scp/run/{run_id}").strip() == "tag"
    assert git(repo, "cat-file", "-p", f"refs/scp/run/{run_id}").splitlines()[2] == \
        f"tag scp/run/{run_id}"
    assert f"refs/scp/run/{run_id}" in git(repo, "for-each-ref", "refs/scp/run",
                                           "--points-at", "HEAD")
    assert git(repo, "tag") == tags_before
    assert git(repo, "describe", "--tags", check=False) == describe_before
    assert git(repo, "status", "--porcelain") == ""
    assert Ledger.open(repo).index.get(run_id)["status"] == "ok"
    events = [json.loads(line) for line in
              git(repo, "show", f"scp-ledger:{ledger_dir(run_id)}/events.jsonl").splitlines()]
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert [e["type"] for e in events] == ["run:started", "run:output", "run:completed"]


def test_each_run_is_one_commit(repo: Path) -> None:
    for n in range(3):
        with tracked_run("build", "build:wheel", summary=f"build {n}", project_root=repo):
            pass
    assert git(repo, "rev-list", "--count", "scp-ledger").strip() == "3"
    assert len(Ledger.open(repo).recent()) == 3


def test_exception_fails_the_run_and_propagates(repo: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), \
            tracked_run("deploy", "deploy:k8s", project_root=repo) as run:
        raise RuntimeError("boom")
    stored = Ledger.open(repo).get(run.run_id)
    assert stored["status"] == "failed"
    assert stored["error"] == {"code": "exception", "message": "RuntimeError: boom"}
    assert stored["duration_ms"] >= 0 and stored["ended_at"]


def test_keyboard_interrupt_cancels(repo: Path) -> None:
    with pytest.raises(KeyboardInterrupt), tracked_run("test", "test:x", project_root=repo) as run:
        raise KeyboardInterrupt
    assert Ledger.open(repo).get(run.run_id)["status"] == "cancelled"


@pytest.mark.parametrize(("run_type", "subtype", "culprit"), [
    ("launch", "launch:rocket", "launch"),
    ("test", "test", "test"),
    ("test", "build:x", "build:x"),
    ("test", "test:Bad Detail", "test:Bad Detail"),
])
def test_bad_type_or_subtype_records_nothing(repo: Path, run_type: str, subtype: str,
                                             culprit: str) -> None:
    with pytest.raises(ValueError, match=culprit), \
            tracked_run(run_type, subtype, project_root=repo):
        pytest.fail("the block must not run")
    with pytest.raises(ValueError, match=culprit):
        run_tracked(run_type, subtype)
    assert git(repo, "branch", "--list", "scp-ledger") == ""


def test_nested_run_records_parent(repo: Path) -> None:
    with tracked_run("ci", "ci:pipeline", project_root=repo) as outer, \
            tracked_run("test", "test:unit", project_root=repo) as inner:
        pass
    ledger = Ledger.open(repo)
    assert ledger.get(inner.run_id)["parent_run_id"] == outer.run_id
    assert ledger.get(outer.run_id)["parent_run_id"] is None


def test_events_published_on_the_bus(repo: Path) -> None:
    with default_bus().subscribe(default_bus().last_id) as sub:
        with tracked_run("test", "test:bus", project_root=repo) as run:
            run.output("hello")
        seen = [sub.get(timeout=5) for _ in range(3)]
    assert [e["type"] for e in seen] == ["run:started", "run:output", "run:completed"]
    assert all(e["run_id"] == run.run_id for e in seen)
    assert seen[2]["data"]["status"] == "ok" and seen[1]["data"]["line"] == "hello"


def test_decorator_on_plain_function(repo: Path) -> None:
    @run_tracked("generate", "generate:readme",
                 summary_fn=lambda result: f"readme for {result['name']}")
    def generate(name: str) -> dict:
        return {"ok": name != "bad", "name": name}

    os.chdir(repo)
    good, bad = generate("demo"), generate("bad")
    assert good["status"] == "ok" and bad["status"] == "failed"
    ledger = Ledger.open(repo)
    assert ledger.get(good["run_id"])["summary"] == "readme for demo"
    assert ledger.get(bad["run_id"])["status"] == "failed"


def test_decorator_on_flask_view(repo: Path) -> None:
    flask = pytest.importorskip("flask")
    app = flask.Flask(__name__)

    @app.post("/deploy/<name>")
    @run_tracked("deploy", "deploy:demo")
    def deploy(name: str):
        if name == "bad":
            return flask.jsonify(error="nope"), 422
        return flask.jsonify(deployed=name)

    os.chdir(repo)
    client = app.test_client()
    ok, bad = client.post("/deploy/web"), client.post("/deploy/bad")
    assert ok.status_code == 200 and ok.json["status"] == "ok" and ok.json["deployed"] == "web"
    assert bad.status_code == 422 and bad.json["status"] == "failed"
    ledger = Ledger.open(repo)
    assert ledger.get(ok.json["run_id"])["result"] == {"deployed": "web"}
    assert ledger.get(bad.json["run_id"])["status"] == "failed"


def test_empty_repo_records_without_tag(empty_repo: Path) -> None:
    with tracked_run("setup", "setup:init", project_root=empty_repo) as run:
        pass
    stored = Ledger.open(empty_repo).get(run.run_id)
    assert stored["status"] == "ok" and stored["code_ref"]["commit"] is None
    assert git(empty_repo, "for-each-ref", "refs/scp/run") == ""


def test_detached_head(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    with tracked_run("test", "test:detached", project_root=repo) as run:
        pass
    stored = Ledger.open(repo).get(run.run_id)
    assert stored["code_ref"]["branch"] is None and stored["code_ref"]["commit"]


def test_dirty_tree_is_noted(repo: Path) -> None:
    (repo / "README.md").write_text("changed\n")
    with tracked_run("test", "test:dirty", project_root=repo) as run:
        pass
    assert Ledger.open(repo).get(run.run_id)["code_ref"]["dirty"] is True


def test_outside_a_repository_refuses(tmp_path: Path) -> None:
    with pytest.raises(NotARepository, match="not a git repository"), \
            tracked_run("test", "test:x", project_root=tmp_path):
        pass


def test_unknown_fields_survive_a_round_trip() -> None:
    data = {"schema": 2, "run_id": "20261124T141500123Z-7f3a9c2e", "type": "test",
            "subtype": "test:x", "status": "sparkling", "from_the_future": {"a": 1}}
    run = Run.from_dict(data)
    assert run.status == RunStatus.FAILED
    assert run.to_dict()["from_the_future"] == {"a": 1} and run.to_dict()["schema"] == 2


def test_big_output_keeps_head_and_tail_and_raw_log(repo: Path) -> None:
    with tracked_run("test", "test:loud", project_root=repo) as run:
        for n in range(5_000):
            run.output(f"line {n}")
    events = Ledger.open(repo).events(run.run_id)
    lines = [e["data"]["line"] for e in events if e["type"] == "run:output"]
    assert lines[0] == "line 0" and lines[-1] == "line 4999" and len(lines) < 2_100
    marker = next(e for e in events if e["type"] == "run:truncated")
    assert marker["data"]["omitted_events"] == 5_002 - 2_000
    raw = Ledger.open(repo).events(run.run_id, raw=True)
    assert len([e for e in raw if e["type"] == "run:output"]) == 5_000


def test_reading_after_a_seq_inside_the_omitted_range_still_marks_the_gap(repo: Path) -> None:
    with tracked_run("test", "test:loud", project_root=repo) as run:
        for n in range(5_000):
            run.output(f"line {n}")
    ledger = Ledger.open(repo)
    (ledger.logs_dir / f"{run.run_id}.events.jsonl").unlink()  # another machine: no raw log
    after = ledger.events(run.run_id, after=3_000)
    marker, first_kept = after[0], after[1]
    assert marker["type"] == "run:truncated" and marker["seq"] == 3_001
    assert marker["data"]["omitted_events"] == first_kept["seq"] - 3_001
    tail = range(first_kept["seq"], first_kept["seq"] + 1_000)
    assert [e["seq"] for e in after[1:]] == list(tail)
    past_the_gap = ledger.events(run.run_id, after=first_kept["seq"])
    assert all(e["type"] != "run:truncated" for e in past_the_gap)


def test_catching_up_gives_the_newest_events_and_marks_what_it_left_out(client, app) -> None:
    repo = app.extensions["controlplane"].ledger.root
    with tracked_run("test", "test:loud", project_root=repo) as run:
        for n in range(5_000):
            run.output(f"line {n}")
    caught_up = client.get(f"/api/runs/{run.run_id}/events?after=100").json["events"]
    assert caught_up[0]["type"] == "run:truncated" and caught_up[0]["seq"] == 101
    lines = [e["data"]["line"] for e in caught_up if e["type"] == "run:output"]
    assert lines[-1] == "line 4999" and len(lines) >= 1_990  # the raw log's newest, not a gap
    assert caught_up[0]["data"]["omitted_events"] + len(caught_up) - 1 == 5_002 - 100


def test_run_tags_can_live_under_refs_tags(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_TAG_NAMESPACE", "refs/tags/scp/run/")  # not the project's
    with tracked_run("test", "test:tags", project_root=repo) as run:
        pass
    assert git(repo, "tag").strip() == f"scp/run/{run.run_id}"


def test_raw_logs_are_pruned_to_the_retention(repo: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_LOGS_RETENTION", "3")  # the operator's disk, not the project's
    ids = []
    for _ in range(5):
        with tracked_run("test", "test:logs", project_root=repo) as run:
            run.output("x")
        ids.append(run.run_id)
    ledger = Ledger.open(repo)
    assert ledger.prune_logs() == 2
    kept = sorted(p.name.split(".")[0] for p in ledger.logs_dir.glob("*.events.jsonl"))
    assert kept == ids[2:]


def test_the_actor_name_is_what_getpass_answers(monkeypatch) -> None:
    """run_tracker reads the user name as getpass.getuser() does, without importing getpass
    (it imports termios: start-up time, issue 18 item 8)."""
    import getpass

    from controlplane.core.run_tracker import _USER_VARS, _user_name

    for variables in ({}, {"USER": "u1"}, {"LOGNAME": "l1", "USER": "u1"},
                      {"USERNAME": "n1"}, {"LNAME": "", "USER": "u2"}):
        for name in _USER_VARS:
            monkeypatch.delenv(name, raising=False)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        assert _user_name(os.getuid(), *map(os.environ.get, _USER_VARS)) == getpass.getuser()
