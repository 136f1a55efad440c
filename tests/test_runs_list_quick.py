"""``runs list`` from a current index without the ledger (issue 18 item 8).

The quick read (``index_read.recent_if_current``) must answer exactly what
``Ledger.recent`` answers, and step aside whenever the ledger has something to do
first: a run in flight, a dead process's run to record, an index or view behind the
branch. Each case here is produced as it happens: real runs, a real ``kill -9``, a
record whose process died before it updated the index.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controlplane import tracked_run
from controlplane.core.ledger import Ledger, index_read
from controlplane.core.ledger.store import BRANCH_REF
from controlplane.core.ledger.view import VIEW_DIR
from tests.conftest import GIT_ENV, git


def cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controlplane", *args], cwd=repo,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **GIT_ENV})


def listed(repo: Path, *args: str) -> list[dict]:
    done = cli(repo, "runs", "list", "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def record_some(repo: Path) -> None:
    for subtype in ("test:unit", "build:wheel", "test:lint"):
        with tracked_run(subtype.split(":")[0], subtype, project_root=repo, summary=subtype):
            pass
    with pytest.raises(RuntimeError), tracked_run("deploy", "deploy:prod", project_root=repo):
        raise RuntimeError("refused")


def imported(repo: Path) -> set[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "controlplane", "runs",
                           "list"], cwd=repo, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **GIT_ENV})
    assert done.returncode == 0, done.stderr
    return {line.rpartition("|")[2].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}


def test_the_quick_read_answers_what_the_ledger_answers(repo: Path) -> None:
    record_some(repo)
    ledger = Ledger.open(repo)
    for limit, run_type, status in ((20, None, None), (2, None, None), (20, "test", None),
                                    (20, None, "failed"), (20, "build", "ok"), (1, "x", None)):
        quick = index_read.recent_if_current(str(repo), limit, run_type, status)
        assert quick is not None
        assert quick == ledger.recent(limit=limit, type=run_type, status=status)
    assert [r["subtype"] for r in listed(repo)] == ["deploy:prod", "test:lint", "build:wheel",
                                                    "test:unit"]


def test_a_current_index_is_listed_without_the_ledgers_modules(repo: Path) -> None:
    record_some(repo)
    Ledger.flush_indexes()  # as this process's timer does 0.1 s later (index_batches)
    names = imported(repo)
    assert "controlplane.core.ledger.index_read" in names
    assert not names & {"controlplane.core.ledger.ledger", "controlplane.core.runs",
                        "dataclasses", "pygit2", "logging"}, sorted(names)


def test_a_run_in_flight_is_listed(repo: Path) -> None:
    record_some(repo)
    with tracked_run("test", "test:slow", project_root=repo) as run:
        assert index_read.recent_if_current(str(repo), 20) is None
        found = listed(repo)
        assert (found[0]["run_id"], found[0]["status"]) == (run.run_id, "running")


def test_a_killed_exec_is_recorded_as_interrupted_by_the_next_list(repo: Path) -> None:
    record_some(repo)
    child = subprocess.Popen([sys.executable, "-m", "controlplane", "exec", "test:hang", "--",
                              "sleep", "60"], cwd=repo, env={**os.environ, **GIT_ENV},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    groups = tool_groups(repo / ".git" / "scp" / "journal", deadline=time.monotonic() + 60)
    os.killpg(child.pid, signal.SIGKILL)  # the exec, as a crash would: its tool lives on
    child.wait(timeout=30)
    found = listed(repo)
    assert (found[0]["subtype"], found[0]["status"]) == ("test:hang", "interrupted")
    deadline = time.monotonic() + 30  # and the list's recovery killed the tool it left
    while not all(dead(pgid) for pgid in groups) and time.monotonic() < deadline:
        time.sleep(0.05)  # SIGKILL was sent; the kernel ends the process on its own time
    assert all(dead(pgid) for pgid in groups), groups


def dead(pid: int) -> bool:
    """True once *pid* has ended: gone, or a zombie its new parent has not reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def tool_groups(journal: Path, deadline: float) -> list[int]:
    """The process groups the journal's one entry has started, once it has one."""
    while time.monotonic() < deadline:
        for entry in journal.glob("*.json"):
            try:
                groups = json.loads(entry.read_bytes()).get("groups") or {}
            except ValueError:  # being replaced right now
                continue
            if groups:
                return [int(pgid) for pgid in groups]
        time.sleep(0.05)  # a poll of the journal, not a wait for an event
    raise AssertionError("the exec journaled no tool process group in 60 s")


def test_an_index_behind_the_branch_is_caught_up_first(repo: Path) -> None:
    """A process killed between its commit and its index update leaves the index one run
    behind the branch: the list shows that run (the ledger catches up)."""
    record_some(repo)
    newest = Ledger.open(repo).recent(limit=1)[0]["run_id"]
    parent = git(repo, "rev-parse", f"{BRANCH_REF}^").strip()
    Ledger.forget_instances()
    index = sqlite3.connect(repo / ".git" / "scp" / "index.sqlite")
    with index:
        index.execute("DELETE FROM runs WHERE run_id = ?", (newest,))
        index.execute("UPDATE meta SET value = ? WHERE key = 'head'", (parent,))
    index.close()
    assert index_read.recent_if_current(str(repo), 20) is None
    assert listed(repo)[0]["run_id"] == newest


def test_a_view_behind_the_branch_is_caught_up_by_the_list(repo: Path) -> None:
    record_some(repo)
    head = repo / VIEW_DIR / ".head"
    tip = head.read_text().strip()
    head.write_text(git(repo, "rev-parse", f"{BRANCH_REF}^"))
    assert index_read.recent_if_current(str(repo), 20) is None
    listed(repo)
    assert head.read_text().strip() == tip


def test_no_index_yet_is_made_by_the_ledger_not_the_quick_read(repo: Path) -> None:
    record_some(repo)
    Ledger.forget_instances()  # their runs left queued for the index (index_queue)
    shutil.rmtree(repo / ".git" / "scp" / "index-queue")  # an index deleted, nothing queued
    for suffix in ("", "-wal", "-shm"):
        (repo / ".git" / "scp" / f"index.sqlite{suffix}").unlink(missing_ok=True)
    assert index_read.recent_if_current(str(repo), 20) is None
    assert not (repo / ".git" / "scp" / "index.sqlite").exists()  # the quick read made none
    assert len(listed(repo)) == 4


def test_a_ci_run_reported_running_is_listed(repo: Path) -> None:
    from controlplane.core.events import EventBus
    from controlplane.core.ingest import IngestedRun, ingest

    record_some(repo)
    bus = EventBus()
    try:
        outcome = ingest(Ledger.open(repo), bus, IngestedRun(
            pipeline="nightly", status="running", ci_run_id="4242", summary="nightly"))
    finally:
        bus.close()
    assert outcome.what == "pending"
    assert index_read.recent_if_current(str(repo), 20) is None
    found = listed(repo)
    assert (found[0]["subtype"], found[0]["status"]) == ("ci:nightly", "running")


def test_the_quick_read_names_the_ledgers_branch_and_view() -> None:
    """index_read keeps its own copies of these names (importing store or view would cost
    the start-up it saves): they must stay the ledger's."""
    assert index_read.BRANCH_REF == BRANCH_REF
    assert os.path.join(VIEW_DIR, ".head") == index_read.VIEW_HEAD
    from controlplane.core.ledger.index import SCHEMA_VERSION
    assert SCHEMA_VERSION is index_read.SCHEMA_VERSION
