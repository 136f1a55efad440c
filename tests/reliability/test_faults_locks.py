"""Lock files left by a git process killed mid-write: detected, kept while owned, then cleared."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import GIT_ENV, git
from tests.reliability.fault_support import (
    cli,
    fsck,
    journal_entries,
    ledger_state,
    ledger_tip,
    listed_runs,
    wait_until,
)

OLD = 3600  # seconds: how far a lock's mtime is set back to stand for "left long ago"


def age(path: Path, seconds: float = OLD) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def record(repo: Path, label: str) -> subprocess.CompletedProcess:
    return cli(repo, "exec", "test:lock", "--summary", label, "--", "true")


class HeldRefLock:
    """A real ``git update-ref --stdin`` transaction, prepared: it holds the branch's lock."""

    def __init__(self, repo: Path, ref: str) -> None:
        self.proc = subprocess.Popen(["git", "update-ref", "--stdin"], cwd=repo,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     start_new_session=True)
        tip = git(repo, "rev-parse", ref).strip()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"start\nupdate {ref} {tip} {tip}\nprepare\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "start: ok\n"
        assert self.proc.stdout.readline() == "prepare: ok\n"  # the lock file exists now

    def kill(self) -> None:
        """SIGKILL: the lock stays behind, as after a crash."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc.stdin.close()
        self.proc.stdout.close()

    def abort(self) -> None:
        self.proc.stdin.write("abort\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


@pytest.fixture
def recorded(repo: Path) -> Path:
    first = record(repo, "before the crash")
    assert first.returncode == 0, first.stderr
    return repo


def test_a_dead_gits_ledger_lock_is_cleared_once_stale(recorded: Path) -> None:
    repo = recorded
    lock = repo / ".git" / "refs" / "heads" / "scp-ledger.lock"
    HeldRefLock(repo, "refs/heads/scp-ledger").kill()
    assert lock.exists()
    before = ledger_state(repo)

    fresh = record(repo, "while the lock is fresh")  # a young lock may be a live git's
    assert fresh.returncode == 2, fresh.stderr
    assert "Traceback" not in fresh.stderr
    assert "the ledger branch is locked by" in fresh.stderr and "ledger doctor" in fresh.stderr
    assert ledger_state(repo) == before and lock.exists()

    age(lock)
    started = time.monotonic()
    done = record(repo, "once the lock is stale")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert not lock.exists()
    runs = {r["summary"]: r for r in listed_runs(repo)}
    assert runs["once the lock is stale"]["status"] == "ok"
    # the run whose record failed is not lost: its journal entry is recorded at the next open
    assert runs["while the lock is fresh"]["status"] == "interrupted"
    assert journal_entries(repo) == []
    assert fsck(repo).returncode == 0
    print(f"FIGURE stale-ref-lock: fresh lock -> exit 2 clear message, ledger unchanged; "
          f"aged lock cleared automatically, record took {took:.2f} s")


def test_doctor_clears_stale_locks_but_not_one_a_live_git_holds(recorded: Path) -> None:
    repo = recorded
    run_id = listed_runs(repo)[0]["run_id"]
    tag_lock = repo / ".git" / "refs" / "scp" / "run" / f"{run_id}.lock"
    HeldRefLock(repo, f"refs/scp/run/{run_id}").kill()
    index_lock = repo / ".git" / "index.lock"
    index_lock.write_text("")  # as `git add` killed mid-write leaves it
    for lock in (tag_lock, index_lock):
        age(lock)

    live = HeldRefLock(repo, "refs/heads/scp-ledger")
    branch_lock = repo / ".git" / "refs" / "heads" / "scp-ledger.lock"
    age(branch_lock)
    try:
        held = cli(repo, "ledger", "doctor")
        assert "stale git locks removed: 0" in held.stdout, held.stdout  # a git is at work
        assert tag_lock.exists() and index_lock.exists() and branch_lock.exists()
    finally:
        live.abort()
    assert not branch_lock.exists()  # its owner released it

    commit = subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "x"], cwd=repo,
                            capture_output=True, text=True, env={**os.environ, **GIT_ENV})
    assert commit.returncode != 0 and "index.lock" in commit.stderr
    doctor = cli(repo, "ledger", "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    lines = doctor.stdout.splitlines()
    assert "stale git locks removed: 2" in lines
    assert "  index.lock" in lines and f"  refs/scp/run/{run_id}.lock" in lines
    assert not tag_lock.exists() and not index_lock.exists()
    git(repo, "commit", "-q", "--allow-empty", "-m", "works again")
    tip = ledger_tip(repo)
    assert record(repo, "after doctor").returncode == 0 and ledger_tip(repo) != tip
    assert fsck(repo).returncode == 0


def test_a_fresh_lock_of_a_killed_git_add_blocks_only_git(repo: Path, tmp_path: Path) -> None:
    """A real `git add` killed inside its clean filter: index.lock stays; runs still record."""
    ready = tmp_path / "filter-ready"
    git(repo, "config", "filter.block.clean", f"touch {ready}; sleep 600")
    (repo / ".gitattributes").write_text("*.bin filter=block\n")
    (repo / "data.bin").write_text("payload\n")
    adder = subprocess.Popen(["git", "add", "data.bin"], cwd=repo, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(ready.exists, 60, "the clean filter to start")
        index_lock = repo / ".git" / "index.lock"
        assert index_lock.exists()
        age(index_lock)
        held = cli(repo, "ledger", "doctor")  # git add is alive: its lock stays
        assert "stale git locks removed: 0" in held.stdout and index_lock.exists()
    finally:
        os.killpg(adder.pid, signal.SIGKILL)
        adder.wait(timeout=30)
    assert index_lock.exists()
    assert record(repo, "despite index.lock").returncode == 0  # the ledger never uses the index
    doctor = cli(repo, "ledger", "doctor")
    assert "  index.lock" in doctor.stdout.splitlines() and not index_lock.exists()
