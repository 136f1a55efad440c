"""A gthread worker whose threads never wait for a client to finish sending its request.

gunicorn's gthread worker hands each accepted connection to a thread, which then
blocks reading the request: a few hundred half-sent requests (slowloris) hold
every thread and the server answers nobody. Here the worker's event loop reads
each request without blocking, buffering it until its header block and its body
are complete, and only then hands the connection to the thread pool with the
parser pre-filled, so a thread never reads from the socket for the request.
Kept-alive connections come back to the same loop. See docs/serving.md.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import selectors
import socket
import time
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

log = logging.getLogger(__name__)

HEADER_LIMIT = 64 * 1024  # request line + headers; more is answered 431
BODY_LIMIT = 1024 * 1024  # the app's MAX_CONTENT_LENGTH; more is answered 413
BODY_BUDGET = 256 * 1024 * 1024  # all bodies being buffered at once; more is answered 503
UPLOAD_LINE = b"POST /api/backups/upload "  # a backup archive: up to the whole budget (the
UPLOAD_LIMIT = BODY_BUDGET  # app refuses beyond its backup_upload_max_bytes setting)
REQUEST_SECONDS = 30.0  # a request must be complete this long after its first byte (or accept)
REQUEST_SECONDS_ENV = "CONTROLPLANE_REQUEST_SECONDS"  # overrides it (tests, slow networks)
ACCEPT_PAUSE_SECONDS = 0.5  # out of file descriptors: stop accepting this long
READ_SIZE = 65536
REFUSE_DRAIN_READS = 16  # before closing a refused request, read up to 1 MiB it already sent
STOP_LINGER_SECONDS = 2.0  # a stopping worker gives a request being read this long

HEADER_END = b"\r\n\r\n"
CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?")
DIGITS = re.compile(rb"[0-9]+")


class Incomplete(Exception):
    """Not all of the request has arrived yet."""


class Refused(Exception):
    """The request is answered from the loop with *status* and closed."""

    def __init__(self, status: int, reason: str, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.code, self.message = status, reason, code, message

    def answer(self) -> bytes:
        body = json.dumps({"error": self.code, "message": self.message}).encode()
        return (f"HTTP/1.1 {self.status} {self.reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


class BufferedConn(TConn):
    """A connection with the bytes the loop has read of its next request."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any) -> None:
        super().__init__(cfg, sock, client, server)
        self.prefill = b""  # handed to the parser when the thread creates it
        self.reset(b"", 0.0)

    def init(self) -> None:
        super().init()
        if self.prefill and self.parser is not None:
            self.parser.unreader.unread(self.prefill)
            self.prefill = b""

    def reset(self, leftover: bytes, deadline: float) -> None:
        """Start reading the next request, *leftover* being what was read ahead of it."""
        self.inbox = bytearray(leftover)
        self.deadline = deadline
        self.scanned = 0  # inbox[:scanned] holds no end of the header block
        self.header_end = -1  # index just past the blank line, once seen
        self.body_end = -1  # index just past the body, once known
        self.chunked_at = -1  # chunked body: where the next chunk starts
        self.counted = 0  # body bytes counted in the worker's budget


def header_fields(head: bytes) -> dict[bytes, list[bytes]]:
    """The header block's fields by lower-cased name (request line skipped); values stripped."""
    fields: dict[bytes, list[bytes]] = {}
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            fields.setdefault(name.strip().lower(), []).append(value.strip())
    return fields


def scan_chunks(data: bytearray, at: int, start: int) -> tuple[int, bool]:
    """Walk the whole chunks of a chunked body from *at*: (where to go on, whether it ended).

    *start* is where the body began (for the size limit). ``ValueError`` means
    malformed: gunicorn's parser answers that, so the request is handed on as it is.
    """
    while True:
        eol = data.find(b"\r\n", at)
        if eol < 0:
            return at, False
        size_line = CHUNK_SIZE_LINE.fullmatch(bytes(data[at:eol]))
        if size_line is None:
            raise ValueError("bad chunk size line")
        size = int(size_line.group(1), 16)
        if size == 0:  # trailer fields, then a blank line
            if data[eol + 2:eol + 4] == b"\r\n":
                return eol + 4, True
            end = data.find(HEADER_END, eol + 2)
            return (end + 4, True) if end >= 0 else (at, False)
        if eol + 2 + size - start > BODY_LIMIT:
            raise Refused(413, "Content Too Large", "request_entity_too_large",
                          f"the chunked body is over the {BODY_LIMIT}-byte limit")
        if len(data) < eol + 2 + size + 2:
            return at, False
        if data[eol + 2 + size:eol + 4 + size] != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
        at = eol + 4 + size


def request_seconds() -> float:
    """The request deadline: REQUEST_SECONDS, or the environment's positive number."""
    value = os.environ.get(REQUEST_SECONDS_ENV, "")
    try:
        seconds = float(value) if value else REQUEST_SECONDS
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < 86400:
        log.warning("%s=%r is not a number of seconds: using %g", REQUEST_SECONDS_ENV, value,
                    REQUEST_SECONDS)
        return REQUEST_SECONDS
    return seconds


def too_many_header_bytes() -> Refused:
    return Refused(431, "Request Header Fields Too Large", "headers_too_large",
                   f"the request line and headers are over the {HEADER_LIMIT}-byte limit")


class BufferingThreadWorker(ThreadWorker):
    """gthread, but the event loop reads each request whole before a thread serves it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading: dict[BufferedConn, None] = {}  # insertion-ordered set
        self.body_bytes = 0  # bytes of bodies being buffered, all connections
        self.accept_paused_until = 0.0
        self.stop_deadline: float | None = None
        self.request_seconds = request_seconds()

    # -- accepting -------------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                log.warning("out of file descriptors or memory: not accepting for %.1f s "
                            "(raise `ulimit -n` or lower the load)", ACCEPT_PAUSE_SECONDS)
                self.accept_paused_until = time.monotonic() + ACCEPT_PAUSE_SECONDS
                self.set_accept_enabled(False)
            elif e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = BufferedConn(self.cfg, client_sock, client_addr, listener.getsockname())
        self.start_reading(conn, b"", time.monotonic() + self.request_seconds)

    def set_accept_enabled(self, enabled: bool) -> None:
        if enabled and time.monotonic() < self.accept_paused_until:
            return
        super().set_accept_enabled(enabled)

    # -- reading in the loop -----------------------------------------------------

    def start_reading(self, conn: BufferedConn, leftover: bytes, deadline: float) -> None:
        """Read *conn*'s next request in the loop (*leftover*: bytes already read of it)."""
        conn.sock.setblocking(False)
        if leftover:
            deadline = time.monotonic() + self.request_seconds
        conn.reset(leftover, deadline)
        self.reading[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_readable, conn))
        if leftover:
            self.progress(conn)

    def on_readable(self, conn: BufferedConn, _sock: Any) -> None:
        try:
            data = conn.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away
            self.drop(conn)
            return
        if conn.initialized and not conn.inbox:  # kept alive: the request's clock starts now
            conn.deadline = time.monotonic() + self.request_seconds
        conn.inbox += data
        self.progress(conn)

    def progress(self, conn: BufferedConn) -> None:
        """Hand *conn* to a thread once its request is whole; refuse what cannot be served."""
        try:
            whole = self.request_complete(conn)
            if conn.header_end >= 0 and conn.body_end != conn.header_end:
                counted = len(conn.inbox) - conn.header_end
                self.body_bytes += counted - conn.counted
                conn.counted = counted
                if not whole and self.body_bytes > BODY_BUDGET:
                    raise Refused(503, "Service Unavailable", "busy",
                                  "too many request bodies are being received; retry shortly")
            if whole:
                self.hand_over(conn)
        except Refused as refusal:
            self.refuse(conn, refusal)

    def request_complete(self, conn: BufferedConn) -> bool:
        """True when the buffered request is whole, or malformed (gunicorn answers that)."""
        data = conn.inbox
        if conn.header_end < 0:
            end = data.find(HEADER_END, max(0, conn.scanned - 3))
            if end < 0:
                bare_lf = data.count(b"\n", conn.scanned) != \
                    data.count(b"\r\n", max(0, conn.scanned - 1))
                conn.scanned = len(data)
                if len(data) > HEADER_LIMIT:
                    raise too_many_header_bytes()
                return bare_lf  # gunicorn refuses a bare LF
            conn.header_end = end + 4
            if conn.header_end > HEADER_LIMIT:
                raise too_many_header_bytes()
            if not self.plan_body(conn):
                return True
        if conn.chunked_at >= 0 and conn.body_end < 0:
            try:
                conn.chunked_at, ended = scan_chunks(data, conn.chunked_at, conn.header_end)
            except ValueError:
                return True
            if not ended:
                if len(data) - conn.header_end > BODY_LIMIT + HEADER_LIMIT:  # endless trailers
                    raise Refused(413, "Content Too Large", "request_entity_too_large",
                                  f"the chunked body is over the {BODY_LIMIT}-byte limit")
                return False
            conn.body_end = conn.chunked_at
        return len(data) >= conn.body_end

    def plan_body(self, conn: BufferedConn) -> bool:
        """Read the header fields that frame the body; False: gunicorn decides (malformed)."""
        head = bytes(conn.inbox[:conn.header_end - 4]).lstrip(b"\r\n")
        fields = header_fields(head)
        lengths = fields.get(b"content-length", [])
        codings = b",".join(fields.get(b"transfer-encoding", [])).lower().replace(b" ", b"")
        if codings:
            if lengths or not codings.endswith(b"chunked"):
                return False
            conn.chunked_at = conn.header_end
        elif lengths:
            if len(lengths) > 1 or not DIGITS.fullmatch(lengths[0]):
                return False
            length = int(lengths[0])
            limit = UPLOAD_LIMIT if head.startswith(UPLOAD_LINE) else BODY_LIMIT
            if length > limit:
                raise Refused(413, "Content Too Large", "request_entity_too_large",
                              f"Content-Length {length} is over the {limit}-byte limit")
            conn.body_end = conn.header_end + length
        else:
            conn.body_end = conn.header_end
        expects = b",".join(fields.get(b"expect", [])).strip().lower()
        version = head.split(b"\r\n", 1)[0].rpartition(b" ")[2]
        if conn.body_end != conn.header_end and expects == b"100-continue" \
                and version != b"HTTP/1.0" and len(conn.inbox) == conn.header_end:
            self.send_quietly(conn, b"HTTP/1.1 100 Continue\r\n\r\n")  # else it waits for it
        return True

    def hand_over(self, conn: BufferedConn) -> None:
        """The request is in: a thread serves it, reading only what the loop buffered."""
        self.stop_reading(conn)
        data = bytes(conn.inbox)
        conn.inbox = bytearray()
        conn.data_ready = True
        if conn.initialized:  # kept alive: its parser exists
            conn.parser.unreader.unread(data)
        else:
            conn.prefill = data
        self.enqueue_req(conn)

    def refuse(self, conn: BufferedConn, refusal: Refused) -> None:
        """Answer and close; what already arrived is read first, so no reset loses the answer."""
        self.send_quietly(conn, refusal.answer())
        with contextlib.suppress(OSError):
            for _ in range(REFUSE_DRAIN_READS):
                if not conn.sock.recv(READ_SIZE):
                    break
        self.drop(conn)

    @staticmethod
    def send_quietly(conn: BufferedConn, data: bytes) -> None:
        """Best effort, never blocking: a short answer fits the socket's send buffer."""
        with contextlib.suppress(OSError):
            conn.sock.send(data)

    def stop_reading(self, conn: BufferedConn) -> None:
        self.reading.pop(conn, None)
        self.body_bytes -= conn.counted
        conn.counted = 0
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def drop(self, conn: BufferedConn) -> None:
        self.stop_reading(conn)
        self.nr_conns -= 1
        conn.close()

    def expire_reading(self) -> None:
        """Close the connections whose request did not arrive in time."""
        now = time.monotonic()
        stop_deadline: float | None = None  # set once this worker stops
        if not self.alive:
            if self.stop_deadline is None:
                self.stop_deadline = now + STOP_LINGER_SECONDS
            stop_deadline = self.stop_deadline
        for conn in list(self.reading):
            idle = not conn.inbox
            if stop_deadline is not None and (idle or now >= stop_deadline):
                self.drop(conn)
            elif now >= conn.deadline:
                if not idle:
                    self.send_quietly(conn, Refused(
                        408, "Request Timeout", "request_timeout",
                        f"the request was not complete within {self.request_seconds:g} s").answer())
                self.drop(conn)

    def murder_pending(self) -> None:  # called by the loop about once a second
        super().murder_pending()
        self.expire_reading()

    # -- after a request -----------------------------------------------------------

    def finish_request(self, conn: BufferedConn, fs: futures.Future) -> None:  # type: ignore[override]
        """Main loop: a kept-alive connection goes back to reading; others are closed."""
        try:
            keep = bool(fs.result()) if not fs.cancelled() else False
        except Exception:
            keep = False
        if not keep:
            self.nr_conns -= 1
            with contextlib.suppress(OSError):
                conn.close(graceful=True)
            return
        try:
            leftover = conn.parser.unreader.take_buffered()  # a pipelined next request
            idle_limit = self.cfg.keepalive if self.alive else STOP_LINGER_SECONDS
            self.start_reading(conn, leftover, time.monotonic() + idle_limit)
        except Exception:
            log.exception("could not keep a connection alive")
            self.nr_conns -= 1
            conn.close()
