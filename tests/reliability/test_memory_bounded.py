"""Memory stays bounded: a process recording thousands of runs, a server after many async runs.

DECISIONS §6: ≤ 20 MB RSS growth from run 1,000 to run 4,000 in one process;
≤ 10 MB for the server from async run 100 to 500. CI runs a short form with
looser bounds; ``CONTROLPLANE_LONG_TESTS=1`` runs the 4,000-run form.
bench/memory_bench.py prints the full figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench.memory_bench import RECORDER
from tests.conftest import LONG, git, scaled
from tests.test_serve import BEARER, Server, request, server_env

LOUD_PYTEST = """#!/bin/sh
i=0
while [ $i -lt {lines} ]; do echo "tests/test_x.py::test_$i PASSED"; i=$((i+1)); done
"""


@pytest.mark.slow
def test_one_process_recording_thousands_of_runs_stays_bounded(repo: Path) -> None:
    first, last, bound = (1_000, 4_000, 20.0) if LONG else (200, 800, 12.0)
    done = subprocess.run([sys.executable, "-c", RECORDER, str(repo), str(last), str(first)],
                          capture_output=True, text=True, timeout=scaled(300, 1800), check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    points = (json.loads(line) for line in done.stdout.splitlines())
    rss = {point["run"]: point["rss_mb"] for point in points}
    growth = rss[last] - rss[first]
    assert growth <= bound, f"RSS grew {growth:.1f} MB from run {first} to {last}: {rss}"


def server_rss(server: Server) -> float:
    parent = psutil.Process(server.proc.pid)
    return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)]) / 2**20


def run_async_suite(server: Server) -> dict:
    """Start the suite as the dashboard does (``Prefer: respond-async``) and await its end."""
    deadline = time.monotonic() + 120
    while True:
        answer = request(server, "POST", "/testing/run", {},
                         headers={**BEARER, "Prefer": "respond-async"})
        if answer.status != 409:  # 409: the last run is recorded, its lock not yet released
            break
        assert time.monotonic() < deadline, answer.body
    assert answer.status == 202, answer.body
    run_id = answer.json()["run_id"]
    while True:
        run = request(server, "GET", f"/api/runs/{run_id}", headers=BEARER).json()["run"]
        if run["status"] not in ("queued", "running"):
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']}"
        time.sleep(0.05)  # polling a live server, as the dashboard's fallback does


@pytest.mark.slow
def test_a_server_does_not_keep_finished_async_runs(repo: Path, tmp_path: Path) -> None:
    """Each run prints 20,000 lines: a server that kept them would grow ~8 MB a run."""
    (repo / "tests").mkdir()
    (repo / "tests" / "test_x.py").write_text("def test_x():\n    pass\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "tests")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pytest"
    fake.write_text(LOUD_PYTEST.format(lines=20_000))
    fake.chmod(0o755)
    env = server_env(PATH=f"{bin_dir}:/usr/bin:/bin")
    server = Server(repo, tmp_path, env=env)
    first, last = scaled(2, 20), scaled(6, 60)
    try:
        for n in range(1, last + 1):
            run = run_async_suite(server)
            assert run["events"] >= 2_000  # the whole suite ran (the ledger keeps head and tail)
            if n == first:
                before = server_rss(server)
        growth = server_rss(server) - before
    finally:
        server.kill()
    assert growth <= 15, f"server RSS grew {growth:.1f} MB from async run {first} to {last}"


LONG_FOREIGN_RUN = """
import sys
from controlplane import tracked_run
with tracked_run("test", "test:long", project_root=sys.argv[1]) as run:
    for n in range(int(sys.argv[2])):
        run.output(f"tests/test_x.py::test_{n} PASSED")
    print("spooled", flush=True)
    sys.stdin.readline()
"""


def test_the_feed_reads_a_foreign_spool_once(repo: Path) -> None:
    """A server following a script's long run reads each spooled line once, not every poll."""
    from controlplane.core.events import EventBus
    from controlplane.core.ledger import Ledger
    from controlplane.core.ledger.feed import LedgerFeed

    lines = 50_000
    script = subprocess.Popen([sys.executable, "-c", LONG_FOREIGN_RUN, str(repo), str(lines)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert script.stdout is not None and script.stdout.readline() == "spooled\n"
        bus = EventBus(replay_size=lines + 10)
        feed = LedgerFeed(Ledger.open(repo), bus)
        empty = bus.last_id
        started, published = time.perf_counter(), None
        while bus.last_id != published:  # catch up (a few MB a poll)
            published = bus.last_id
            feed.poll_once()
        first = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(5):
            feed.poll_once()
        later = (time.perf_counter() - started) / 5
        assert bus.last_id == published  # nothing new: nothing published again
        outputs = [e for e in bus.since(empty) or () if e["type"] == "run:output"]
        assert len(outputs) == lines and outputs[-1]["data"]["seq"] == lines + 1
    finally:
        script.communicate("done\n", timeout=60)
    assert later < first / 10, f"a poll with nothing new took {later:.3f} s (first {first:.3f} s)"
