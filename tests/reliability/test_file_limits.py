"""Streams against a small file limit (issue 13 item 14).

Each SSE stream holds a socket; a SQLite connection per server thread held three
more files. With ``ulimit -n`` at 256 (soft and hard, so the server cannot raise it),
300 SSE clients used to take every descriptor: ``/healthz`` hung. Now the index
shares one connection and a stream that would eat the reserve gets 503 JSON.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.conftest import make_repo
from tests.test_serve import BEARER, TOKEN, free_port, server_env

LIMIT = 256
CLIENTS = 300


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes, float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=BEARER)
        answer = conn.getresponse()
        return answer.status, answer.read(), time.monotonic() - started
    finally:
        conn.close()


def test_streams_beyond_the_file_limit_get_503_and_healthz_answers(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "project")
    port = free_port()
    env = {**server_env(), "CONTROLPLANE_TOKEN": TOKEN}
    stderr_path = tmp_path / "serve.err"
    with open(stderr_path, "wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "controlplane", "serve", "--repo", str(repo), "--port",
             str(port)], stdout=subprocess.PIPE, stderr=stderr, env=env, preexec_fn=limited,
            start_new_session=True)
    streams: list[http.client.HTTPConnection] = []
    statuses: dict[int, int] = {}
    refusals: list[dict] = []
    try:
        assert server.stdout is not None
        assert b"Control plane for " in server.stdout.readline(), stderr_path.read_text()
        for _ in range(10):  # index reads in several threads first (each held files before)
            assert get(port, "/api/runs/recent")[0] == 200
        for _ in range(CLIENTS):  # clients that wait for their answer, as browsers do
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/api/events", headers=BEARER)
            answer = conn.getresponse()
            statuses[answer.status] = statuses.get(answer.status, 0) + 1
            if answer.status == 200:
                streams.append(conn)  # held open, as a dashboard tab does
            else:
                refusals.append(json.loads(answer.read()))
                conn.close()
        status, body, took = get(port, "/healthz")
        assert status == 200 and took < 1.0, (status, body, took)
        assert get(port, "/api/runs/recent")[0] == 200  # the index still opens its files
        worker = psutil.Process(server.pid).children()[0]
        open_files = worker.num_fds()
    finally:
        for conn in streams:
            conn.close()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    assert statuses.get(200, 0) >= 100, statuses
    assert statuses.get(503, 0) >= CLIENTS - LIMIT, statuses
    assert set(statuses) <= {200, 503}, statuses
    assert all(r["error"] == "too_many_streams" and "file descriptors" in r["message"]
               for r in refusals), refusals[:2]
    assert open_files < LIMIT
    log = stderr_path.read_text(errors="replace")
    assert "Too many open files" not in log, log[-2000:]
    print(f"FIGURE ulimit -n {LIMIT}, {CLIENTS} SSE clients: {statuses.get(200)} streams, "
          f"{statuses.get(503)} refused 503 too_many_streams, /healthz {took * 1000:.0f} ms, "
          f"worker fds {open_files}")
