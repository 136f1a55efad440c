"""``git gc --prune=now`` / ``git prune`` racing records (issue 13 item 6, DECISIONS.md §7).

A prune marks what the refs reach, then deletes every other loose object: a
record's new objects, written before the branch moves, are deleted after it.
The writer outlasts a running gc and writes back what it pruned; a bare ``git
prune`` leaves no trace, so ``ledger doctor`` repairs the tip it breaks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from tests.conftest import git, make_repo
from tests.reliability.fault_support import cli, fsck, listed_runs
from tests.test_serve import server_env

LONG = os.environ.get("CONTROLPLANE_LONG_TESTS") == "1"

WRITER = """
import json, sys
from controlplane.core.ledger import LedgerWriteError
from controlplane.core.run_tracker import tracked_run

count, stop_on_failure = int(sys.argv[1]), sys.argv[2] == "stop"
started, failed = [], []
for number in range(count):
    try:
        with tracked_run("test", "test:gc", summary=f"run {number}") as run:
            started.append(run.run_id)
            run.output(f"line {number}")
    except LedgerWriteError as exc:
        failed.append(str(exc))
        if stop_on_failure:
            break
print(json.dumps({"started": started, "failed": failed}))
"""


def start_writer(repo: Path, script: Path, count: int, stop: bool) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(script), str(count),
                             "stop" if stop else "go"], cwd=repo, env=server_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def prune_until(repo: Path, done: threading.Event, argv: list[str]) -> threading.Thread:
    """Run *argv* (a real git prune) in *repo* again and again until *done* is set."""
    def loop() -> None:
        while not done.is_set():
            subprocess.run(["git", *argv], cwd=repo, capture_output=True, check=False)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def finish(writer: subprocess.Popen[str]) -> dict:
    out, err = writer.communicate(timeout=600)
    assert writer.returncode == 0 and "Traceback" not in err, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_gc_prune_now_racing_records_loses_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "project")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    per_writer = 100 if LONG else 12
    done = threading.Event()
    gc = prune_until(repo, done, ["gc", "--prune=now", "--quiet"])
    writers = [start_writer(repo, script, per_writer, stop=False) for _ in range(2)]
    try:
        reports = [finish(writer) for writer in writers]
    finally:
        done.set()
        gc.join(timeout=120)
    failures = [f for report in reports for f in report["failed"]]
    assert failures == [], failures[:3]
    started = [run_id for report in reports for run_id in report["started"]]
    checked = fsck(repo)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    runs = listed_runs(repo)
    assert Counter(r["run_id"] for r in runs) == Counter(started)  # each once
    assert {r["status"] for r in runs} == {"ok"}
    doctor = cli(repo, "ledger", "doctor")
    assert doctor.returncode == 0 and "missed objects" not in doctor.stdout, doctor.stdout
    print(f"FIGURE gc --prune=now loop vs 2 writers: {len(started)} runs, all recorded ok once, "
          "fsck clean, doctor had nothing to repair")


def break_the_tip(repo: Path, lost: int) -> list[str]:
    """Leave the state a prune racing *lost* records leaves: the tip and reflog name commits
    whose objects are gone. Real git does it: the branch steps back, the newest reflog entries
    go, ``git gc --prune=now`` deletes the records' objects (a record's pack too: ``git prune``
    alone deletes loose objects only), the branch file comes back."""
    branch = repo / ".git" / "refs" / "heads" / "scp-ledger"
    reflog = repo / ".git" / "logs" / "refs" / "heads" / "scp-ledger"
    tip, log_text = branch.read_text(), reflog.read_text()
    lost_commits = git(repo, "rev-list", f"-{lost}", "scp-ledger").split()
    git(repo, "update-ref", "refs/heads/scp-ledger", f"scp-ledger~{lost}")
    for _ in range(lost + 1):
        git(repo, "reflog", "delete", "scp-ledger@{0}")
    git(repo, "-c", "gc.cruftPacks=false", "gc", "-q", "--prune=now")
    branch.write_text(tip)
    reflog.write_text(log_text)
    for commit in lost_commits:
        assert git(repo, "cat-file", "-e", commit, check=False) == ""
    return lost_commits


def test_doctor_repairs_a_tip_whose_objects_were_pruned(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "project")
    for number in range(5):
        done = cli(repo, "exec", "test:gc", "--summary", f"run {number}", "--", "echo",
                   f"line {number}")
        assert done.returncode == 0, done.stderr
    before = {r["run_id"]: r for r in listed_runs(repo)}
    break_the_tip(repo, lost=2)
    assert fsck(repo).returncode != 0  # the tip misses objects

    listed = cli(repo, "runs", "list", "--json")  # a read still answers, from the index
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    refused = cli(repo, "exec", "test:gc", "--summary", "refused", "--", "true")
    assert "Traceback" not in refused.stderr, refused.stderr
    assert "ledger doctor" in refused.stderr.splitlines()[-1], refused.stderr

    doctor = cli(repo, "ledger", "doctor")
    assert "Traceback" not in doctor.stderr, doctor.stderr
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "missed objects" in doctor.stdout and "recorded again" in doctor.stdout
    checked = fsck(repo)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    runs = {r["run_id"]: r for r in listed_runs(repo)}
    assert Counter(r["run_id"] for r in listed_runs(repo)).most_common(1)[0][1] == 1
    for run_id, run in before.items():  # the lost two came back whole, from the view
        assert runs[run_id] == run
    assert [r["status"] for r in runs.values() if r["summary"] == "refused"] == ["interrupted"]
    for run_id in before:
        assert cli(repo, "runs", "show", run_id).returncode == 0
    after = cli(repo, "exec", "test:gc", "--summary", "after", "--", "true")
    assert after.returncode == 0, after.stderr
    again = cli(repo, "ledger", "doctor")
    assert again.returncode == 0 and "missed objects" not in again.stdout, again.stdout
    assert fsck(repo).returncode == 0
    print("FIGURE pruned tip: doctor moved the branch back, recorded 2 runs again from the "
          "view, fsck clean, every run once")
