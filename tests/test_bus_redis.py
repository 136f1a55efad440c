"""The Redis bus: two processes' buses share one ordered sequence, replay and resume."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("redis")
if shutil.which("redis-server") is None:
    pytest.skip("redis-server is not installed (.ci/run installs it)", allow_module_level=True)

from controlplane.core.bus_redis import RedisBackend, wait_for_redis
from controlplane.core.events import EventBus, bus_from_url


@pytest.fixture
def redis_url(tmp_path: Path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    wait_for_redis(url)
    yield url
    server.terminate()
    server.wait(timeout=10)


def test_two_buses_share_one_sequence_in_order(redis_url: str) -> None:
    a, b = bus_from_url(redis_url), bus_from_url(redis_url)
    try:
        assert a.epoch == b.epoch
        sub_a, sub_b = a.subscribe(a.last_id), b.subscribe(b.last_id)
        for n in range(50):
            (a if n % 2 else b).publish("run:progress", {"done": n, "total": 50})
        got_a = [sub_a.get(timeout=5) for _ in range(50)]
        got_b = [sub_b.get(timeout=5) for _ in range(50)]
        assert [e["data"]["done"] for e in got_a] == list(range(50))
        assert [e["id"] for e in got_a] == [e["id"] for e in got_b]
        seqs = [int(e["id"].rsplit("-", 1)[1]) for e in got_a]
        assert seqs == list(range(seqs[0], seqs[0] + 50))
        sub_a.close()
        sub_b.close()
    finally:
        a.close()
        b.close()


def test_resume_from_another_process_and_resync(redis_url: str) -> None:
    publisher = bus_from_url(redis_url)
    try:
        ids = [publisher.publish("run:progress", {"done": n, "total": 9})["id"] for n in range(9)]
    finally:
        publisher.close()
    script = ("import sys; from controlplane.core.events import bus_from_url\n"
              "b = bus_from_url(sys.argv[1]); s = b.subscribe(sys.argv[2])\n"
              "print(','.join(str(s.get(timeout=5)['data']['done']) for _ in range(4)))\n"
              "b.close()")
    done = subprocess.run([sys.executable, "-c", script, redis_url, ids[4]],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "5,6,7,8", done.stderr
    reader = EventBus(backend=RedisBackend(redis_url))
    try:
        with reader.subscribe("otherepoch-3") as sub:
            assert sub.get(timeout=5)["type"] == "resync"
    finally:
        reader.close()


def test_trimmed_history_gets_resync(redis_url: str) -> None:
    bus = EventBus(backend=RedisBackend(redis_url, prefix="trim", replay_size=10))
    try:
        first = bus.publish("run:progress", {"done": 0, "total": 1})["id"]
        for n in range(300):
            bus.publish("run:progress", {"done": n, "total": 300})
        with bus.subscribe(first) as sub:
            assert sub.get(timeout=5)["type"] == "resync"
    finally:
        bus.close()


def test_lock_and_limit_hold_across_workers(redis_url: str, repo: Path) -> None:
    """Two executors (as two workers would) share the 409 lock and the concurrency limit."""
    import threading

    from controlplane.core.coordination import RedisCoordinator
    from controlplane.core.errors import RunInProgress
    from controlplane.core.executor import Executor
    from controlplane.core.run_tracker import open_run

    bus = EventBus()
    workers = [Executor(bus, limit=1, coordinator=RedisCoordinator(redis_url, limit=1),
                        refresh_seconds=0.05) for _ in range(2)]
    release = threading.Event()
    try:
        first = workers[0].submit(open_run("test", "test:a", project_root=repo),
                                  lambda run: release.wait(30) and {"ok": True}, "shared-key")
        with pytest.raises(RunInProgress) as refused:
            workers[1].submit(open_run("test", "test:b", project_root=repo),
                              lambda run: {"ok": True}, "shared-key")
        assert refused.value.run_id == first.active.run_id
        second = workers[1].submit(open_run("test", "test:c", project_root=repo),
                                   lambda run: {"ok": True}, "other-key")
        assert workers[1].state()["queued"] == [second.active.run_id]  # the one slot is taken
        release.set()
        assert workers[0].wait(first.active.run_id, 30).final["status"] == "ok"
        assert workers[1].wait(second.active.run_id, 30).final["status"] == "ok"
    finally:
        release.set()
        for worker in workers:
            worker.shutdown()
