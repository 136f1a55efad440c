"""Fan-out (issue 18, item 7): under gunicorn an SSE stream holds no thread; one
broadcaster writes every event to every stream, and a client that leaves is let go."""

from __future__ import annotations

import time

import psutil

from tests.test_serve import BEARER, Events, Server, request, start  # noqa: F401 (fixture)

THREADS = 4


def worker(server: Server) -> psutil.Process:
    return psutil.Process(server.proc.pid).children()[0]


def eventually(condition, seconds: float) -> bool:
    """Poll an observable state with a deadline (not a sleep standing in for an event)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_more_streams_than_threads_all_get_every_event(start) -> None:  # noqa: F811
    server = start("--threads", str(THREADS))
    streams = [Events(server) for _ in range(6 * THREADS)]  # each answered: none waits
    try:
        assert request(server, "GET", "/healthz").json() == {"ok": True}
        for n in range(3):
            posted = request(server, "POST", "/api/chat", {"text": f"to all {n}"}, BEARER)
            assert posted.status in (200, 201), posted.body
        for stream in streams:
            texts = [stream.wait_for(lambda e: e["type"] == "chat:message")["data"]["text"]
                     for _ in range(3)]
            assert texts == ["to all 0", "to all 1", "to all 2"]
    finally:
        for stream in streams:
            stream.close()


def test_a_resumed_stream_gets_what_it_missed_once_then_live_events(start) -> None:  # noqa: F811
    server = start()
    first = Events(server)
    request(server, "POST", "/api/chat", {"text": "one"}, BEARER)
    seen = first.wait_for(lambda e: e["type"] == "chat:message")
    for text in ("two", "three"):
        request(server, "POST", "/api/chat", {"text": text}, BEARER)
    first.close()
    resumed = Events(server, last_event_id=seen["id"])
    request(server, "POST", "/api/chat", {"text": "four"}, BEARER)
    texts = [resumed.wait_for(lambda e: e["type"] == "chat:message")["data"]["text"]
             for _ in range(3)]
    assert texts == ["two", "three", "four"]
    resumed.close()


def test_clients_that_leave_are_let_go(start) -> None:  # noqa: F811
    server = start()
    process = worker(server)
    request(server, "GET", "/healthz")
    first = Events(server)  # the broadcaster starts with the first stream (its selector, pipe)
    with_one = process.num_fds()
    first.close()
    assert eventually(lambda: process.num_fds() < with_one, 5)  # that stream let go
    idle = process.num_fds()
    streams = [Events(server) for _ in range(20)]
    assert process.num_fds() >= idle + 15  # the streams hold their connections
    for stream in streams:
        stream.close()
    # before: each stream's thread waited for its 15 s heartbeat to find the client gone
    assert eventually(lambda: process.num_fds() <= idle + 2, 5), (idle, process.num_fds())
