"""Issue 16 item 3: under gunicorn a WebSocket holds no thread. After its 101 the broadcaster
adopts it like an SSE stream: every event once, in order, resume with ``?last_event_id=``,
and what the client sends (close, ping, garbage) is handled by that one thread."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import struct
from urllib.parse import quote

from tests.test_fanout import eventually, worker
from tests.test_serve import BEARER, TOKEN, Server, request, start  # noqa: F401 (fixture)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class RawWebSocket:
    """A WebSocket client on a plain socket: no thread of its own (100 of them are cheap)."""

    def __init__(self, server: Server, last_event_id: str | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        path = "/ws/events" + (f"?last_event_id={quote(last_event_id)}" if last_event_id else "")
        self.sock.sendall((
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {TOKEN}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.receive_some()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
        assert b"Sec-WebSocket-Accept: " + accept in head, head

    def receive_some(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        return data

    def take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self.buffer += self.receive_some()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def frame(self) -> tuple[int, bytes]:
        """The next frame the server sent: (opcode, payload); server frames are unmasked."""
        first, second = self.take(2)
        assert first & 0x80 and not second & 0x80, (first, second)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack(">H", self.take(2))[0]
        elif size == 127:
            size = struct.unpack(">Q", self.take(8))[0]
        return first & 0x0F, self.take(size)

    def message(self) -> dict:
        """The next envelope (pings skipped)."""
        while True:
            opcode, payload = self.frame()
            if opcode == 0x1:
                return json.loads(payload)

    def send(self, opcode: int, payload: bytes, masked: bool = True) -> None:
        mask = os.urandom(4) if masked else b""
        body = bytes(b ^ mask[n % 4] for n, b in enumerate(payload)) if masked else payload
        self.sock.sendall(bytes((0x80 | opcode, (0x80 if masked else 0) | len(payload)))
                          + mask + body)

    def closed_by_server(self) -> bool:
        """True once the server ended the connection (anything it sent first is skipped)."""
        try:
            while self.sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        return True

    def close(self) -> None:
        self.sock.close()


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def chat(server: Server, text: str) -> None:
    posted = request(server, "POST", "/api/chat", {"text": text}, BEARER)
    assert posted.status in (200, 201), posted.body


def test_a_hundred_websockets_hold_no_thread_and_all_get_every_event(start) -> None:  # noqa: F811
    server = start()  # the default --threads: a thread per WebSocket would show
    process = worker(server)
    warm = RawWebSocket(server)  # the broadcaster starts with the first stream
    chat(server, "warm-up")
    assert warm.message()["data"]["text"] == "warm-up"
    warm.close()
    idle = threads(process.pid)
    clients = [RawWebSocket(server) for _ in range(100)]
    try:
        with_clients = threads(process.pid)
        for n in range(3):
            chat(server, f"to all {n}")
        for client in clients:
            texts = [client.message()["data"]["text"] for _ in range(3)]
            assert texts == ["to all 0", "to all 1", "to all 2"]
        chat(server, "last")
        for client in clients:  # nothing came twice: the next message is the next event
            assert client.message()["data"]["text"] == "last"
        # before: flask-sock held a pool thread and simple-websocket a reader thread each
        assert with_clients <= idle + 4, (idle, with_clients)
        print(f"FIGURE ws threads: worker {idle} threads idle, {with_clients} with 100 "
              "WebSockets open")
    finally:
        for client in clients:
            client.close()


def test_a_resumed_websocket_gets_what_it_missed_once_then_live_events(start) -> None:  # noqa: F811
    server = start()
    first = RawWebSocket(server)
    chat(server, "one")
    seen = first.message()
    first.close()
    chat(server, "two")
    chat(server, "three")
    resumed = RawWebSocket(server, last_event_id=seen["id"])
    chat(server, "four")
    got = [resumed.message() for _ in range(3)]
    resumed.close()
    assert [e["data"]["text"] for e in got] == ["two", "three", "four"]
    assert len({e["id"] for e in got}) == 3
    stale = RawWebSocket(server, last_event_id="0badc0de-17")  # another epoch
    assert stale.message()["type"] == "resync"
    stale.close()


def test_client_frames_close_ping_and_garbage(start) -> None:  # noqa: F811
    server = start()
    client = RawWebSocket(server)
    client.send(0x9, b"are you there")
    assert client.frame() == (0xA, b"are you there")
    client.send(0x1, b"ignored")  # a text frame from the client: no answer, still open
    chat(server, "still here")
    assert client.message()["data"]["text"] == "still here"
    client.send(0x8, struct.pack(">H", 1000))
    assert client.frame() == (0x8, struct.pack(">H", 1000))
    assert client.closed_by_server()
    client.close()
    for garbage in (lambda c: c.send(0x1, b"unmasked", masked=False),
                    lambda c: c.sock.sendall(b"\x81\xff" + b"\x7f" * 8 + b"\0" * 4),  # 9 EB
                    lambda c: c.sock.sendall(b"\x83\x80\0\0\0\0")):  # a reserved opcode
        rude = RawWebSocket(server)
        garbage(rude)
        assert rude.closed_by_server()
        rude.close()


def test_closed_websockets_release_their_descriptors(start) -> None:  # noqa: F811
    server = start()
    process = worker(server)
    first = RawWebSocket(server)  # the broadcaster's own descriptors: selector, wake pair
    with_one = process.num_fds()
    first.close()
    assert eventually(lambda: process.num_fds() < with_one, 5)  # that WebSocket let go
    idle_fds = process.num_fds()
    clients = [RawWebSocket(server) for _ in range(30)]
    assert process.num_fds() >= idle_fds + 25
    for n, client in enumerate(clients):
        if n % 2:
            client.send(0x8, b"")  # a polite close: answered, then dropped
        client.close()
    assert eventually(lambda: process.num_fds() <= idle_fds + 2, 5), (idle_fds,
                                                                       process.num_fds())
