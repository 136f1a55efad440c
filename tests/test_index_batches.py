"""The index written in batches (issue 18 item 5, ``index_batches``): fewer pages written
per run, every run read back at once in the process that recorded it, current for other
processes within ``INDEX_DELAY`` or at exit, and a batch lost with a killed process
caught up from the ledger by the next reader."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import pytest

from controlplane import tracked_run
from controlplane.core.ledger import Ledger, index_batches, index_read
from controlplane.core.ledger.index_batches import INDEX_BATCH, TIMER_NAME

WAL_HEADER, FRAME_HEADER = 32, 24


def record(repo: Path, summary: str = "") -> str:
    with tracked_run("test", "test:batch", project_root=repo, summary=summary) as run:
        pass
    return run.run_id


def wal_frames(repo: Path) -> int:
    """Pages the index's WAL holds: what the index's commits wrote since the checkpoint."""
    wal = repo / ".git" / "scp" / "index.sqlite-wal"
    size = wal.stat().st_size if wal.exists() else 0
    return max(0, size - WAL_HEADER) // (4096 + FRAME_HEADER)


def quick_list(repo: Path, limit: int = 500) -> list[str] | None:
    """What another process's ``runs list`` reads without the ledger; None: index behind."""
    found = index_read.recent_if_current(str(repo), limit, None, None)
    return None if found is None else [run["run_id"] for run in found]


def run_script(repo: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(f"""
        import os
        from controlplane import tracked_run
        def record():
            with tracked_run("test", "test:batch", project_root={str(repo)!r}):
                pass
    """) + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_a_script_recording_many_runs_writes_fewer_index_pages_than_runs(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_batches, "INDEX_DELAY", 3600.0)  # full batches, however slow
    record(repo)
    Ledger.open(repo).index.head()  # that first batch written
    before = wal_frames(repo)
    ids = [record(repo, f"run {n}") for n in range(2 * INDEX_BATCH)]
    written = wal_frames(repo) - before
    # one transaction per record wrote 6-8 pages each (runs, three indexes, totals, meta)
    assert written < len(ids), f"{written} WAL pages for {len(ids)} runs"
    assert {run["run_id"] for run in Ledger.open(repo).recent(limit=100)} >= set(ids)


def test_what_a_process_recorded_it_reads_back_at_once(repo: Path) -> None:
    ids = [record(repo) for _ in range(3)]
    ledger = Ledger.open(repo)
    assert [ledger.index.get(run_id)["run_id"] for run_id in ids] == ids
    assert [run["run_id"] for run in ledger.recent(limit=3)] == ids[::-1]
    assert ledger.index.count() == 3


def test_another_process_finds_the_index_current_once_the_batch_timer_ran(repo: Path) -> None:
    ids = [record(repo) for _ in range(3)]
    for thread in threading.enumerate():
        if thread.name == TIMER_NAME:
            thread.join(timeout=30)
    assert quick_list(repo) == ids[::-1]


def test_a_script_that_exits_leaves_the_index_current(repo: Path) -> None:
    run_script(repo, "for _ in range(5):\n    record()\n")
    listed = quick_list(repo)
    assert listed is not None and len(listed) == 5


def test_a_batch_lost_with_a_killed_process_is_caught_up_by_the_next_reader(
        repo: Path) -> None:
    run_script(repo, "from controlplane.core.ledger import index_batches\n"
                     "index_batches.INDEX_DELAY = 3600.0  # killed before its timer\n"
                     "for _ in range(5):\n    record()\nos._exit(0)  # no atexit: as a kill\n")
    assert quick_list(repo) is None  # the index never got them
    ledger = Ledger.open(repo)
    assert len(ledger.recent(limit=10)) == 5
    assert len(quick_list(repo) or []) == 5


def test_records_of_several_threads_all_reach_the_index(repo: Path) -> None:
    errors: list[BaseException] = []

    def records() -> None:
        try:
            for _ in range(INDEX_BATCH):
                record(repo)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=records) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert Ledger.open(repo).index.count() == 3 * INDEX_BATCH
    assert os.path.exists(repo / ".git" / "scp" / "index.sqlite")


def test_a_batch_meeting_a_damaged_index_refills_it_whole(repo: Path) -> None:
    """The batch's write finds the index damaged: it is moved aside and refilled from the
    ledger, whose catch-up reads the index again from inside that write."""
    ledger = Ledger.open(repo)
    first = [record(repo) for _ in range(3)]
    ledger.index.head()  # written
    later = [record(repo) for _ in range(3)]  # queued
    index = repo / ".git" / "scp" / "index.sqlite"
    with open(index, "r+b") as fh:  # the header survives, the pages do not
        fh.seek(4096)
        fh.write(os.urandom(max(4096, index.stat().st_size - 4096)))
    assert [run["run_id"] for run in ledger.recent(limit=10)] == (first + later)[::-1]


def test_a_forked_child_writes_its_own_batches(repo: Path) -> None:
    """A server forking workers after it recorded: the child has no timer thread of the
    parent's, so its own records start one, and all runs reach the index."""
    record(repo)  # the parent's batch, with its timer
    with warnings.catch_warnings():  # 3.12+: a fork beside threads (the timer) is the case
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: record, let its own timer write them, exit without atexit
        code = 1
        try:
            ids = [record(repo) for _ in range(2)]
            for thread in threading.enumerate():
                if thread.name == TIMER_NAME:
                    thread.join(timeout=30)
            listed = quick_list(repo)
            code = 0 if listed is not None and set(ids) <= set(listed) else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(Ledger.open(repo).recent(limit=10)) == 3
