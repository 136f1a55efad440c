"""SSE and WebSocket clients see every event once, in order, and resume after a cut."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import threading
from urllib.parse import urlparse

import simple_websocket

from controlplane.core.events import default_bus
from tests import wsclient
from tests.conftest import TOKEN


class SSEClient:
    """A minimal SSE reader over http.client (what EventSource does, by hand)."""

    def __init__(self, base: str, last_event_id: str | None = None) -> None:
        url = urlparse(base)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.conn.request("GET", "/api/events", headers=headers)
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        assert self.response.getheader("Content-Type").startswith("text/event-stream")

    def next_event(self) -> dict:
        """The next message (comments and retry lines skipped)."""
        fields: dict[str, str] = {}
        while True:
            line = self.response.fp.readline().decode()
            if line in ("\n", ""):
                if "data" in fields:
                    envelope = json.loads(fields["data"])
                    assert fields["id"] == envelope["id"]
                    return envelope
                if line == "":
                    raise EOFError
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.rstrip("\n").partition(": ")
            fields[name] = value

    def close(self) -> None:
        self.conn.close()



def chat(n: int) -> dict:
    """A chat:message's data as declared (author and time included)."""
    return {"message_id": str(n), "text": str(n), "author": {"kind": "api", "name": "t"},
            "at": "2026-12-05T00:00:00Z"}

def publish(n: int, start: int = 0) -> list[str]:
    return [default_bus().publish("run:progress", {"done": i, "total": 99})["id"]
            for i in range(start, start + n)]


def test_sse_client_cut_off_resumes_with_last_event_id(served) -> None:
    client = SSEClient(served)
    publish(3)
    seen = [client.next_event() for _ in range(3)]
    assert [e["data"]["done"] for e in seen] == [0, 1, 2]
    client.close()  # cut off mid-stream
    publish(4, start=3)  # missed while away
    resumed = SSEClient(served, last_event_id=seen[-1]["id"])
    publish(1, start=7)
    got = [resumed.next_event() for _ in range(5)]
    resumed.close()
    assert [e["data"]["done"] for e in got] == [3, 4, 5, 6, 7]
    seqs = [int(e["id"].rsplit("-", 1)[1]) for e in seen + got]
    assert seqs == sorted(set(seqs)) and seqs == list(range(seqs[0], seqs[0] + 8))


def test_sse_unknown_epoch_gets_resync(served) -> None:
    client = SSEClient(served, last_event_id="0badc0de-17")
    assert client.next_event()["type"] == "resync"
    client.close()


def ws_connect(base: str, last_event_id: str | None = None) -> wsclient.Client:
    url = base.replace("http://", "ws://") + "/ws/events"
    if last_event_id:
        url += f"?last_event_id={last_event_id}"
    return wsclient.connect(url, headers={"Authorization": f"Bearer {TOKEN}"})


def one_write_server() -> tuple[socket.socket, threading.Thread]:
    """A WebSocket server that answers the handshake and one text frame in a single write."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            key = request.split(b"Sec-WebSocket-Key: ")[1].split(b"\r\n")[0]
            accept = base64.b64encode(hashlib.sha1(
                key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept
                         + b"\r\n\r\n" + b"\x81\x05hello")  # FIN, text, 5 bytes
            conn.recv(4096)  # silent until the client closes

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_a_frame_sent_with_the_handshake_arrives_at_once() -> None:
    """simple_websocket 1.1.0 holds it until more bytes come (25 s: the server's ping)."""
    for client_class, expected in ((simple_websocket.Client, None), (wsclient.Client, "hello")):
        listener, thread = one_write_server()
        with listener:
            client = client_class.connect(f"ws://127.0.0.1:{listener.getsockname()[1]}/")
            try:
                assert client.receive(timeout=1 if expected is None else 5) == expected
            finally:
                client.close()
                reader = getattr(client, "thread", None)  # simple_websocket's own reader
                if reader is not None:
                    reader.join(timeout=10)  # ends once the close is answered
            thread.join(timeout=5)


def test_websocket_same_envelopes_and_resume(served) -> None:
    ws = ws_connect(served, default_bus().last_id)  # resume from now: nothing is missed
    first_ids = publish(2)
    seen = [json.loads(ws.receive(timeout=10)) for _ in range(2)]
    assert [e["id"] for e in seen] == first_ids
    ws.close()
    publish(3, start=2)
    resumed = ws_connect(served, seen[-1]["id"])
    try:  # the replay may come with the 101: wsclient delivers it at once (docs/reliability.md)
        got = [resumed.receive(timeout=5) for _ in range(3)]
    finally:
        resumed.close()
    bus = default_bus()  # what the server had, should a message not have come
    assert None not in got, (got, seen[-1]["id"], bus.last_id, bus.subscriber_count)
    got = [json.loads(message) for message in got]
    assert [e["data"]["done"] for e in got] == [2, 3, 4]
    assert set(got[0]) == {"id", "type", "run_id", "at", "data"}


def test_a_client_behind_a_burst_gets_it_in_few_writes_in_order() -> None:
    from controlplane.core.events import EventBus
    from controlplane.ui.web.api_events import MAX_BATCH, sse_frames

    bus = EventBus()
    sub = bus.subscribe(maxsize=1000)
    published = [bus.publish("chat:message", chat(n))["id"]
                 for n in range(150)]
    frames = sse_frames(sub, heartbeat=0.01)
    assert next(frames).startswith("retry:")
    writes = [next(frames) for _ in range(3)]
    frames.close()
    assert [w.count("\nid: ") + w.startswith("id: ") for w in writes] == [MAX_BATCH, MAX_BATCH, 22]
    ids = [line[4:] for w in writes for line in w.splitlines() if line.startswith("id: ")]
    assert ids == published


def test_a_slow_client_ends_its_stream_with_resync_after_what_it_had() -> None:
    from controlplane.core.events import EventBus
    from controlplane.ui.web.api_events import sse_frames

    bus = EventBus()
    sub = bus.subscribe(maxsize=5)
    for n in range(8):  # three more than it can hold: dropped from the bus
        bus.publish("chat:message", chat(n))
    frames = sse_frames(sub, heartbeat=0.01)
    next(frames)
    last = next(frames)
    assert last.count("data: ") == 6 and '"type": "resync"' in last.rsplit("data: ", 1)[1]
    assert next(frames, None) is None  # the stream ends: the client reconnects and reloads
