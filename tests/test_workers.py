"""Two gunicorn workers behind one port share one bus: every SSE client sees every run, in order."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

pytest.importorskip("redis")
if shutil.which("redis-server") is None:
    pytest.skip("redis-server is not installed (.ci/run installs it)", allow_module_level=True)

from controlplane.core.bus_redis import wait_for_redis
from tests.test_serve import BEARER, Server, server_env

RUNS = 40


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


class Client(threading.Thread):
    """One SSE client: the run:completed events it sees, in order; which worker serves it."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.conn.request("GET", "/api/events", headers={**BEARER, "Accept": "text/event-stream"})
        self.response = self.conn.getresponse()
        self.worker = self.response.getheader("X-Controlplane-Worker")
        assert self.response.readline().startswith(b"retry:")
        self.completed: list[tuple[int, str]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while len(self.completed) < RUNS:
            line = self.response.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                envelope = json.loads(line[6:])
                if envelope["type"] == "run:completed":
                    seq = int(envelope["id"].rsplit("-", 1)[1])
                    self.completed.append((seq, envelope["run_id"]))
        self.done.set()
        self.conn.close()


def test_sse_clients_on_either_worker_see_every_run(repo: Path, tmp_path: Path,
                                                    redis_url: str) -> None:
    server = Server(repo, tmp_path, "--workers", "2", "--bus", redis_url, env=server_env())
    try:
        clients = [Client(server.port) for _ in range(8)]
        served_by = {c.worker for c in clients}
        for client in clients:
            client.start()
        started, answered_by = [], set()
        for _ in range(RUNS):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            conn.request("POST", "/security/generate/gitignore", body="{}",
                         headers={**BEARER, "Content-Type": "application/json"})
            answer = conn.getresponse()
            body = json.loads(answer.read())
            assert answer.status == 200 and body["status"] == "ok", body
            answered_by.add(answer.getheader("X-Controlplane-Worker"))
            started.append(body["run_id"])
            conn.close()
        for client in clients:
            assert client.done.wait(120), "a client did not see every run"
    finally:
        server.stop()
    assert len(served_by | answered_by) == 2, "both workers took part"
    for client in clients:
        assert sorted(run_id for _, run_id in client.completed) == sorted(started)
        seqs = [seq for seq, _ in client.completed]
        assert seqs == sorted(seqs) and len(set(seqs)) == RUNS  # in order, none twice
    assert len({tuple(c.completed) for c in clients}) == 1  # everyone saw the same sequence
