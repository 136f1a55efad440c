"""Two gunicorn workers behind one port share one bus, one lock table and one executor limit.

- 100 runs started alternately through each worker: every SSE client, on
  either worker, sees all 200 events (run:started and run:completed), in the
  same order, none twice;
- the same action sent to both workers at the same moment runs once: the
  other answer is 409;
- the executor's limit is global, and a cancel sent to one worker stops the
  run that another worker executes.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("redis")
if shutil.which("redis-server") is None:
    pytest.skip("redis-server is not installed (.ci/run installs it)", allow_module_level=True)

from tests import test_bus_redis
from tests.test_serve import BEARER, SLOW_PYTEST, Events, Server, gone, server_env

redis_url = test_bus_redis.redis_url  # the fixture: a real redis-server on a free port
RUNS = 100
ACTION = "/security/generate/gitignore"
# the login URL is printed once the first worker is up; the second one may still be loading
# the app (seconds on a loaded machine): connections are retried until it answers too
WORKER_BOOT_SECONDS = 60


class WorkerConnection:
    """A keep-alive connection answered by one chosen worker (gunicorn pins a connection)."""

    def __init__(self, port: int, avoid: str | None = None) -> None:
        self.port = port
        deadline = time.monotonic() + WORKER_BOOT_SECONDS  # the other may still be booting
        while time.monotonic() < deadline:
            self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            self.worker = self.call("GET", "/healthz")[1]
            if self.worker != avoid:
                return
            self.conn.close()
        raise AssertionError(f"no connection reached a worker other than {avoid}")

    def call(self, method: str, path: str, body: dict | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, str, dict]:
        """(status, answering worker, JSON body); the connection stays open."""
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers={
            **BEARER, "Content-Type": "application/json", **(headers or {})})
        answer = self.conn.getresponse()
        payload = answer.read()
        assert answer.getheader("Connection", "").lower() != "close", "the worker closed it"
        return answer.status, answer.getheader("X-Controlplane-Worker"), json.loads(payload)

    def close(self) -> None:
        self.conn.close()


def both_workers(port: int) -> tuple[WorkerConnection, WorkerConnection]:
    first = WorkerConnection(port)
    return first, WorkerConnection(port, avoid=first.worker)


class Client(threading.Thread):
    """One SSE client: the run:started / run:completed events it sees, in order."""

    def __init__(self, port: int, expected: int) -> None:
        super().__init__(daemon=True)
        self.expected = expected
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.conn.request("GET", "/api/events", headers={**BEARER, "Accept": "text/event-stream"})
        self.response = self.conn.getresponse()
        self.worker = self.response.getheader("X-Controlplane-Worker")
        assert self.response.readline().startswith(b"retry:")  # subscribed from here on
        self.seen: list[tuple[int, str, str]] = []  # (sequence, type, run id)
        self.done = threading.Event()

    def run(self) -> None:
        while len(self.seen) < self.expected:
            line = self.response.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                envelope = json.loads(line[6:])
                if envelope["type"] in ("run:started", "run:completed"):
                    seq = int(envelope["id"].rsplit("-", 1)[1])
                    self.seen.append((seq, envelope["type"], envelope["run_id"]))
        self.done.set()
        self.conn.close()


def sse_clients_on_both_workers(port: int, per_worker: int, expected: int) -> list[Client]:
    """Open SSE clients until each worker serves *per_worker* of them."""
    kept: dict[str, list[Client]] = {}
    deadline = time.monotonic() + WORKER_BOOT_SECONDS  # the other may still be booting
    while time.monotonic() < deadline:
        client = Client(port, expected)
        group = kept.setdefault(client.worker, [])
        if len(group) < per_worker:
            group.append(client)
        else:
            client.conn.close()
        if len(kept) == 2 and all(len(g) == per_worker for g in kept.values()):
            return [c for g in kept.values() for c in g]
    raise AssertionError(f"SSE clients reached workers {list(kept)}, not two")


def test_runs_started_through_both_workers_reach_every_client_in_order(
        repo: Path, tmp_path: Path, redis_url: str) -> None:
    server = Server(repo, tmp_path, "--workers", "2", "--bus", redis_url, env=server_env())
    connections: tuple[WorkerConnection, ...] = ()
    try:
        clients = sse_clients_on_both_workers(server.port, per_worker=4, expected=2 * RUNS)
        for client in clients:
            client.start()
        connections = both_workers(server.port)
        started, answered_by = [], []
        for number in range(RUNS):
            status, worker, body = connections[number % 2].call("POST", ACTION, {})
            assert status == 200 and body["status"] == "ok", body
            answered_by.append(worker)
            started.append(body["run_id"])
        for client in clients:
            assert client.done.wait(120), f"a client saw {len(client.seen)} of {2 * RUNS}"
    finally:
        for connection in connections:
            connection.close()
        server.stop()
        server.kill()
    assert answered_by[0::2] == [connections[0].worker] * (RUNS // 2)  # alternated, as asked
    assert answered_by[1::2] == [connections[1].worker] * (RUNS // 2)
    for client in clients:
        assert sorted(r for _, t, r in client.seen if t == "run:started") == sorted(started)
        assert sorted(r for _, t, r in client.seen if t == "run:completed") == sorted(started)
        seqs = [seq for seq, _, _ in client.seen]
        assert seqs == sorted(seqs) and len(set(seqs)) == 2 * RUNS  # in order, none twice
        for run_id in started:  # each run's start comes before its end
            kinds = [t for _, t, r in client.seen if r == run_id]
            assert kinds == ["run:started", "run:completed"]
    assert len({tuple(c.seen) for c in clients}) == 1  # everyone saw the same sequence


@pytest.fixture
def slow_tests(repo: Path, tmp_path: Path) -> Path:
    """A `pytest` on PATH that runs until killed; returns the file holding its sleeper's pid."""
    (repo / "tests").mkdir()
    (repo / "tests" / "test_x.py").write_text("def test_x():\n    pass\n")
    bin_dir, pidfile = tmp_path / "bin", tmp_path / "sleep.pid"
    bin_dir.mkdir()
    (bin_dir / "pytest").write_text(SLOW_PYTEST.format(pidfile=pidfile))
    (bin_dir / "pytest").chmod(0o755)
    return pidfile


def slow_env(pidfile: Path, **extra: str) -> dict[str, str]:
    return server_env(PATH=f"{pidfile.parent / 'bin'}{os.pathsep}{os.environ['PATH']}", **extra)


@contextlib.contextmanager
def two_workers(repo: Path, tmp_path: Path, redis_url: str, env: dict[str, str]
                ) -> Iterator[tuple[tuple[WorkerConnection, ...], Events]]:
    """A 2-worker server: a connection to each worker and an event stream; all stopped after."""
    server = Server(repo, tmp_path, "--workers", "2", "--bus", redis_url, env=env)
    connections: tuple[WorkerConnection, ...] = ()
    events = Events(server)
    try:
        connections = both_workers(server.port)
        yield connections, events
    finally:
        events.close()
        for connection in connections:
            connection.close()
        server.stop()
        server.kill()


def test_the_same_action_sent_to_both_workers_at_once_runs_once(
        repo: Path, tmp_path: Path, redis_url: str, slow_tests: Path) -> None:
    pidfile = slow_tests
    with two_workers(repo, tmp_path, redis_url, slow_env(pidfile)) as (connections, events):
        gate = threading.Barrier(2)
        answers: list[tuple[int, str, dict]] = []

        def post(connection: WorkerConnection) -> None:
            gate.wait()
            answers.append(connection.call("POST", "/testing/run", {},
                                           headers={"Prefer": "respond-async"}))

        posters = [threading.Thread(target=post, args=(c,)) for c in connections]
        for poster in posters:
            poster.start()
        for poster in posters:
            poster.join(60)
        statuses = sorted(status for status, _, _ in answers)
        assert statuses == [202, 409], answers
        assert {worker for _, worker, _ in answers} == {c.worker for c in connections}
        refused = next(body for status, _, body in answers if status == 409)
        running = next(body for status, _, body in answers if status == 202)
        assert refused["error"] == "run_already_in_progress", refused
        assert running["run_id"] in json.dumps(refused)  # the 409 names the run that holds it
        # its tool has started (and written its sleeper's pid) before it is cancelled
        events.wait_for(lambda e: e["type"] == "run:output" and e["run_id"] == running["run_id"])
        status, _, _ = connections[0].call("POST", f"/api/runs/{running['run_id']}/cancel", {})
        assert status in (200, 202)
    assert gone(int(pidfile.read_text()))


def test_the_executor_limit_holds_across_workers(repo: Path, tmp_path: Path, redis_url: str,
                                                 slow_tests: Path) -> None:
    env = slow_env(slow_tests, CONTROLPLANE_EXECUTOR_LIMIT="1")
    with two_workers(repo, tmp_path, redis_url, env) as (connections, events):
        async_ = {"Prefer": "respond-async"}
        status, _, slow = connections[0].call("POST", "/testing/run", {}, headers=async_)
        assert status == 202, slow
        events.wait_for(lambda e: e["type"] == "run:output" and e["run_id"] == slow["run_id"])
        status, _, fast = connections[1].call("POST", ACTION, {}, headers=async_)
        assert status == 202 and fast["status"] == "queued", fast
        events.wait_for(lambda e: e["type"] == "run:queued" and e["run_id"] == fast["run_id"])
        status, _, cancel = connections[1].call("POST", f"/api/runs/{slow['run_id']}/cancel", {})
        # it runs on the other worker: its tool's group is stopped through the journal
        assert (status, cancel["outcome"]) == (200, "cancelling")
        order = []
        while len(order) < 2:  # the waiting run starts only once the slot is free
            seen = events.wait_for(lambda e: e["type"] in ("run:started", "run:completed"))
            if (seen["type"], seen["run_id"]) in (("run:completed", slow["run_id"]),
                                                  ("run:started", fast["run_id"])):
                order.append((seen["type"], seen["run_id"]))
        assert order == [("run:completed", slow["run_id"]), ("run:started", fast["run_id"])]
        events.wait_for(lambda e: e["type"] == "run:completed" and e["run_id"] == fast["run_id"])
    assert gone(int(slow_tests.read_text()))
