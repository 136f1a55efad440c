"""The record path (issue 18 items 4, 5): run tags written as git writes a ref (lock file and
rename), the view's head rewritten in place, repositories discovered once per path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane import tracked_run
from controlplane.core import redact
from controlplane.core.ledger import Ledger
from controlplane.core.ledger.gitfiles import real_path
from tests.conftest import git
from tests.processes import read_line
from tests.reliability.fault_support import wait_until


def record(repo: Path, subtype: str = "test:a") -> str:
    with tracked_run("test", subtype, project_root=repo) as run:
        pass
    return run.run_id


def test_run_tags_beside_packed_ones_are_refs_git_reads(repo: Path) -> None:
    packed = [record(repo) for _ in range(3)]
    git(repo, "pack-refs", "--all")
    assert not list((repo / ".git" / "refs" / "scp" / "run").glob("*"))
    fresh = record(repo)
    loose = repo / ".git" / "refs" / "scp" / "run" / fresh
    assert loose.read_text() == git(repo, "rev-parse", f"refs/scp/run/{fresh}")
    assert not loose.with_name(fresh + ".lock").exists()
    assert git(repo, "cat-file", "-t", f"refs/scp/run/{fresh}").strip() == "tag"
    assert git(repo, "rev-parse", f"refs/scp/run/{fresh}^{{commit}}") == \
        git(repo, "rev-parse", "HEAD")
    listed = git(repo, "for-each-ref", "--format=%(refname:lstrip=3)", "refs/scp/run").split()
    assert sorted(listed) == sorted([*packed, fresh])
    fsck = subprocess.run(["git", "fsck", "--no-dangling"], cwd=repo, capture_output=True,
                          text=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    store = Ledger.open(repo).store
    head = git(repo, "rev-parse", "HEAD").strip()
    assert store.tag_run(packed[0], head, "again") is False  # packed: exists
    assert store.tag_run(fresh, head, "again") is False  # loose: exists


def test_a_tag_locked_by_git_leaves_the_run_recorded_untagged(repo: Path) -> None:
    ledger = Ledger.open(repo)
    with tracked_run("test", "test:a", project_root=repo) as run:
        lock = repo / ".git" / "refs" / "scp" / "run" / f"{run.run_id}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text("held by a git\n")  # as a git that writes this ref right now
    assert ledger.get(run.run_id)["status"] == "ok"
    assert lock.read_text() == "held by a git\n"  # not ours to take or remove
    assert not (lock.parent / run.run_id).exists()
    lock.unlink()
    doctor = subprocess.run([sys.executable, "-m", "controlplane", "ledger", "doctor"], cwd=repo,
                            capture_output=True, text=True, check=False)
    assert "run tags recreated: 1" in doctor.stdout, doctor.stdout


def test_the_view_head_follows_every_record_and_survives_garbage(repo: Path) -> None:
    ledger = Ledger.open(repo)
    for _ in range(3):
        record(repo)
        assert (repo / ".scp-ledger" / ".head").read_text() == \
            git(repo, "rev-parse", "scp-ledger").strip()
    (repo / ".scp-ledger" / ".head").write_text("not a commit at all\n")
    Ledger.forget_instances()
    ledger = Ledger.open(repo)
    assert ledger.view.head() == git(repo, "rev-parse", "scp-ledger").strip()
    assert len(list((repo / ".scp-ledger").rglob("run.json"))) == 3


def test_a_repository_made_inside_a_known_path_is_found(repo: Path) -> None:
    sub = repo / "sub"
    sub.mkdir()
    assert Ledger.open(sub).root == repo
    git(sub, "init", "-q", "-b", "main")
    assert Ledger.open(sub).root == sub  # not the remembered outer repository
    assert Ledger.open(repo).root == repo


HOLD_A_RUN = """
import sys
from controlplane import tracked_run
with tracked_run("test", "test:held", project_root=sys.argv[1]) as run:
    print(run.run_id, flush=True)
    sys.stdin.readline()  # held until killed
"""


def test_a_writer_seen_alive_is_recovered_once_it_is_killed(repo: Path) -> None:
    """The journal check of every run remembers an entry's writer by name: when that writer
    dies later (SIGKILL, no cleanup), the next run of this same process still records it."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_A_RUN, str(repo)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        held = read_line(holder, 30)
        record(repo)  # sees the held run's entry, its writer alive: nothing to recover
        ledger = Ledger.open(repo)
        assert ledger.get(held)["status"] == "running"
        holder.kill()
        holder.wait(10)
        record(repo)  # the same journal listing now finds its writer dead
        assert ledger.index.get(held)["status"] == "interrupted"
        assert not ledger.journal.meta_path(held).exists()
    finally:
        holder.kill()
        holder.wait(10)


def test_a_secret_set_between_two_runs_of_one_process_is_redacted(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment's secrets are scanned again only when it changed: a token exported
    after the first run, or the redactor cleared, still never reaches the ledger."""
    record(repo)
    secret = "s3cr3t-value-of-the-deploy-token"
    monkeypatch.setenv("DEPLOY_TOKEN", secret)
    with tracked_run("test", "test:a", project_root=repo) as run:
        run.output(f"token is {secret}")
    redact.redactor.clear()
    with tracked_run("test", "test:a", project_root=repo) as again:
        again.output(f"token is {secret}")
    ledger = Ledger.open(repo)
    for run_id in (run.run_id, again.run_id):
        lines = [e["data"].get("line") for e in ledger.events(run_id)]
        assert "token is ***" in lines, lines
    assert secret not in git(repo, "log", "-p", "scp-ledger")


RECORD_THEN_WAIT = """
import sys
from controlplane import tracked_run
with tracked_run("test", "test:a", project_root=sys.argv[1]):
    pass
print("recorded", flush=True)
if sys.argv[2] == "wait":
    sys.stdin.readline()
"""


def test_a_finished_entry_file_becomes_the_next_runs_entry(repo: Path) -> None:
    """No inode is freed per run (on ext4 without a journal that slows every file creation
    nearby): a finished entry's file is kept as this process's spare and reused."""
    record(repo)
    journal = repo / ".git" / "scp" / "journal"
    spare = journal / f".spare.{os.getpid()}.tmp"
    inode = spare.stat().st_ino
    with tracked_run("test", "test:a", project_root=repo) as run:
        assert (journal / f"{run.run_id}.json").stat().st_ino == inode
        assert not spare.exists()
    assert spare.stat().st_ino == inode
    assert Ledger.open(repo).journal.entries() == []


def test_a_process_leaves_no_spare_and_a_killed_ones_is_swept(repo: Path) -> None:
    journal = repo / ".git" / "scp" / "journal"
    done = subprocess.run([sys.executable, "-c", RECORD_THEN_WAIT, str(repo), "exit"],
                          capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "recorded"
    assert sorted(p.name for p in journal.iterdir()) == []  # removed at exit
    waiting = subprocess.Popen([sys.executable, "-c", RECORD_THEN_WAIT, str(repo), "wait"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert read_line(waiting, 60) == "recorded"
        assert sorted(p.name for p in journal.iterdir()) == [f".spare.{waiting.pid}.tmp"]
    finally:
        waiting.kill()
        waiting.wait(10)
    Ledger.open(repo)  # its writer is dead: swept
    assert sorted(p.name for p in journal.iterdir()) == []


def test_a_rebuild_writes_the_view_aside_and_swaps_it_in(repo: Path) -> None:
    """Issue 18 item 9: the view is rebuilt in a fresh directory and swapped in (creating
    files right after deleting as many was 5x slower); what the old view held that the
    ledger does not is gone; the old view (and one a dead deletion left) is deleted by a
    detached rm -rf the rebuild does not wait for."""
    ids = [record(repo) for _ in range(4)]
    view = repo / ".scp-ledger"
    stray = view / "ledger" / "runs" / "stray.json"
    stray.write_text("not from the ledger\n")
    before = {p.relative_to(view): p.read_bytes() for p in view.rglob("*") if p.is_file()}
    (repo / ".git" / "scp" / "view-old-1-1").mkdir()  # left by a deletion that died
    ledger = Ledger.open(repo)
    assert ledger.rebuild_index() == 4
    after = {p.relative_to(view): p.read_bytes() for p in view.rglob("*") if p.is_file()}
    assert after == {k: v for k, v in before.items() if k != stray.relative_to(view)}
    assert sorted(r["run_id"] for r in ledger.recent(limit=10)) == sorted(ids)
    assert ledger.view.head() == git(repo, "rev-parse", "scp-ledger").strip()
    assert (view.stat().st_mode & 0o777) == 0o700

    def left_under_scp() -> list[str]:
        return [p.name for p in (repo / ".git" / "scp").iterdir()
                if p.name.startswith("view-") and p.name != "view-rebuild.lock"]

    wait_until(lambda: not left_under_scp(), 30, "the old view deleted (a detached rm -rf)")


def test_a_project_path_through_a_symlink_is_resolved_again_once_retargeted(
        tmp_path: Path) -> None:
    """A record resolves its project's path twice; the answer is remembered only while the
    path still leads to the same directory."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    link = tmp_path / "project"
    link.symlink_to(first)
    assert real_path(link) == real_path(str(link)) == os.path.realpath(first)
    link.unlink()
    link.symlink_to(second)
    assert real_path(link) == os.path.realpath(second)
    second.rmdir()
    assert real_path(link) == os.path.realpath(link)  # dangling: realpath's own answer
    (second / "sub").mkdir(parents=True)  # made again: another inode, resolved again
    assert real_path(link / "sub") == os.path.realpath(second / "sub")
