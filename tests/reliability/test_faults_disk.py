"""Disk full while a run is recorded: a clear error, an untouched ledger, and recovery after."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import git, make_repo
from tests.reliability.fault_support import (
    cli,
    fsck,
    journal_entries,
    ledger_state,
    listed_runs,
)
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
