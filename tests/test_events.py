"""The bus: envelopes, replay, resync, slow consumers; the cross-process feed."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from controlplane.core.events import EVENT_TYPES, EventBus
from controlplane.core.ledger import Ledger
from controlplane.core.ledger.feed import LedgerFeed

RUN = {"run_id": "r1", "type": "test", "subtype": "test:x"}

def test_envelope_shape_and_order() -> None:
    bus = EventBus()
    first = bus.publish("run:started", {**RUN, "status": "running"}, run_id="r1")
    second = bus.publish("run:completed", {**RUN, "status": "ok"}, run_id="r1")
    assert set(first) == {"id", "type", "run_id", "at", "data"}
    assert first["id"] == f"{bus.epoch}-1" and second["id"] == f"{bus.epoch}-2"
    assert first["at"].endswith("Z")


def test_unregistered_type_or_missing_field_is_refused() -> None:
    bus = EventBus()
    with pytest.raises(ValueError, match="unregistered event type 'run:exploded'"):
        bus.publish("run:exploded", {})
    with pytest.raises(ValueError, match="lacks status"):
        bus.publish("run:started", {"run_id": "r", "type": "test", "subtype": "test:x"})
    assert {"run:queued", "run:started", "run:output", "run:progress", "run:completed",
            "chat:message", "metrics:update", "executor:state", "ledger:synced",
            "resync"} <= set(EVENT_TYPES)


def test_resume_gets_what_was_missed_once_in_order() -> None:
    bus = EventBus()
    ids = [bus.publish("run:progress", {"done": n, "total": 9})["id"] for n in range(9)]
    with bus.subscribe(ids[3]) as sub:
        bus.publish("run:progress", {"done": 9, "total": 9})
        got = [sub.get(timeout=1)["data"]["done"] for _ in range(6)]
        assert sub.get(timeout=0) is None
    assert got == [4, 5, 6, 7, 8, 9]


def test_unknown_epoch_or_too_old_gets_resync() -> None:
    bus = EventBus(replay_size=3)
    for n in range(10):
        bus.publish("run:progress", {"done": n, "total": 10})
    for stale in ("feedface-1", f"{bus.epoch}-2", "garbage", f"{bus.epoch}-99"):
        with bus.subscribe(stale) as sub:
            assert sub.get(timeout=1)["type"] == "resync"
    assert [e["data"]["done"] for e in bus.since(f"{bus.epoch}-8")] == [8, 9]


def test_slow_consumer_is_dropped_and_told_to_resync_without_slowing_publish() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=5)
    fast = bus.subscribe(maxsize=100)
    for n in range(50):
        bus.publish("run:progress", {"done": n, "total": 50})
    assert [slow.get(timeout=0)["data"]["done"] for _ in range(5)] == [0, 1, 2, 3, 4]
    assert slow.get(timeout=0)["type"] == "resync"
    assert slow.get(timeout=0) is None
    assert len([fast.get(timeout=0) for _ in range(50)]) == 50
    assert bus.subscriber_count == 1
    fast.close()


def test_failing_receiver_does_not_stop_others() -> None:
    bus = EventBus()
    seen = []

    def broken(envelope: dict) -> None:
        raise RuntimeError("broken receiver")

    stop_broken = bus.connect(broken)
    stop_seen = bus.connect(seen.append)
    bus.publish("run:progress", {"done": 1, "total": 1})
    stop_broken()
    stop_seen()
    assert len(seen) == 1


def test_concurrent_publishers_keep_one_sequence() -> None:
    bus = EventBus(replay_size=100_000)
    sub = bus.subscribe(maxsize=100_000)

    def publish_many() -> None:
        for n in range(500):
            bus.publish("run:progress", {"done": n, "total": 500})

    threads = [threading.Thread(target=publish_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [int(sub.get(timeout=1)["id"].rsplit("-", 1)[1]) for _ in range(2000)]
    assert seqs == list(range(1, 2001))
    sub.close()


SCRIPT = """
import sys
from controlplane import tracked_run
with tracked_run("test", "test:script", summary="from a script", project_root=sys.argv[1]) as run:
    run.output("hello from the script")
    sys.stdin.readline()  # wait for the test to let the run finish
"""


def test_a_script_run_appears_on_this_process_bus(repo: Path) -> None:
    bus = EventBus()
    feed = LedgerFeed(Ledger.open(repo), bus)
    received: list[dict] = []
    got = threading.Condition()

    def receive(envelope: dict) -> None:
        with got:
            received.append(envelope)
            got.notify_all()

    def wait_for(kind: str) -> dict:
        with got:
            assert got.wait_for(lambda: any(e["type"] == kind for e in received), timeout=10)
            return next(e for e in received if e["type"] == kind)

    disconnect = bus.connect(receive)
    feed.start()
    script = subprocess.Popen([sys.executable, "-c", SCRIPT, str(repo)], stdin=subprocess.PIPE,
                              text=True)
    try:
        started = wait_for("run:started")
        assert started["data"]["summary"] == "from a script"
        assert wait_for("run:output")["data"]["line"] == "hello from the script"
        script.communicate("\n", timeout=30)
        completed = wait_for("run:completed")
    finally:
        feed.stop()
        disconnect()
        script.kill() if script.poll() is None else None
    assert completed["run_id"] == started["run_id"] and completed["data"]["status"] == "ok"
    assert [e["type"] for e in received].count("run:completed") == 1
