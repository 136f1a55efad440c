"""Runs left queued for the index by processes that never opened it (``index_queue``).

``controlplane exec`` records its run and queues the index's move instead of importing
sqlite3 (issue 18, item 8). Each test makes the queue the way it is made for real (exec
processes, a script's records, a forked writer) and reads it the ways a user does: the
quick ``runs list``, a server's ledger, a script recording after them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane import tracked_run
from controlplane.core.ledger import Ledger, gitfiles, index_batches, index_queue
from controlplane.core.ledger.index import RunIndex
from tests.conftest import GIT_ENV

QUEUE = Path(".git") / "scp" / index_queue.QUEUE_DIR


def cli(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "controlplane", *args], cwd=repo,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **GIT_ENV})
    assert not check or done.returncode in (0, 1), done.stderr
    return done


def listed(repo: Path, *args: str) -> list[dict]:
    return json.loads(cli(repo, "runs", "list", "--json", "--limit", "100", *args).stdout)


def queued(repo: Path) -> list[Path]:
    return sorted((repo / QUEUE).glob("*.json")) if (repo / QUEUE).exists() else []


def index_rows(repo: Path) -> tuple[str | None, list[str]]:
    """(head, run ids) of the index file itself, read by another connection."""
    index = RunIndex(repo / ".git" / "scp" / "index.sqlite")
    try:
        return index.head(), sorted(run["run_id"] for run in index.recent(limit=1000))
    finally:
        index.close()


def tip(repo: Path) -> str | None:
    return gitfiles.read_ref(repo / ".git", "refs/heads/scp-ledger")


def with_an_index(repo: Path) -> None:
    """A ledger whose index exists and is current, as after a first list or a server."""
    cli(repo, "exec", "build:first", "--", "true")
    Ledger.open(repo).index.close()
    Ledger.forget_instances()


def test_an_exec_queues_its_run_and_a_list_reads_it_without_the_ledger(repo: Path) -> None:
    with_an_index(repo)
    head_before, _ = index_rows(repo)
    cli(repo, "exec", "test:unit", "--", "true")
    cli(repo, "exec", "test:lint", "--", "false")
    cli(repo, "exec", "deploy:prod", "--summary", "ship it", "--", "true")
    assert len(queued(repo)) == 3
    assert index_rows(repo)[0] == head_before  # the index itself untouched
    quick = {args: listed(repo, *args) for args in
             [(), ("--type", "test"), ("--status", "failed"), ("--limit", "2")]}
    names = subprocess.run([sys.executable, "-X", "importtime", "-m", "controlplane", "runs",
                            "list"], cwd=repo, capture_output=True, text=True, timeout=120)
    assert "controlplane.core.ledger.ledger" not in names.stderr  # the quick read answered
    assert "pygit2" not in names.stderr
    assert len(queued(repo)) == 3  # a list writes nothing
    assert [r["subtype"] for r in quick[()]] == ["deploy:prod", "test:lint", "test:unit",
                                                 "build:first"]
    ledger = Ledger.open(repo)  # the ledger's answers, from the index it brings along
    assert quick[()] == ledger.recent(limit=100)
    assert quick[("--type", "test")] == ledger.recent(limit=100, type="test")
    assert quick[("--status", "failed")] == ledger.recent(limit=100, status="failed")
    assert quick[("--limit", "2")] == ledger.recent(limit=2)
    assert queued(repo) == []  # applied by the ledger, and gone
    assert index_rows(repo) == (tip(repo), sorted(r["run_id"] for r in quick[()]))


def test_a_server_reads_what_execs_queued_and_its_own_records_follow(repo: Path) -> None:
    with_an_index(repo)
    ledger = Ledger.open(repo)  # a server's: its index is open
    before = ledger.index.count()
    cli(repo, "exec", "test:one", "--", "true")
    cli(repo, "exec", "test:two", "--", "true")
    assert [r["subtype"] for r in ledger.recent(limit=2)] == ["test:two", "test:one"]
    assert ledger.index.count() == before + 2
    cli(repo, "exec", "test:three", "--", "true")  # queued, then a run recorded on top here
    with tracked_run("test", "test:served", project_root=repo):
        pass
    ledger.flush_index()
    assert index_rows(repo)[0] == tip(repo)
    assert [r["subtype"] for r in ledger.recent(limit=3)] == ["test:served", "test:three",
                                                              "test:two"]
    assert ledger.index.count() == before + 4 and queued(repo) == []


def test_the_queue_stays_short_when_nothing_reads(repo: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A script recording many runs, each batch flushed at once: past ``QUEUE_MAX`` files
    the process opens the index and applies them, then writes the index itself."""
    monkeypatch.setattr(index_batches, "INDEX_BATCH", 1)
    runs = index_queue.QUEUE_MAX + 8
    for n in range(runs):
        with tracked_run("test", "test:many", summary=f"run {n}", project_root=repo):
            pass
        assert len(queued(repo)) <= index_queue.QUEUE_MAX
    Ledger.flush_indexes()
    head, ids = index_rows(repo)
    assert (head, len(ids), queued(repo)) == (tip(repo), runs, [])


def test_a_killed_exec_whose_run_was_never_queued_is_caught_up_from_git(repo: Path) -> None:
    with_an_index(repo)
    cli(repo, "exec", "test:lost", "--", "true")
    for path in queued(repo):
        path.unlink()  # as if the exec died between its commit and its queue file
    found = listed(repo)
    assert [r["subtype"] for r in found] == ["test:lost", "build:first"]
    assert index_rows(repo)[0] == tip(repo)  # the list's ledger caught the index up


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"moves": []}',
                                     b'{"moves": [{"commit": 7}]}',
                                     b'{"moves": [{"parent": null, "commit": "x", '
                                     b'"runs": [["not a run", "dir"]], "messages": []}]}'],
                         ids=["empty", "not json", "no move", "bad commit", "bad run"])
def test_a_file_in_the_queue_that_is_not_ours_changes_nothing(repo: Path,
                                                              content: bytes) -> None:
    with_an_index(repo)
    cli(repo, "exec", "test:real", "--", "true")
    (repo / QUEUE / "0000000000000000000000000000000000000000.json").write_bytes(content)
    assert [r["subtype"] for r in listed(repo)] == ["test:real", "build:first"]
    Ledger.open(repo).index.head()
    assert queued(repo) == []  # ours applied, the other one deleted by the ledger
    assert len(index_rows(repo)[1]) == 2


def test_a_move_off_the_branch_never_moves_the_index(repo: Path) -> None:
    """A queue file left from before a branch reset (its commit no longer the tip's): the
    quick read does not use it, the ledger does not apply it, and it is dropped once old."""
    with_an_index(repo)
    head, ids = index_rows(repo)
    forged_run = {"run_id": "20991231T235959000Z-deadbeef", "type": "deploy",
                  "subtype": "deploy:prod", "status": "ok"}
    moves = [{"parent": head, "commit": "f" * 40, "messages": [],
              "runs": [[forged_run, "ledger/runs/2099/12/31/de/" + forged_run["run_id"]]]}]
    (repo / QUEUE).mkdir(parents=True, exist_ok=True)
    stale = repo / QUEUE / f"{'f' * 40}.json"
    stale.write_text(json.dumps({"moves": moves}))
    assert [r["run_id"] for r in listed(repo)] == ids  # not the forged one
    ledger = Ledger.open(repo)
    assert ledger.index.head() == head and ledger.index.get(forged_run["run_id"]) is None
    assert stale.exists()  # young: it may yet lead somewhere
    os.utime(stale, (1, 1))
    ledger.index.head()
    assert not stale.exists()


def test_a_forked_writer_and_its_parent_queue_overlapping_batches(repo: Path) -> None:
    """Both hold the parent's batch after a fork; each queues what it holds, and each run
    reaches the index once."""
    record = "from controlplane import tracked_run\n" \
             "with tracked_run('test', 'test:fork'):\n    pass\n"
    script = record + "import os\npid = os.fork()\n" + record + \
        "if pid:\n    os.waitpid(pid, 0)\n"
    done = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", script],
                          cwd=repo, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **GIT_ENV})
    assert done.returncode == 0, done.stderr
    found = listed(repo)
    assert len(found) == 3 and len({r["run_id"] for r in found}) == 3
    Ledger.open(repo).index.head()
    assert len(index_rows(repo)[1]) == 3 and index_rows(repo)[0] == tip(repo)


def test_a_script_whose_repository_was_deleted_makes_nothing_again_at_exit(
        repo: Path) -> None:
    """Its batch is queued at exit: the queue's directory is made only inside a ``.git/scp``
    that is there, and the exit says nothing (the index of a deleted repository)."""
    script = ("import shutil\nfrom controlplane import tracked_run\n"
              f"with tracked_run('test', 'test:gone', project_root={str(repo)!r}):\n"
              f"    pass\nshutil.rmtree({str(repo)!r})\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **GIT_ENV})
    assert (done.returncode, done.stderr) == (0, "")
    assert not repo.exists()


def test_a_file_a_killed_spill_left_aside_is_removed_once_old(repo: Path) -> None:
    with_an_index(repo)
    cli(repo, "exec", "test:after", "--", "true")
    aside = repo / QUEUE / f".{'a' * 40}.4242.tmp"  # a spill killed between write and rename
    aside.write_text('{"moves": [')
    os.utime(aside, (1, 1))
    fresh = repo / QUEUE / f".{'b' * 40}.4243.tmp"  # one being written now
    fresh.write_text("{")
    assert [r["subtype"] for r in listed(repo)] == ["test:after", "build:first"]
    Ledger.open(repo).index.head()
    assert (aside.exists(), fresh.exists(), queued(repo)) == (False, True, [])


def test_a_running_server_answers_with_the_runs_execs_queued(repo: Path,
                                                             tmp_path: Path) -> None:
    """A user's dashboard and an exec in a terminal: the next answer of the server holds the
    exec's run, and its totals count it, with no wait."""
    from tests.test_serve import BEARER, Server, request

    with_an_index(repo)
    server = Server(repo, tmp_path)
    try:
        before = request(server, "GET", "/api/metrics/summary", headers=BEARER).json()
        cli(repo, "exec", "test:terminal", "--", "false")
        assert len(queued(repo)) == 1
        recent = request(server, "GET", "/api/runs/recent", headers=BEARER)
        assert recent.status == 200, recent.body
        assert "test:terminal" in recent.body.decode()
        after = request(server, "GET", "/api/metrics/summary", headers=BEARER).json()
        assert (after["total"], after["failed"]) == (before["total"] + 1, before["failed"] + 1)
        assert queued(repo) == []  # the server's ledger applied it
        assert index_rows(repo)[0] == tip(repo)
    finally:
        server.stop()
