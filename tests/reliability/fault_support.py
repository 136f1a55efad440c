"""Helpers for the fault-injection tests: journal reads, git checks, the CLI, waiting."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.conftest import git
from tests.test_serve import server_env

T = TypeVar("T")


def wait_until(probe: Callable[[], T], timeout: float, what: str, every: float = 0.05) -> T:
    """Poll *probe* until it returns something truthy (not a sleep-as-sync: a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(every)


def journal_entries(repo: Path) -> list[dict[str, Any]]:
    """The readable in-flight entries of the journal under ``.git/scp/journal``."""
    found = []
    for path in sorted((repo / ".git" / "scp" / "journal").glob("*.json")):
        try:
            found.append(json.loads(path.read_bytes()))
        except (OSError, ValueError):
            continue  # being replaced right now
    return found


def fsck(repo: Path) -> subprocess.CompletedProcess:
    """``git fsck --full --strict`` of *repo* (no dangling noise), once no roll-up or gc
    of any process deletes packs under it."""
    from controlplane.core.ledger import Ledger

    Ledger.open(repo, recover=False, caches=False).wait_background()
    return subprocess.run(["git", "fsck", "--full", "--strict", "--no-dangling"], cwd=repo,
                          capture_output=True, text=True, check=False, timeout=120)


def cli(repo: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m controlplane <args>`` in *repo*, as a user types it."""
    return subprocess.run([sys.executable, "-m", "controlplane", *args], cwd=repo,
                          capture_output=True, text=True, timeout=timeout,
                          env=env or server_env())


def listed_runs(repo: Path) -> list[dict[str, Any]]:
    """``controlplane runs list --json``: what a user sees, newest first."""
    done = cli(repo, "runs", "list", "--json", "--limit", "500")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def ledger_tip(repo: Path) -> str:
    return git(repo, "rev-parse", "--verify", "-q", "refs/heads/scp-ledger", check=False).strip()


def run_tags(repo: Path) -> set[str]:
    """Run ids that have a tag under ``refs/scp/run/``."""
    names = git(repo, "for-each-ref", "--format=%(refname)", "refs/scp/run/").split()
    return {name.rsplit("/", 1)[1] for name in names}


def ledger_state(repo: Path) -> dict[str, Any]:
    """What must not move when a record fails: branch tip, tags, view head and index rows."""
    import sqlite3

    view_head = repo / ".scp-ledger" / ".head"
    index = repo / ".git" / "scp" / "index.sqlite"
    rows: list[str] = []
    if index.exists():
        with sqlite3.connect(index) as db:
            rows = [r[0] for r in db.execute("SELECT run_id FROM runs ORDER BY run_id")]
    return {"tip": ledger_tip(repo), "tags": run_tags(repo),
            "view": view_head.read_text().strip() if view_head.exists() else None,
            "index": rows}
