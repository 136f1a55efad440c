"""Load: live clients get every event once, in order, while processes record runs; none lost.

The scenario of ``bench/load_bench.py`` (the real server, SSE and WebSocket
clients, writer processes, `@run:` autocomplete), scaled down for CI; no timing
assertion. ``CONTROLPLANE_LONG_TESTS=1`` runs the issue's numbers: 200 SSE +
20 WebSocket clients, 4 processes x 250 runs, 10,000 searches over 10,000 runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.load_bench import LoadOutcome, Scenario, SSEStream, bench, check_delivery
from controlplane.core.events import EventBus
from controlplane.core.ledger import Ledger
from controlplane.core.ledger.feed import LedgerFeed
from controlplane.core.runs import Run, RunStatus
from tests.conftest import git, scaled


@pytest.mark.slow
@pytest.mark.timeout(scaled(300, 3600))
def test_every_client_gets_every_event_while_processes_record() -> None:
    scenario = Scenario(sse=scaled(20, 200), ws=scaled(4, 20), procs=scaled(2, 4),
                        per_proc=scaled(20, 250), searches=scaled(200, 10_000),
                        healthz=scaled(50, 2_000), conns=(2,))
    results = bench(scenario, prefill=scaled(200, 10_000))
    assert results["problems"] == []
    load = results["load"]
    assert load["runs_written"] == scenario.runs
    assert load["envelopes_per_client"] >= scenario.runs  # a completion for each run, at least
    assert load["envelopes_received"] == load["envelopes_per_client"] * (scenario.sse + scenario.ws)
    assert [level["searches"] for level in results["autocomplete"]] == [scenario.searches]


def envelope(seq: int, kind: str, run_id: str) -> bytes:
    return json.dumps({"id": f"e-{seq}", "type": kind, "run_id": run_id,
                       "at": "2026-01-01T00:00:00.000Z", "data": {}}).encode()


def client(frames: list[bytes]) -> SSEStream:
    stream = SSEStream(0, "e-0", 2, len(frames))
    stream.frames = [(1.8e9, frame) for frame in frames]
    return stream


def test_the_delivery_check_catches_loss_duplicates_and_disorder() -> None:
    good = [envelope(1, "run:started", "a"), envelope(2, "run:completed", "a"),
            envelope(3, "run:started", "b"), envelope(4, "run:completed", "b")]
    lost = [good[0], good[1], good[3]]
    duplicated = [good[0], good[1], good[1], good[2], good[3]]
    reordered = [good[1], good[0], good[2], good[3]]
    started_late = [envelope(1, "run:completed", "a"), envelope(2, "run:started", "a"),
                    good[2], good[3]]
    never_started = [envelope(1, "run:started", "a"), envelope(2, "run:completed", "a"),
                     envelope(3, "run:completed", "b")]

    def problems(*frame_lists: list[bytes]) -> list[str]:
        outcome = LoadOutcome([client(f) for f in frame_lists], ["a", "b"], "e-0", 1.0, 1.0)
        return check_delivery(outcome, 2)[0]

    assert problems(good, good) == []
    for bad in (lost, duplicated, reordered, started_late, never_started):
        assert problems(good, bad), bad
    assert problems(good[:2], good[:2])  # run b never completed anywhere


STALLED = """
import sys
from controlplane.core.ledger import Ledger
from controlplane.core.runs import Run, RunStatus
ledger = Ledger.open(sys.argv[1])
run = Run.new("test:stalled", summary="a writer descheduled after its commit")
ledger.journal.start(run.to_dict())
run.finish(RunStatus.OK)
ledger.record(run, [])
print(run.run_id, flush=True)
sys.stdin.readline()  # the test lets it remove its journal entry
ledger.journal.finish(run.run_id)
"""


def test_feed_never_announces_a_completed_run_as_started(repo: Path) -> None:
    """Under load a writer may stall between its commit and removing its journal entry."""
    bus = EventBus()
    feed = LedgerFeed(Ledger.open(repo), bus)
    received: list[dict] = []
    disconnect = bus.connect(received.append)
    writer = subprocess.Popen([sys.executable, "-c", STALLED, str(repo)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        run_id = writer.stdout.readline().strip()
        for _ in range(3):  # committed and still journaled, poll after poll
            feed.poll_once()
        writer.communicate("\n", timeout=30)
    finally:
        disconnect()
        writer.kill() if writer.poll() is None else None
    assert [(e["type"], e["run_id"]) for e in received] == [
        ("run:started", run_id), ("run:completed", run_id)]


QUICK = """
import sys
from controlplane import tracked_run
with tracked_run("test", "test:quick", project_root=sys.argv[1], summary="over at once") as run:
    run.output("done")
print(run.run_id, flush=True)
"""


def test_feed_announces_the_start_of_a_run_over_between_two_polls(repo: Path) -> None:
    bus = EventBus()
    feed = LedgerFeed(Ledger.open(repo), bus)
    received: list[dict] = []
    disconnect = bus.connect(received.append)
    try:
        done = subprocess.run([sys.executable, "-c", QUICK, str(repo)], capture_output=True,
                              text=True, timeout=60, check=True)
        feed.poll_once()
    finally:
        disconnect()
    run_id = done.stdout.strip()
    kinds = [(e["type"], e["run_id"]) for e in received]
    # its output (told whole since the run had ended) comes between its start and its end
    assert kinds[0] == ("run:started", run_id) and kinds[-1] == ("run:completed", run_id)
    assert {kind for kind, _ in kinds[1:-1]} <= {"run:output"}
    started, completed = received[0]["data"], received[-1]["data"]
    assert started["status"] == "running" and started["ended_at"] is None
    assert completed["status"] == "ok" and started["started_at"] == completed["started_at"]


def finished(summary: str) -> Run:
    run = Run.new("test:cache", summary=summary)
    run.finish(RunStatus.OK)
    return run


def cached(repo: Path, ledger: Ledger, run: Run) -> tuple[bool, bool]:
    """Whether the index and the `.scp-ledger/` view hold *run*."""
    in_view = any(run.run_id in str(p) for p in (repo / ".scp-ledger").rglob("run.json"))
    return ledger.index.get(run.run_id) is not None, in_view


def test_an_overtaken_writer_does_not_drop_newer_runs_from_the_caches(repo: Path) -> None:
    """A writer whose index update lost the race catches up to its own, older commit."""
    ledger = Ledger.open(repo)
    first, second = finished("first"), finished("second")
    ledger.record(first, [])
    after_first = ledger.store.head()
    ledger.record(second, [])
    ledger._catch_up_index(after_first)  # what the overtaken writer of `first` does
    ledger._catch_up_view(after_first)
    assert cached(repo, ledger, second) == (True, True)
    assert ledger.index.head() == str(ledger.store.head())
    git(repo, "update-ref", "refs/heads/scp-ledger", str(after_first))  # reset by hand
    ledger.catch_up()
    assert cached(repo, ledger, second) == (False, False)  # followed back, as before
