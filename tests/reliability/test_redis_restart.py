"""Redis restarted, flushed or down: clients resync, scripts still record, the API says 503.

Real redis-server processes on a free port; the restart is a real kill and start.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("redis")
if shutil.which("redis-server") is None:
    pytest.skip("redis-server is not installed (.ci/run installs it)", allow_module_level=True)

import redis

from controlplane.core.bus_redis import wait_for_redis
from controlplane.core.chat import post_message
from controlplane.core.events import BusUnavailable, EventBus, bus_from_url
from controlplane.core.ledger import Ledger
from controlplane.core.run_tracker import tracked_run
from tests.conftest import git


class RedisServer:
    """One redis-server without persistence, restartable on the same port."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.dir = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)], stdout=subprocess.DEVNULL)
        wait_for_redis(self.url)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    found = RedisServer(tmp_path)
    found.start()
    yield found
    found.stop()


def until(sub, wanted: str, timeout: float = 10.0) -> list[dict]:
    """Envelopes from *sub* up to and including the first of type *wanted*."""
    got = []
    while True:
        envelope = sub.get(timeout=timeout)
        assert envelope is not None, f"no {wanted} after {[e['type'] for e in got]}"
        got.append(envelope)
        if envelope["type"] == wanted:
            return got


def test_a_restarted_redis_resyncs_clients_and_live_events_flow_again(
        server: RedisServer) -> None:
    reader, publisher = bus_from_url(server.url), bus_from_url(server.url)
    try:
        for n in range(30):  # the sequence is ahead of what a restarted Redis will number
            publisher.publish("run:progress", {"done": n, "total": 30})
        sub = reader.subscribe(reader.last_id)
        old_epoch = reader.epoch
        server.stop()
        server.start()
        after = publisher.publish("run:progress", {"done": 1, "total": 1})
        assert not after["id"].startswith(old_epoch + "-"), "a new epoch after the restart"
        got = until(sub, "resync")
        assert got[-1]["data"]["reason"] == "bus_restarted"
        live = until(sub, "run:progress")[-1]
        assert live["id"] == after["id"] and live["data"] == {"done": 1, "total": 1}
        assert reader.epoch == publisher.epoch != old_epoch
        again = publisher.publish("run:progress", {"done": 2, "total": 2})
        assert sub.get(timeout=10)["id"] == again["id"]
        sub.close()
    finally:
        reader.close()
        publisher.close()


def test_a_flushed_redis_with_no_new_publish_is_noticed(server: RedisServer) -> None:
    bus = bus_from_url(server.url)
    try:
        for n in range(5):
            bus.publish("run:progress", {"done": n, "total": 5})
        sub = bus.subscribe(bus.last_id)
        redis.Redis.from_url(server.url).flushall()
        assert until(sub, "resync")[-1]["data"]["reason"] == "bus_restarted"
        published = bus.publish("run:progress", {"done": 0, "total": 1})
        assert until(sub, "run:progress")[-1]["id"] == published["id"]
        sub.close()
    finally:
        bus.close()


SCRIPT = """
import sys
from controlplane.core.run_tracker import tracked_run
with tracked_run("test", "test:no-bus", summary="bus down") as run:
    run.output("a line while Redis is down")
    run.output("another")
print(run.run_id)
"""


def test_scripts_record_runs_while_redis_is_down(server: RedisServer, repo: Path) -> None:
    server.stop()
    env = {**os.environ, "CONTROLPLANE_BUS": server.url}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip().splitlines()[-1]
    run = Ledger.open(repo).get(run_id)
    assert run is not None and run["status"] == "ok"
    assert "bus_epoch" not in run
    warnings = [line for line in done.stderr.splitlines() if "does not answer" in line]
    assert len(warnings) == 1, done.stderr  # said once, not once per event
    assert "start Redis or set bus to memory" in warnings[0]


def test_exec_records_while_redis_is_down(server: RedisServer, repo: Path) -> None:
    server.stop()
    env = {**os.environ, "CONTROLPLANE_BUS": server.url}
    done = subprocess.run([sys.executable, "-m", "controlplane", "exec", "test:exec", "--", "true"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def test_actions_and_chat_answer_503_bus_unavailable(server: RedisServer, repo: Path
                                                      ) -> None:
    from controlplane.core.coordination import RedisCoordinator

    bus = bus_from_url(server.url)
    coordinator = RedisCoordinator(server.url, limit=1)
    server.stop()
    try:
        with pytest.raises(BusUnavailable) as refused:
            coordinator.lock("key", "run-1")
        assert refused.value.status == 503 and refused.value.code == "bus_unavailable"
        assert "\n" not in refused.value.message and "start Redis" in refused.value.message
        with pytest.raises(BusUnavailable):
            post_message(Ledger.open(repo), bus, "hello", {"kind": "user", "name": "u"})
        assert Ledger.open(repo).index.messages(limit=10) == []  # nothing half-done
    finally:
        coordinator.close()
        bus.close()


def test_the_feed_dedupes_by_what_the_bus_was_told_not_by_bus_epoch(
        server: RedisServer, repo: Path) -> None:
    """A script on the same Redis announces its own run; the server's feed leaves it alone.
    A script on another bus is announced by the feed. Nothing is announced twice."""
    from controlplane.core.ledger.feed import LedgerFeed

    server_bus = bus_from_url(server.url)
    feed = LedgerFeed(Ledger.open(repo), server_bus)
    try:
        with server_bus.subscribe(server_bus.last_id) as sub:
            env = {**os.environ, "CONTROLPLANE_BUS": server.url}
            shared = subprocess.run([sys.executable, "-c", SCRIPT], cwd=repo, env=env,
                                    capture_output=True, text=True, timeout=60, check=True)
            env.pop("CONTROLPLANE_BUS")
            alone = subprocess.run([sys.executable, "-c", SCRIPT], cwd=repo, env=env,
                                   capture_output=True, text=True, timeout=60, check=True)
            shared_id = shared.stdout.split()[-1]
            alone_id = alone.stdout.split()[-1]
            feed.poll_once()
            marker = server_bus.publish("metrics:update", {})
            seen = []
            while (envelope := sub.get(timeout=10))["id"] != marker["id"]:
                seen.append((envelope["type"], envelope["run_id"]))
        lifecycle = [pair for pair in seen if pair[0] in ("run:started", "run:completed")]
        assert lifecycle.count(("run:started", shared_id)) == 1
        assert lifecycle.count(("run:completed", shared_id)) == 1
        assert lifecycle.count(("run:started", alone_id)) == 1
        assert lifecycle.count(("run:completed", alone_id)) == 1
        shown = git(repo, "show", f"scp-ledger:{ledger_dir(repo, shared_id)}/run.json")
        assert "bus_epoch" not in json.loads(shown)
    finally:
        server_bus.close()


def test_a_message_posted_through_a_shared_bus_is_not_announced_again(
        server: RedisServer, repo: Path) -> None:
    from controlplane.core.ledger.feed import LedgerFeed

    worker_a, worker_b = bus_from_url(server.url), bus_from_url(server.url)
    feed_b = LedgerFeed(Ledger.open(repo), worker_b)
    try:
        with worker_b.subscribe(worker_b.last_id) as sub:
            message = post_message(Ledger.open(repo), worker_a, "hi", {"kind": "u", "name": "u"})
            assert "bus_epoch" not in message
            feed_b.poll_once()
            marker = worker_b.publish("metrics:update", {})
            kinds = []
            while (envelope := sub.get(timeout=10))["id"] != marker["id"]:
                kinds.append(envelope["type"])
        assert kinds.count("chat:message") == 1
    finally:
        worker_a.close()
        worker_b.close()


def test_memory_bus_marks_are_its_own() -> None:
    bus = EventBus()
    bus.announce("20260101T000000000Z-0000abcd")
    assert bus.announced("20260101T000000000Z-0000abcd")
    assert not EventBus().announced("20260101T000000000Z-0000abcd")


def ledger_dir(repo: Path, run_id: str) -> str:
    listing = git(repo, "ls-tree", "-r", "-d", "--name-only", "scp-ledger")
    return next(line for line in listing.splitlines() if line.endswith(run_id))


def test_tracked_run_in_process_with_redis_down(server: RedisServer, repo: Path) -> None:
    bus = bus_from_url(server.url)
    server.stop()
    try:
        with tracked_run("test", "test:inproc", project_root=repo, bus=bus) as run:
            run.output("line")
        assert Ledger.open(repo).get(run.run_id)["status"] == "ok"
    finally:
        bus.close()
