"""`controlplane action`: every declared action from a shell, with the API's rules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from controlplane.core.coordination import LocalCoordinator
from controlplane.core.integrations.backup import LOCK as BACKUP_LOCK
from controlplane.core.ledger import Ledger
from tests.conftest import git


def cli(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controlplane", *args], cwd=repo,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_list_and_help_come_from_the_declarations(repo: Path) -> None:
    listed = cli(repo, "action", "--list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 83
    assert any(line.startswith("/backup/wipe ") and "--confirm" in line for line in lines)
    helped = cli(repo, "action", "/vault/create", "--help")
    assert helped.returncode == 0 and "passphrase" in helped.stdout


def test_destructive_action_needs_confirm_and_records_nothing(repo: Path) -> None:
    refused = cli(repo, "action", "/backup/wipe")
    assert refused.returncode == 2
    assert "--confirm" in refused.stderr and "Traceback" not in refused.stderr
    assert Ledger.open(repo).recent(limit=5) == []
    done = cli(repo, "action", "/backup/wipe", "--confirm")
    assert done.returncode == 0, done.stderr
    runs = Ledger.open(repo).recent(limit=5)
    assert [r["action"] for r in runs] == ["/backup/wipe"]
    assert runs[0]["actor"]["kind"] == "cli"


def test_secret_comes_from_the_environment_and_never_reaches_the_ledger(repo: Path) -> None:
    secret = "correct horse battery staple 4711"
    done = cli(repo, "action", "/vault/create", "--secret-env", "passphrase=VAULT_PASS",
               env={"VAULT_PASS": secret})
    assert done.returncode == 0, done.stdout + done.stderr
    assert secret not in git(repo, "log", "-p", "scp-ledger")
    assert secret not in done.stdout + done.stderr


def test_invalid_parameter_is_named(repo: Path) -> None:
    refused = cli(repo, "action", "/testing/run", "--param", "path=../../etc")
    assert refused.returncode == 2 and "path" in refused.stderr


def test_a_lock_held_by_another_process_gives_the_same_409(repo: Path) -> None:
    ledger = Ledger.open(repo)
    server = LocalCoordinator(4, ledger.scp_dir / "locks")  # as a serving process holds it
    assert server.lock(BACKUP_LOCK, "20261205T000000Z-aaaaaaaaaaaa") is None
    try:
        refused = cli(repo, "action", "/backup/wipe", "--confirm")
        assert refused.returncode == 2
        assert "20261205T000000Z-aaaaaaaaaaaa" in refused.stderr
    finally:
        server.unlock(BACKUP_LOCK, "20261205T000000Z-aaaaaaaaaaaa")
    assert cli(repo, "action", "/backup/wipe", "--confirm").returncode == 0
