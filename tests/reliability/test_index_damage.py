"""A damaged index.sqlite is a cache: moved aside, rebuilt from the ledger, said once."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from controlplane.core.ledger import Ledger
from controlplane.core.run_tracker import tracked_run
from tests.reliability.fault_support import cli

REBUILT = "was damaged"


def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(64 * 1024))


def truncated(path: Path) -> None:
    os.truncate(path, 1000)  # cut inside the first page, as a crash of a copy leaves it


def text(path: Path) -> None:
    path.write_text("not a database\n")


def scribbled(path: Path) -> None:
    with open(path, "r+b") as fh:  # the header survives, the pages do not
        fh.seek(4096)
        fh.write(os.urandom(path.stat().st_size - 4096))


DAMAGES = [garbage, truncated, text, scribbled]


def recorded_repo(repo: Path, runs: int = 3) -> list[str]:
    """*runs* recorded runs, the index checkpointed (all in the main file, as after an exit)."""
    ids = []
    for n in range(runs):
        with tracked_run("test", "test:index", summary=f"run {n}", project_root=repo) as run:
            pass
        ids.append(run.run_id)
    Ledger.open(repo).index.head()  # their runs applied to the index, as a list's ledger does
    Ledger.forget_instances()
    with sqlite3.connect(repo / ".git" / "scp" / "index.sqlite") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return ids


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.__name__)
def test_cli_commands_work_on_a_damaged_index_and_say_so_once(repo: Path, damage) -> None:
    ids = recorded_repo(repo)
    index = repo / ".git" / "scp" / "index.sqlite"
    damage(index)

    listed = cli(repo, "runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    assert listed.stderr.count(REBUILT) == 1, listed.stderr
    assert listed.stderr.strip().count("\n") == 0  # one line
    assert sorted(r["run_id"] for r in json.loads(listed.stdout)) == sorted(ids)
    assert stat.S_IMODE(index.stat().st_mode) == 0o600
    again = cli(repo, "runs", "list", "--json")
    assert again.returncode == 0 and REBUILT not in again.stderr  # once: it is healthy now


@pytest.mark.parametrize("damage", [garbage, truncated], ids=lambda d: d.__name__)
def test_exec_and_doctor_work_on_a_damaged_index(repo: Path, damage) -> None:
    ids = recorded_repo(repo)
    index = repo / ".git" / "scp" / "index.sqlite"
    damage(index)
    done = cli(repo, "exec", "test:index", "--summary", "after", "--", "true")
    assert done.returncode == 0, done.stderr
    assert REBUILT not in done.stderr  # an exec leaves its run queued: it reads no index
    listed = cli(repo, "runs", "list", "--json")  # the next reader meets the damage
    assert listed.returncode == 0 and listed.stderr.count(REBUILT) == 1, listed.stderr
    assert len(json.loads(listed.stdout)) == len(ids) + 1
    with sqlite3.connect(index) as db:  # what the list wrote, in the main file: damaged below
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # (in a WAL, SQLite reads it from there)
    damage(index)
    doctor = cli(repo, "ledger", "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert doctor.stderr.count(REBUILT) == 1, doctor.stderr
    assert f"runs in the ledger: {len(ids) + 1}" in doctor.stdout


def test_tracked_run_and_reads_in_a_live_process_survive_the_damage(repo: Path) -> None:
    with tracked_run("test", "test:index", project_root=repo) as first:
        pass
    ledger = Ledger.open(repo)
    with sqlite3.connect(ledger.index.path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    garbage(ledger.index.path)  # under a process that has it open
    with tracked_run("test", "test:index", project_root=repo) as second:
        pass
    assert {r["run_id"] for r in ledger.recent()} == {first.run_id, second.run_id}
    assert ledger.index.search(first.run_id)[0]["run_id"] == first.run_id


def test_the_server_starts_on_a_damaged_index(repo: Path, tmp_path: Path) -> None:
    from tests.test_serve import BEARER, Server, request

    ids = recorded_repo(repo)
    garbage(repo / ".git" / "scp" / "index.sqlite")
    server = Server(repo, tmp_path)
    try:
        answer = request(server, "GET", "/api/runs/recent", headers=BEARER)
        assert answer.status == 200, answer.body
        assert sorted(r["run_id"] for r in answer.json()["runs"]) == sorted(ids)
    finally:
        server.stop()
    assert server.stderr().count(REBUILT) == 1, server.stderr()
