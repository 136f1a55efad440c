"""Garbage committed into the ledger branch: doctor names it, readers skip it, no 500."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from controlplane import tracked_run
from controlplane.core.runs import ledger_dir
from tests.conftest import GIT_ENV, bearer_client
from tests.reliability.fault_support import cli, fsck, ledger_tip

GARBAGE_RUN_JSON = {
    "not json": b"{broken",
    "not utf-8": b"\xff\xfe\x00garbage",
    "a list": b"[1, 2]",
    "null": b"null",
    "wrong types": None,  # filled in per run: the right keys, values of the wrong kinds
    "empty": b"",
}
GARBAGE_EVENTS = b'{"seq": 1, "type": "run:started"}\n{cut sh\n5\n"text"\n[1]\n\xff\xfe\n'


def commit_into_ledger(repo: Path, files: dict[str, bytes], message: str) -> str:
    """Commit *files* (path -> bytes) on top of scp-ledger with git plumbing; the new tip."""
    env = {**os.environ, **GIT_ENV, "GIT_INDEX_FILE": str(repo / ".git" / "corrupt-index")}

    def plumb(*args: str, data: bytes | None = None) -> str:
        done = subprocess.run(["git", *args], cwd=repo, input=data, capture_output=True,
                              env=env, check=True)
        return done.stdout.decode().strip()

    tip = ledger_tip(repo)
    plumb("read-tree", tip)
    for path, data in files.items():
        blob = plumb("hash-object", "-w", "--stdin", data=data)
        plumb("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}")
    tree = plumb("write-tree")
    commit = plumb("commit-tree", tree, "-p", tip, "-m", message)
    plumb("update-ref", "refs/heads/scp-ledger", commit, tip)
    (repo / ".git" / "corrupt-index").unlink()
    return commit


def wrong_types(run_id: str) -> bytes:
    return json.dumps({"run_id": run_id, "type": "test", "subtype": "test:corrupt",
                       "status": "ok", "summary": 5, "actor": "nobody", "code_ref": [],
                       "result": 3, "error": "boom", "started_at": 12, "ended_at": [],
                       "duration_ms": "long", "params": "x", "artifacts": 7,
                       "events": "many"}).encode()


@pytest.fixture
def damaged(repo: Path) -> dict[str, object]:
    """One run per kind of damaged run.json, one with damaged events, one left intact."""
    run_ids = {}
    for label in [*GARBAGE_RUN_JSON, "bad events", "intact"]:
        with tracked_run("test", "test:corrupt", summary=label, project_root=repo) as run:
            run.output(f"output of {label}")
        run_ids[label] = run.run_id
    files = {}
    for label, data in GARBAGE_RUN_JSON.items():
        run_id = run_ids[label]
        files[f"{ledger_dir(run_id)}/run.json"] = data if data is not None else wrong_types(
            run_id)
    files[f"{ledger_dir(run_ids['bad events'])}/events.jsonl"] = GARBAGE_EVENTS
    commit_into_ledger(repo, files, "a bad merge")
    return {"ids": run_ids, "files": files}


def test_doctor_names_every_damaged_file(repo: Path, damaged) -> None:
    doctor = cli(repo, "ledger", "doctor")
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert "Traceback" not in doctor.stderr, doctor.stderr
    lines = doctor.stdout.splitlines()
    unreadable = {f"  {path}" for path in damaged["files"]}
    assert unreadable <= set(lines), doctor.stdout
    assert f"unreadable run files: {len(unreadable)}" in lines
    assert fsck(repo).returncode == 0  # well-formed git objects, damaged contents


def test_the_web_never_answers_500_on_a_damaged_ledger(repo: Path, damaged, make_app) -> None:
    assert cli(repo, "ledger", "doctor").returncode == 1  # also rebuilds the index from scratch
    client = bearer_client(make_app(REPO=repo))
    statuses: dict[str, int] = {}

    def get(path: str) -> object:
        answer = client.get(path)
        statuses[path] = answer.status_code
        assert answer.status_code < 500, f"{path}: {answer.status_code} {answer.data[:300]!r}"
        return answer

    listed = get("/api/runs/recent?limit=200").get_json()["runs"]
    listed_ids = {r["run_id"] for r in listed}
    ids = damaged["ids"]
    assert ids["intact"] in listed_ids and ids["bad events"] in listed_ids
    assert not listed_ids & {ids[k] for k in GARBAGE_RUN_JSON}  # the index skipped them
    for label, run_id in ids.items():
        for path in (f"/api/runs/{run_id}", f"/api/runs/{run_id}/events",
                     f"/api/runs/{run_id}/log", f"/runs/{run_id}"):
            get(path)
        get(f"/api/runs/search?q={run_id[:12]}")
        get(f"/api/runs/search?q={label.replace(' ', '+')}")
    for page in ("/", "/runs", "/api/metrics"):
        get(page)
    shown = get(f"/api/runs/{ids['bad events']}").get_json()["events"]
    assert [e["type"] for e in shown] == ["run:started"]  # the readable line only
    # without the local raw log (as on a clone that pulled the run) the ledger's copy is read
    (repo / ".git" / "scp" / "logs" / f"{ids['bad events']}.events.jsonl").unlink()
    events = get(f"/api/runs/{ids['bad events']}/events").get_json()["events"]
    assert [e["type"] for e in events] == ["run:started"]
    intact = get(f"/api/runs/{ids['intact']}").get_json()
    assert intact["run"]["status"] == "ok" and intact["events"]
    print(f"FIGURE corrupt: {len(statuses)} GETs over {len(ids)} runs, statuses "
          f"{sorted(set(statuses.values()))}")
