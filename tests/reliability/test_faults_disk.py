"""Disk full while a run is recorded: a clear error, an untouched ledger, and recovery after."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.core.ledger import Ledger
from tests.conftest import git, make_repo
from tests.reliability.fault_support import (
    cli,
    fsck,
    journal_entries,
    ledger_state,
    listed_runs,
)
from tests.reliability.test_readonly_disk import SCRIPT, one_error_line, temp_files
from tests.test_serve import BEARER, Server, request, server_env

SIZE = "8m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of SIZE mounted for this test (we need root); unmounted at teardown."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs",
                           str(mount_point)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def full_repo(small_disk: Path) -> Path:
    repo = make_repo(small_disk / "project")
    first = cli(repo, "exec", "test:disk", "--summary", "before", "--", "true")
    assert first.returncode == 0, first.stderr
    Ledger.open(repo).index.close()  # its queued run in the index, as any reader brings it
    Ledger.forget_instances()
    return repo


def filler_command(disk: Path) -> str:
    """A shell command that fills *disk* to the last block (cat stops at ENOSPC)."""
    return f"cat /dev/zero > {disk}/filler 2>/dev/null; exit 0"


def test_the_cli_fails_clearly_and_the_ledger_stays_whole(full_repo: Path,
                                                         small_disk: Path) -> None:
    repo = full_repo
    before = ledger_state(repo)
    done = cli(repo, "exec", "test:disk", "--summary", "fills the disk", "--", "sh", "-c",
               filler_command(small_disk))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    error = done.stderr.splitlines()[-1]
    assert error.startswith("controlplane: error: run ") and "not recorded" in error
    assert "No space left on device" in error
    assert ledger_state(repo) == before  # tip, tags, view head, index rows
    checked = fsck(repo)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    (small_disk / "filler").unlink()
    after = cli(repo, "exec", "test:disk", "--summary", "after", "--", "true")
    assert after.returncode == 0, after.stderr
    runs = {r["summary"]: r for r in listed_runs(repo)}
    assert runs["after"]["status"] == "ok" and runs["before"]["status"] == "ok"
    assert runs["fills the disk"]["status"] in ("interrupted", "ok")  # recovered, not lost
    assert len(ledger_state(repo)["tags"]) == 3
    assert fsck(repo).returncode == 0
    print(f"FIGURE disk-full cli: exit 2, '{error[:90]}...', ledger unchanged, fsck clean, "
          f"record after freeing: ok")


def test_an_action_on_a_full_disk_answers_clearly(full_repo: Path, small_disk: Path,
                                                  tmp_path: Path) -> None:
    repo = full_repo
    (repo / "tests").mkdir()
    (repo / "tests" / "test_x.py").write_text("def test_x():\n    pass\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "tests")
    bin_dir, fill = tmp_path / "bin", tmp_path / "fill-the-disk"
    bin_dir.mkdir()
    fake = bin_dir / "pytest"  # fills the disk while *fill* exists, then "passes"
    fake.write_text(f"#!/bin/sh\n[ -e {fill} ] && {{ {filler_command(small_disk)}; }}\n"
                    "echo '1 passed'\n")
    fake.chmod(0o755)
    fill.touch()
    before = ledger_state(repo)
    server = Server(repo, tmp_path, env=server_env(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"))
    try:
        answer = request(server, "POST", "/testing/run", {"path": "tests"}, headers=BEARER)
        assert answer.status < 500, answer.body
        failed = answer.json()
        assert "No space left on device" in json.dumps(failed), failed
        shown = request(server, "GET", f"/api/runs/{failed['run_id']}", headers=BEARER)
        assert shown.status == 200, shown.body
        assert shown.json()["run"]["status"] not in ("running", "queued")  # ended, not stuck
        for path in ("/api/runs/recent", f"/runs/{failed['run_id']}", "/"):
            assert request(server, "GET", path, headers=BEARER).status < 500, path
        assert ledger_state(repo) == before

        fill.unlink()
        (small_disk / "filler").unlink()
        again = request(server, "POST", "/testing/run", {"path": "tests"}, headers=BEARER)
        assert again.status == 200 and again.json()["status"] == "ok", again.body
        late = request(server, "GET", f"/api/runs/{failed['run_id']}", headers=BEARER).json()
        assert late["run"]["status"] == shown.json()["run"]["status"]  # now from the ledger
        assert journal_entries(repo) == []  # recorded at the next run's start
        assert failed["run_id"] in ledger_state(repo)["index"]
        assert server.stop() == 0
    finally:
        server.kill()
    assert "Traceback" not in server.stderr(), server.stderr()
    assert fsck(repo).returncode == 0
    print(f"FIGURE disk-full web: answer {answer.status} {failed['status']} "
          f"({failed.get('error', {}).get('message', '')[:60]}), GET run 200, ledger unchanged; "
          "recorded on the next run after freeing space")


def fill(disk: Path) -> None:
    """Fill *disk* to its last block, as another program would."""
    subprocess.run(["sh", "-c", filler_command(disk)], check=True)


def test_reads_work_and_writes_fail_in_one_line_on_a_disk_already_full(
        full_repo: Path, small_disk: Path) -> None:
    repo = full_repo
    before = ledger_state(repo)
    fill(small_disk)
    listed = cli(repo, "runs", "list", "--json")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    assert [r["summary"] for r in json.loads(listed.stdout)] == ["before"]
    errors = {}
    for command in (("exec", "test:disk", "--", "echo", "not run"), ("chat", "post", "hi"),
                    ("demo", "--runs", "1")):
        errors[command[0]] = error = one_error_line(cli(repo, *command))
        assert "No space left on device" in error and "free disk space" in error, error
    script = subprocess.run([sys.executable, "-c", SCRIPT], cwd=repo, capture_output=True,
                            text=True, timeout=60, env=server_env())
    assert script.returncode != 0
    last = script.stderr.strip().splitlines()[-1]
    assert "JournalWriteError: run " in last and "No space left on device" in last, last
    assert temp_files(repo) == []  # the journal's temporary file was removed
    assert journal_entries(repo) == []

    (small_disk / "filler").unlink()
    assert ledger_state(repo) == before
    assert fsck(repo).returncode == 0
    print(f"FIGURE disk already full: runs list exit 0; exec: {errors['exec'][:100]}; "
          f"script: {last[:100]}")


def test_chat_on_a_full_disk_answers_507_and_leaves_nothing(full_repo: Path, small_disk: Path,
                                                           tmp_path: Path) -> None:
    repo = full_repo
    server = Server(repo, tmp_path)
    try:
        before = ledger_state(repo)
        fill(small_disk)
        posted = request(server, "POST", "/api/chat", {"text": "hello"}, headers=BEARER)
        assert posted.status == 507, (posted.status, posted.body)
        refusal = posted.json()
        assert refusal["error"] == "insufficient_storage", refusal
        assert "No space left on device" in refusal["message"], refusal
        assert "free disk space" in refusal["message"] and "\n" not in refusal["message"]
        for path in ("/api/chat", "/api/runs/recent", "/"):
            assert request(server, "GET", path, headers=BEARER).status == 200, path
        assert temp_files(repo) == []
        (small_disk / "filler").unlink()
        assert ledger_state(repo) == before
        again = request(server, "POST", "/api/chat", {"text": "hello"}, headers=BEARER)
        assert again.status == 201, again.body
        assert server.stop() == 0
    finally:
        server.kill()
    assert "Traceback" not in server.stderr(), server.stderr()
    assert fsck(repo).returncode == 0
    print(f"FIGURE disk-full chat: POST /api/chat {posted.status} {refusal['error']}: "
          f"{refusal['message'][:80]}; 201 after freeing space")
