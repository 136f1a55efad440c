"""Slowloris, as an attacker runs it, against a real `controlplane serve`: no thread is held.

Half-sent requests, trickled bodies and half-sent follow-ups on kept-alive
connections, more of them than the server has threads; `/healthz` must still
answer quickly, SSE clients must get every event, a WebSocket must connect.
CI runs 600 held requests against `--threads 32`; ``CONTROLPLANE_LONG_TESTS=1``
runs the issue's numbers: 1,000 held against the default 512 threads, 50 SSE
clients. `bench/slowloris_bench.py` prints the same figures.
"""

from __future__ import annotations

import json
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
import simple_websocket

from bench.slowloris_bench import (
    HALF_SENT,
    Attackers,
    SSEClient,
    healthz_times,
    percentile,
    raise_fd_limit,
    record_runs,
    wait_until_held,
)
from tests.conftest import scaled
from tests.test_serve import BEARER, TOKEN, Server, server_env

THREADS = scaled(32, 512)
HELD = scaled(600, 1000)
SSE_CLIENTS = scaled(4, 50)
HEALTHZ = scaled(60, 500)
# The bound is 100 ms; CI shares two cores with pytest -n auto and a browser, so its
# short form allows more. Before the fix every /healthz under attack timed out (5,000 ms).
P99_MS = scaled(500, 100)


@pytest.fixture
def serve(repo: Path, tmp_path: Path) -> Iterator:
    raise_fd_limit()  # the attacker needs a descriptor per connection too
    servers: list[Server] = []

    def start(*args: str, **env: str) -> Server:
        server = Server(repo, tmp_path, "--threads", str(THREADS), *args,
                        env=server_env(**env))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()
        print(f"server stderr:\n{server.stderr()}")


def held_healthz(server: Server, connections: int) -> tuple[float, float]:
    """Once the server holds *connections*: p50 and p99 of HEALTHZ `/healthz`; none may fail."""
    assert wait_until_held(server.proc, server.port, connections, timeout=60) >= connections
    times, failed = healthz_times(server.port, HEALTHZ)
    assert failed == 0, f"{failed}/{HEALTHZ} /healthz failed under attack"
    p50, p99 = statistics.median(times), percentile(times, 0.99)
    print(f"/healthz with {connections} connections held: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    return p50, p99


def chat_body(length: int) -> bytes:
    """A valid `POST /api/chat` body of exactly *length* bytes."""
    body = json.dumps({"text": ""}).encode()
    return json.dumps({"text": "x" * (length - len(body))}).encode()


def read_answer(answers: BinaryIO) -> tuple[int, dict]:
    """The next final answer from *answers* (1xx skipped): status and JSON body."""
    while True:
        status = int(answers.readline().split()[1])
        headers = dict(line.decode().lower().split(":", 1)
                       for line in iter(answers.readline, b"\r\n"))
        if status >= 200:
            return status, json.loads(answers.read(int(headers["content-length"])))


@pytest.mark.slow
@pytest.mark.timeout(scaled(300, 900))
def test_half_sent_requests_hold_no_thread(serve, repo: Path) -> None:
    server = serve()
    clients = [SSEClient(server.port, TOKEN) for _ in range(SSE_CLIENTS)]
    for client in clients:
        client.start()
    attackers = Attackers(server.port, HELD, 0)
    attackers.start()
    try:
        _, p99 = held_healthz(server, HELD + SSE_CLIENTS)
        assert p99 <= P99_MS
        ws = simple_websocket.Client.connect(f"ws://127.0.0.1:{server.port}/ws/events",
                                             headers=BEARER)
        assert ws.connected
        ws.close()
        run_ids = record_runs(repo, scaled(3, 20))
        assert all(client.wait_for(run_ids, timeout=60) for client in clients)
        started = time.monotonic()
        assert server.stop() == 0  # held connections do not delay the exit
        assert time.monotonic() - started < 15
    finally:
        attackers.close()
        for client in clients:
            client.close()


@pytest.mark.slow
@pytest.mark.timeout(scaled(180, 600))
def test_bodies_trickled_at_one_byte_a_second_hold_no_thread(serve) -> None:
    server = serve()
    attackers = Attackers(server.port, 0, 2 * THREADS)  # Content-Length: 1000, 1 byte/s
    attackers.start()
    try:
        _, p99 = held_healthz(server, 2 * THREADS)
        assert p99 <= P99_MS
        # A body sent slowly is served once it is whole, intact.
        body = chat_body(1000)
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                         + body[:500])
            sock.sendall(body[500:])
            status, answer = read_answer(sock.makefile("rb"))
        assert status == 201 and answer["text"] == json.loads(body)["text"]
    finally:
        attackers.close()


def test_half_sent_follow_ups_on_kept_alive_connections_hold_no_thread(serve) -> None:
    server = serve()
    socks = []
    try:
        for _ in range(THREADS + 16):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            socks.append(sock)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert read_answer(sock.makefile("rb")) == (200, {"ok": True})
            sock.sendall(HALF_SENT)  # the next request on the kept-alive connection, half-sent
        _, p99 = held_healthz(server, THREADS + 16)
        assert p99 <= P99_MS
    finally:
        for sock in socks:
            sock.close()


def test_pipelined_requests_are_answered_in_order(serve) -> None:
    server = serve()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                     b"GET /api/runs/recent HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answers = sock.makefile("rb")
        assert read_answer(answers) == (200, {"ok": True})
        assert read_answer(answers)[0] == 401  # the second request, no token


def test_chunked_and_expect_continue_bodies_are_served(serve) -> None:
    server = serve()
    auth = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        answers = sock.makefile("rb")
        sock.sendall(b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
                     b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\n{\"tex\r\n")
        sock.sendall(b"B;ext=1\r\nt\": \"chunky\r\n2\r\n\"}\r\n0\r\n\r\n")
        status, answer = read_answer(answers)
        assert status == 201 and answer["text"] == "chunky"

        body = json.dumps({"text": "continued"}).encode()
        sock.sendall(b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
                     b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        assert answers.read(25) == b"HTTP/1.1 100 Continue\r\n\r\n"  # the client may send now
        sock.sendall(body)
        status, answer = read_answer(answers)
        assert status == 201 and answer["text"] == "continued"


def test_oversized_headers_and_bodies_are_refused_naming_the_limit(serve) -> None:
    server = serve()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 70_000)
        status, answer = read_answer(sock.makefile("rb"))
    assert status == 431 and answer["error"] == "headers_too_large"
    assert "65536" in answer["message"]

    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Length: 5000000\r\n\r\n")  # refused before any body is sent
        status, answer = read_answer(sock.makefile("rb"))
    assert status == 413 and answer["error"] == "request_entity_too_large"
    assert "Content-Length 5000000" in answer["message"]


def test_a_request_not_complete_in_time_is_answered_408_and_closed(serve) -> None:
    server = serve(CONTROLPLANE_REQUEST_SECONDS="2")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as idle, \
            socket.create_connection(("127.0.0.1", server.port), timeout=30) as half:
        half.sendall(HALF_SENT)
        started = time.monotonic()
        answers = half.makefile("rb")
        status, answer = read_answer(answers)
        assert status == 408 and answer["error"] == "request_timeout"
        assert answers.read(1) == b""  # then closed
        assert idle.recv(1) == b""  # a connection that sent nothing is closed, unanswered
        assert time.monotonic() - started < 10
    assert held_healthz(server, 0)[1] <= P99_MS


MALFORMED = {
    "te-identity": b"POST /api/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\nab",
    "chunked-not-last": b"POST /api/chat HTTP/1.1\r\nHost: x\r\n"
                        b"Transfer-Encoding: chunked, gzip\r\n\r\n5\r\nab",
    "te-and-length": b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n5\r\nab",
    "two-lengths": b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n"
                   b"Content-Length: 9\r\n\r\nab",
    "signed-length": b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: +9\r\n\r\nab",
    "bad-chunk-size": b"POST /api/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      b"\r\nzz\r\nab",
    "chunk-overrun": b"POST /api/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"\r\n2\r\nabcd",
    "bare-lf": b"GET /healthz HTTP/1.1\nHost: x\n",
}


def test_malformed_framing_is_answered_at_once_not_waited_on(serve) -> None:
    """Each is incomplete as sent and malformed: the answer must not wait for more bytes."""
    server = serve()
    for name, data in MALFORMED.items():
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(data)
            status_line = sock.makefile("rb").readline()  # a timeout: it waited
        assert status_line.startswith(b"HTTP/1.1 "), f"{name}: {status_line!r}"
        status = int(status_line.split()[1])
        assert 400 <= status < 500 or status == 501, f"{name}: {status}"
