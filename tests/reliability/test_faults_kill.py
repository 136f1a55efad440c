"""kill -9 of the whole server (gunicorn master and worker) while many runs are in flight."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import git, scaled
from tests.reliability.fault_support import cli, fsck, journal_entries, run_tags, wait_until
from tests.test_serve import BEARER, Server, gone, request, server_env

BLOCKING_PYTEST = """#!/bin/sh
sleep 600 &
echo $! > "{piddir}/.$$" && mv "{piddir}/.$$" "{piddir}/$$"
echo waiting
wait
"""


@pytest.fixture
def blocking_tool(repo: Path, tmp_path: Path) -> dict[str, object]:
    """A `pytest` on PATH that blocks until killed, noting ``<leader pid>`` -> ``<child pid>``."""
    bin_dir, piddir = tmp_path / "bin", tmp_path / "pids"
    bin_dir.mkdir()
    piddir.mkdir()
    fake = bin_dir / "pytest"
    fake.write_text(BLOCKING_PYTEST.format(piddir=piddir))
    fake.chmod(0o755)
    return {"piddir": piddir, "env": server_env(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")}


def running_with_tools(repo: Path, count: int) -> list[dict]:
    """The journal entries once *count* runs are running with their tool attached, else []."""
    entries = [e for e in journal_entries(repo)
               if e["run"].get("status") == "running" and e.get("groups")]
    return entries if len(entries) == count else []


@pytest.mark.slow
def test_sigkill_of_the_server_leaves_every_run_interrupted(repo: Path, tmp_path: Path,
                                                            blocking_tool) -> None:
    count = scaled(20, 60)
    (repo / "tests").mkdir()
    for n in range(count):
        (repo / "tests" / f"test_{n}.py").write_text("def test_x():\n    pass\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "tests")
    env = {**blocking_tool["env"], "CONTROLPLANE_EXECUTOR_LIMIT": str(count)}
    piddir: Path = blocking_tool["piddir"]
    servers: list[Server] = []
    try:
        server = Server(repo, tmp_path, env=env)
        servers.append(server)
        run_ids = []
        for n in range(count):  # distinct paths: distinct lock keys, so all may run at once
            answer = request(server, "POST", "/testing/run", {"path": f"tests/test_{n}.py"},
                             headers={**BEARER, "Prefer": "respond-async"})
            assert answer.status == 202, answer.body
            run_ids.append(answer.json()["run_id"])
        entries = wait_until(lambda: running_with_tools(repo, count), 120,
                             f"{count} runs running with their tool")
        wait_until(lambda: len(list(piddir.glob("[0-9]*"))) == count, 60, "every tool started")
        seen = request(server, "GET", f"/api/runs/recent?status=running&limit={count + 10}",
                       headers=BEARER).json()["runs"]
        assert sorted(r["run_id"] for r in seen) == sorted(run_ids)
        groups = {int(pgid) for e in entries for pgid in e["groups"]}
        children = {int(p.read_text()) for p in piddir.glob("[0-9]*")}
        assert len(groups) == count and {int(p.name) for p in piddir.glob("[0-9]*")} == groups

        worker = psutil.Process(server.proc.pid).children()[0].pid
        os.killpg(server.proc.pid, signal.SIGKILL)  # master and worker; tools have own sessions
        server.proc.wait(timeout=30)
        assert gone(worker)
        alive = [pid for pid in groups | children if not gone(pid, timeout=0)]
        assert len(alive) == 2 * count, "the tools should outlive the killed server"

        started = time.monotonic()
        restarted = Server(repo, tmp_path, env=env)
        servers.append(restarted)

        def all_interrupted() -> list[dict]:
            runs = [request(restarted, "GET", f"/api/runs/{run_id}", headers=BEARER).json()["run"]
                    for run_id in run_ids]
            return runs if all(r["status"] == "interrupted" for r in runs) else []

        runs = wait_until(all_interrupted, 120, "every run recorded interrupted")
        recovered_in = time.monotonic() - started
        assert {r["error"]["code"] for r in runs} == {"interrupted"}
        killed = [g for r in runs for g in r["result"]["process_groups"]]
        assert sorted(g["pgid"] for g in killed) == sorted(groups)
        assert {g["state"] for g in killed} == {"killed"}
        assert all(gone(pid) for pid in groups | children), "a tool outlived the recovery"
        assert journal_entries(repo) == []
        assert run_tags(repo) >= set(run_ids)
        assert restarted.stop() == 0
    finally:
        for each in servers:
            each.kill()
        for pidfile in piddir.glob("[0-9]*"):  # never leave a tool behind when the test failed
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pidfile.name), signal.SIGKILL)
    checked = fsck(repo)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    doctor = cli(repo, "ledger", "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "interrupted runs recorded: 0" in doctor.stdout
    assert f"runs in the ledger: {count} " in doctor.stdout
    print(f"FIGURE kill9: {count}/{count} interrupted, 0 lost, {len(killed)} process groups "
          f"killed, restart-to-recovered {recovered_in:.2f} s")
