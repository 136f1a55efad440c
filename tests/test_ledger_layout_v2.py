"""Ledger layout 2 (DECISIONS §1): new entries in 256 buckets a day, ``ledger/FORMAT``;
every reader accepts a ledger written in the first layout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane.core.ledger import Ledger
from controlplane.core.ledger.store import NewerLedgerFormat
from controlplane.core.runs import ledger_dir, ledger_dirs
from tests.conftest import git


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controlplane", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def ledger_files(repo: Path) -> list[str]:
    return git(repo, "ls-tree", "-r", "--name-only", "scp-ledger").split()


def to_first_layout(repo: Path) -> None:
    """Rewrite the ledger branch as an older controlplane wrote it: no buckets, no FORMAT."""
    work = repo.parent / "old-layout"
    git(repo, "worktree", "add", "-q", str(work), "scp-ledger")
    for bucket in sorted(work.glob("ledger/*/*/*/*/??")):
        for entry in bucket.iterdir():
            git(work, "mv", str(entry.relative_to(work)), str(bucket.parent.relative_to(work)))
    git(work, "rm", "-q", "ledger/FORMAT")
    git(work, "commit", "-qm", "a ledger of the first layout")
    git(repo, "worktree", "remove", "--force", str(work))


def forget_caches(repo: Path) -> None:
    """Drop view, index and raw logs: everything is read from the ledger branch again."""
    Ledger.forget_instances()
    shutil.rmtree(repo / ".scp-ledger", ignore_errors=True)
    shutil.rmtree(repo / ".git" / "scp" / "logs", ignore_errors=True)
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        (repo / ".git" / "scp" / name).unlink(missing_ok=True)


def test_a_new_run_is_written_in_its_bucket_with_the_format(repo: Path) -> None:
    done = cli("exec", "test:a", "--", sys.executable, "-c", "print('hello')", cwd=repo)
    assert done.returncode == 0, done.stderr
    run_id = Ledger.open(repo).recent()[0]["run_id"]
    bucket = run_id.split("-")[1][:2]
    day = f"ledger/runs/{run_id[:4]}/{run_id[4:6]}/{run_id[6:8]}"
    assert ledger_dir(run_id) == f"{day}/{bucket}/{run_id}"
    assert sorted(ledger_files(repo)) == ["ledger/FORMAT", f"{day}/{bucket}/{run_id}/events.jsonl",
                                          f"{day}/{bucket}/{run_id}/run.json"]
    assert git(repo, "show", "scp-ledger:ledger/FORMAT") == "2\n"
    assert (repo / ".scp-ledger" / day / bucket / run_id / "run.json").is_file()


def test_a_first_layout_ledger_is_read_and_grows_in_the_new_one(repo: Path) -> None:
    for name in ("one", "two"):
        done = cli("exec", f"test:{name}", "--", sys.executable, "-c", f"print('{name} out')",
                   cwd=repo)
        assert done.returncode == 0, done.stderr
    old_ids = sorted(r["run_id"] for r in Ledger.open(repo).recent())
    to_first_layout(repo)
    assert all(path.count("/") == 6 for path in ledger_files(repo))  # YYYY/MM/DD/<id>/file
    forget_caches(repo)

    ledger = Ledger.open(repo)
    assert sorted(r["run_id"] for r in ledger.recent()) == old_ids
    assert any("one out" in json.dumps(e)
               for e in ledger.events(old_ids[0]))
    listed = cli("runs", "show", old_ids[1], cwd=repo)
    assert listed.returncode == 0 and old_ids[1] in listed.stdout, listed.stderr
    assert (repo / ".scp-ledger" / ledger_dirs("runs", old_ids[0])[1] / "run.json").is_file()

    done = cli("exec", "test:three", "--", "true", cwd=repo)
    assert done.returncode == 0, done.stderr
    Ledger.forget_instances()
    new_id = max(r["run_id"] for r in Ledger.open(repo).recent())
    files = ledger_files(repo)
    assert f"{ledger_dir(new_id)}/run.json" in files
    assert all(f"{ledger_dirs('runs', i)[1]}/run.json" in files for i in old_ids)
    assert git(repo, "show", "scp-ledger:ledger/FORMAT") == "2\n"
    doctor = cli("ledger", "doctor", cwd=repo)
    assert doctor.returncode == 0 and "runs in the ledger: 3" in doctor.stdout, doctor.stdout


def test_a_newer_format_refuses_writes(repo: Path) -> None:
    assert cli("exec", "test:a", "--", "true", cwd=repo).returncode == 0
    work = repo.parent / "newer"
    git(repo, "worktree", "add", "-q", str(work), "scp-ledger")
    (work / "ledger" / "FORMAT").write_text("3\n")
    git(work, "commit", "-qam", "a newer controlplane wrote here")
    git(repo, "worktree", "remove", "--force", str(work))
    tip = git(repo, "rev-parse", "scp-ledger")
    done = cli("exec", "test:b", "--", "true", cwd=repo)
    assert "upgrade controlplane" in done.stderr, done.stderr
    assert git(repo, "rev-parse", "scp-ledger") == tip
    Ledger.forget_instances()
    with pytest.raises(NewerLedgerFormat, match=r"version 3.*upgrade controlplane"):
        Ledger.open(repo).record_message({"message_id": "20260101T000000000Z-abcdef01",
                                          "text": "hi"})
