"""One broadcaster thread per worker writes each event, encoded once, to every SSE socket
and every WebSocket.

An SSE stream served by gunicorn sends its headers and first lines from the request's
thread, then hands its connection here and the thread goes back to the pool: a stream
holds no thread. The connection is taken over by duplicating its descriptor and putting
a dead socket in its place (``dup2``), so what gunicorn does next (the closing chunk,
keep-alive, close) acts on the dead one. The broadcaster takes what the bus published
(one receiver for all clients), encodes each batch once, sends it non-blocking, keeps
what a socket did not take, closes a client whose backlog exceeds ``BACKLOG_LIMIT``
(it reconnects with its last id: replay, or ``resync``), notices a client that left
(readable, EOF) and writes a heartbeat comment when idle. A WebSocket is adopted the same
way after its 101: it gets one text frame per event, a ping when idle, and what it sends is
read here (close answered and dropped, ping answered, the rest ignored; garbage or more than
``INBOUND_LIMIT`` bytes drops it). See docs/serving.md.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import selectors
import socket
import threading
import time
from typing import Any

from controlplane.core.events import EventBus, Subscription, parse_event_id
from controlplane.ui.web import wsframes

log = logging.getLogger(__name__)

BACKLOG_LIMIT = 4 * 1024 * 1024  # bytes a client may be behind before it is closed
INBOUND_LIMIT = 1024 * 1024  # bytes a WebSocket client may send in all (pongs, a close)
WS_PING = wsframes.frame(b"", wsframes.PING)


def encode(envelope: dict[str, Any], text: str, websocket: bool) -> bytes:
    """*envelope* (whose JSON is *text*) as an SSE message or a WebSocket text frame."""
    if websocket:
        return wsframes.frame(text.encode())
    return f"id: {envelope['id']}\ndata: {text}\n\n".encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class Client:
    """One adopted SSE connection or WebSocket."""

    def __init__(self, sock: socket.socket, chunked: bool, websocket: bool = False) -> None:
        self.sock, self.chunked, self.websocket = sock, chunked and not websocket, websocket
        self.epoch, self.seq = "", -1
        self.backlog = bytearray()
        self.inbox = bytearray()  # a WebSocket client's frames not yet whole
        self.received = 0

    def wants(self, envelope: dict[str, Any]) -> bool:
        """False for an event this client already got (the replay raced the live feed)."""
        parsed = parse_event_id(envelope["id"])
        if parsed is None or envelope["type"] == "resync":
            return True
        if parsed[0] != self.epoch:
            self.epoch, self.seq = parsed[0], -1
        if parsed[1] <= self.seq:
            return False
        self.seq = parsed[1]
        return True


class Broadcaster:
    """Writes the bus's events to adopted SSE sockets and WebSockets from one thread.
    Thread-safe."""

    def __init__(self, bus: EventBus, heartbeat: float) -> None:
        self.bus, self.heartbeat = bus, heartbeat
        self._incoming: collections.deque[dict[str, Any]] = collections.deque()
        self._adopting: collections.deque[tuple[Client, Subscription]] = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._clients: dict[int, Client] = {}
        self._stop = False
        self._disconnect = bus.connect(self._receive)
        self._thread = threading.Thread(target=self._loop, name="scp-sse-broadcaster",
                                        daemon=True)
        self._thread.start()

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def _receive(self, envelope: dict[str, Any]) -> None:
        """Bus receiver (under the bus lock): queue and wake, nothing more."""
        self._incoming.append(envelope)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def adopt(self, sock: socket.socket, sub: Subscription, chunked: bool,
              websocket: bool = False) -> None:
        """Take over *sock* (its headers or its 101 sent); *sub* holds what it must get first."""
        self._adopting.append((Client(sock, chunked, websocket), sub))
        self._wake()

    def close(self) -> None:
        self._stop = True
        self._disconnect()
        self._wake()
        self._thread.join(timeout=5)

    # -- the thread ------------------------------------------------------------

    def _loop(self) -> None:
        last_write = time.monotonic()
        while not self._stop:
            timeout = max(0.0, last_write + self.heartbeat - time.monotonic())
            for key, mask in self._selector.select(timeout):
                if key.data is None:
                    with contextlib.suppress(BlockingIOError, OSError):
                        while self._wake_r.recv(4096):
                            pass
                elif mask & selectors.EVENT_READ:
                    self._on_readable(key.data)
                elif mask & selectors.EVENT_WRITE:
                    self._flush(key.data)
            while self._adopting:
                self._take(*self._adopting.popleft())
            if self._incoming:
                batch = []
                while self._incoming:
                    batch.append(self._incoming.popleft())
                self._broadcast(batch)
                last_write = time.monotonic()
            elif time.monotonic() >= last_write + self.heartbeat:
                self._send_all(b": heartbeat\n\n", WS_PING)
                last_write = time.monotonic()
        for client in list(self._clients.values()):
            self._drop(client)

    def _take(self, client: Client, sub: Subscription) -> None:
        first = []
        while (envelope := sub.get(timeout=0)) is not None:
            first.append(envelope)
        sub.close()  # from here the broadcaster's own receiver feeds it
        client.sock.setblocking(False)
        self._clients[client.sock.fileno()] = client
        self._selector.register(client.sock, selectors.EVENT_READ, client)
        data = b"".join(encode(e, json.dumps(e), client.websocket)
                        for e in first if client.wants(e))
        if data:
            self._send(client, data)

    def _broadcast(self, batch: list[dict[str, Any]]) -> None:
        texts = [json.dumps(e) for e in batch]  # once per event, for every client
        per_kind: dict[bool, list[bytes]] = {}  # websocket? -> each event's frame

        def frames(websocket: bool) -> list[bytes]:
            if websocket not in per_kind:
                per_kind[websocket] = [encode(e, t, websocket)
                                       for e, t in zip(batch, texts, strict=True)]
            return per_kind[websocket]

        cache: dict[tuple[bool, bool, tuple[int, ...]], bytes] = {}  # (ws, chunked, which)

        def joined(client: Client, wanted: tuple[int, ...]) -> bytes:
            key = (client.websocket, client.chunked, wanted)
            if key not in cache:
                of_kind = frames(client.websocket)
                raw = b"".join(of_kind[n] for n in wanted)
                cache[key] = chunk(raw) if client.chunked else raw
            return cache[key]

        everything = tuple(range(len(batch)))
        ids = [parse_event_id(e["id"]) for e in batch]
        first, last = ids[0], ids[-1]
        plain = False  # the usual batch: one epoch, numbered in order, no resync
        epoch, start, end = "", 0, 0
        if first is not None and last is not None and all(
                e["type"] != "resync" for e in batch) and all(
                i is not None and i[0] == first[0] for i in ids) and \
                [i[1] for i in ids if i] == list(range(first[1], last[1] + 1)):
            plain = True
            epoch, start, end = first[0], first[1], last[1]
        for client in list(self._clients.values()):
            if plain and client.epoch == epoch and client.seq < start:
                client.seq = end  # all of it is new to this client: no check per event
                self._send(client, joined(client, everything), framed=True)
                continue
            wanted = tuple(n for n, e in enumerate(batch) if client.wants(e))
            if wanted:
                self._send(client, joined(client, wanted), framed=True)

    def _send_all(self, text: bytes, ws_frame: bytes) -> None:
        framed = (text, chunk(text))
        for client in list(self._clients.values()):
            data = ws_frame if client.websocket else framed[1 if client.chunked else 0]
            self._send(client, data, framed=True)

    def _send(self, client: Client, data: bytes, framed: bool = False) -> None:
        if client.chunked and not framed:
            data = chunk(data)
        if client.backlog:
            client.backlog += data
            if len(client.backlog) > BACKLOG_LIMIT:
                self._drop(client)  # a slow consumer: it reconnects and resumes or resyncs
            return
        try:
            sent = client.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._drop(client)
            return
        if sent < len(data):
            client.backlog += data[sent:]
            self._selector.modify(client.sock, selectors.EVENT_READ | selectors.EVENT_WRITE,
                                  client)

    def _flush(self, client: Client) -> None:
        try:
            sent = client.sock.send(client.backlog)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client)
            return
        del client.backlog[:sent]
        if not client.backlog:
            self._selector.modify(client.sock, selectors.EVENT_READ, client)

    def _on_readable(self, client: Client) -> None:
        """A client sends nothing on an SSE stream: EOF or an error means it left. A
        WebSocket client's frames are handled."""
        try:
            data = client.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
        elif client.websocket:
            client.received += len(data)
            client.inbox += data
            if client.received > INBOUND_LIMIT:
                self._drop(client)  # a dashboard sends pongs and a close, nothing more
                return
            self._on_frames(client)

    def _on_frames(self, client: Client) -> None:
        """Close: answered, then dropped; ping: pong; anything else ignored."""
        while True:
            try:
                got = wsframes.next_frame(client.inbox)
            except wsframes.FrameError:
                self._drop(client)
                return
            if got is None:
                return
            opcode, payload = got
            if opcode == wsframes.CLOSE:
                if not client.backlog:
                    with contextlib.suppress(OSError):
                        client.sock.send(wsframes.close_frame(payload))
                self._drop(client)
                return
            if opcode == wsframes.PING:
                self._send(client, wsframes.frame(payload, wsframes.PONG), framed=True)
                if client.sock.fileno() not in self._clients:
                    return  # dropped while answering

    def _drop(self, client: Client) -> None:
        if self._clients.pop(client.sock.fileno(), None) is None:
            return
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(client.sock)
        with contextlib.suppress(OSError):
            client.sock.close()


_lock = threading.Lock()
_broadcasters: dict[int, Broadcaster] = {}


def broadcaster_for(bus: EventBus, heartbeat: float) -> Broadcaster:
    """The broadcaster of *bus* (one per bus, so one per worker), started on first use."""
    with _lock:
        found = _broadcasters.get(id(bus))
        if found is None or found.bus is not bus:
            found = _broadcasters[id(bus)] = Broadcaster(bus, heartbeat)
        return found


def detach(sock: socket.socket) -> socket.socket:
    """A socket for *sock*'s connection that the server no longer knows of.

    *sock*'s descriptor is made to point at one end of a closed socket pair: whatever the
    server still writes goes nowhere, and its close does not end the connection.
    """
    ours = socket.socket(fileno=os.dup(sock.fileno()))
    dead, other = socket.socketpair()
    try:
        os.dup2(dead.fileno(), sock.fileno())
    finally:
        dead.close()
        other.close()
    return ours
