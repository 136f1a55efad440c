"""Live events: SSE at ``/api/events``, a WebSocket at ``/ws/events`` and polling at
``/api/events/poll``, the same envelopes.

A client resumes with the last id it saw (``Last-Event-ID`` or
``?last_event_id=``): it gets what it missed once, in order, or ``resync``
when the id is of another epoch (the server restarted) or too old. A slow
client is dropped from the bus (its queue is bounded) and told to resync; it
never slows a run or another client. Under gunicorn neither an SSE stream nor a WebSocket
holds a thread: one broadcaster per worker writes to all of them (``broadcast.py``). Under
another server (tests, flask run) each holds a thread (a WebSocket two, simple-websocket's).
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator

from flask import Blueprint, Response, current_app, jsonify, request
from simple_websocket import ConnectionClosed, Server

from controlplane.core.descriptors import stream_refusal
from controlplane.core.events import Subscription
from controlplane.ui.web.broadcast import Broadcaster, broadcaster_for, detach
from controlplane.ui.web.errors import error_response
from controlplane.ui.web.state import state
from controlplane.ui.web.wsframes import handshake

bp = Blueprint("api_events", __name__)

HEARTBEAT_SECONDS = 15.0
RETRY_MS = 2000
MAX_BATCH = 64  # envelopes written at once when a client fell behind a burst


_frames: dict[tuple, str] = {}  # envelope -> its JSON, encoded once for every client


def encoded(envelope: dict) -> str:
    """The envelope as JSON, encoded once however many clients send it (bounded cache).

    Keyed by more than the id: two apps' buses in one process may share an id.
    """
    key = (envelope["id"], envelope["type"], envelope.get("run_id"), envelope.get("at"))
    text = _frames.get(key)
    if text is None:
        text = json.dumps(envelope)
        if len(_frames) > 1024:
            _frames.clear()
        _frames[key] = text
    return text


def resume_id() -> str | None:
    return (request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
            or None)


def pending(sub: Subscription, first: dict) -> list[dict]:
    """*first* and what else is already queued (up to MAX_BATCH): one write for a burst."""
    batch = [first]
    while len(batch) < MAX_BATCH and batch[-1]["type"] != "resync":
        more = sub.get(timeout=0)
        if more is None:
            break
        batch.append(more)
    return batch


def sse_frames(sub: Subscription, heartbeat: float) -> Iterator[str]:
    """SSE text for each envelope, a comment when idle (so a dead client is noticed)."""
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        while True:
            envelope = sub.get(timeout=heartbeat)
            if envelope is None:
                if sub.closed:
                    return
                yield ": heartbeat\n\n"
                continue
            batch = pending(sub, envelope)
            yield "".join(f"id: {e['id']}\ndata: {encoded(e)}\n\n" for e in batch)
            if batch[-1]["type"] == "resync" and sub.overflowed:
                return  # dropped for being slow: the client reconnects and reloads
    finally:
        sub.close()


STREAM_ENDPOINTS = ("events_sse", "events_ws")


@bp.get("/api/events")
def events_sse() -> Response:
    bus = state().bus
    heartbeat = current_app.config.get("SSE_HEARTBEAT", HEARTBEAT_SECONDS)
    sock = request.environ.get("gunicorn.socket")
    if sock is not None and request.method == "GET" \
            and current_app.config.get("SSE_BROADCAST", True):  # HEAD: no body to hand over
        broadcaster = broadcaster_for(bus, heartbeat)  # on the bus before the subscription
        chunked = request.environ.get("SERVER_PROTOCOL") == "HTTP/1.1"
        frames = handed_over(bus.subscribe(resume_id()), broadcaster, sock, chunked)
    else:  # another server (tests, flask run): one thread per stream
        frames = sse_frames(bus.subscribe(resume_id()), heartbeat)
    return Response(frames, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def handed_over(sub: Subscription, broadcaster: Broadcaster, sock: socket.socket,
                chunked: bool) -> Iterator[str]:
    """The first lines from this thread (gunicorn sends the headers with them), then the
    connection goes to the broadcaster and this thread back to the pool."""
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
    except GeneratorExit:
        sub.close()
        raise
    broadcaster.adopt(detach(sock), sub, chunked)


POLL_LIMIT = 200  # envelopes one poll answers at most; ``more: true`` says ask again at once


@bp.get("/api/events/poll")
def events_poll() -> Response:
    """The envelopes after ``?last_event_id=`` as JSON: the fallback where no stream gets
    through. Without an id: none, and the id to poll from. An unknown or too old id:
    ``resync`` (as on the streams) and the id to go on from."""
    bus = state().bus
    raw_limit = request.args.get("limit", str(POLL_LIMIT))
    if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit) <= POLL_LIMIT:
        return error_response(400, "bad_limit", f"limit must be a number from 1 to {POLL_LIMIT}")
    limit = int(raw_limit)
    last = request.args.get("last_event_id") or None
    head = bus.last_id  # read before the replay: nothing published meanwhile is skipped
    missed = bus.since(last)
    if missed is None:
        events = [bus.make_envelope("resync", {"reason": "unknown_event_id"})]
        body = {"events": events, "last_event_id": head, "more": False}
    elif last is None:
        body = {"events": [], "last_event_id": head, "more": False}
    else:
        events = missed[:limit]
        body = {"events": events, "last_event_id": events[-1]["id"] if events else last,
                "more": len(missed) > limit}
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.before_request
def refuse_streams_past_the_limit() -> Response | None:
    """A stream (SSE, or a WebSocket before its upgrade) holds a descriptor: past the limit
    it is refused 503, keeping descriptors for everything else."""
    if (request.endpoint or "").rpartition(".")[2] not in STREAM_ENDPOINTS:  # nested names
        return None
    refusal = stream_refusal()
    return error_response(503, "too_many_streams", refusal) if refusal else None


class HandledResponse(Response):
    """What a view returns once the connection is no longer the server's: gunicorn closes
    its (dead) socket on StopIteration, werkzeug writes a response nobody reads."""

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def, override]
        if "gunicorn.socket" in environ:
            raise StopIteration()
        return super().__call__(environ, start_response)


def websocket_key() -> str | Response:
    """The handshake's ``Sec-WebSocket-Key``, or the 400 naming what is wrong."""
    if request.headers.get("Sec-WebSocket-Version") != "13":
        return error_response(400, "bad_websocket_handshake",
                              "Sec-WebSocket-Version must be 13")
    key = request.headers.get("Sec-WebSocket-Key", "")
    if len(key) != 24 or not key.endswith("=="):
        return error_response(400, "bad_websocket_handshake",
                              "Sec-WebSocket-Key must be 16 base64-encoded bytes")
    return key


@bp.get("/ws/events", websocket=True)
def events_ws() -> Response:
    """The same envelopes over a WebSocket; resume with ``?last_event_id=``."""
    bus = state().bus
    heartbeat = current_app.config.get("SSE_HEARTBEAT", HEARTBEAT_SECONDS)
    sock = request.environ.get("gunicorn.socket")
    if sock is None or not current_app.config.get("SSE_BROADCAST", True):
        return websocket_thread(heartbeat)
    key = websocket_key()
    if isinstance(key, Response):
        return key
    broadcaster = broadcaster_for(bus, heartbeat)  # on the bus before the subscription
    sub = bus.subscribe(resume_id())
    try:
        sock.sendall(handshake(key))
    except OSError:
        sub.close()
        raise
    broadcaster.adopt(detach(sock), sub, chunked=False, websocket=True)
    return HandledResponse()


def websocket_thread(heartbeat: float) -> Response:
    """Another server (tests, flask run): simple-websocket, a thread for the WebSocket's life."""
    ws = Server(request.environ)
    try:
        with state().bus.subscribe(resume_id()) as sub:
            while ws.connected:
                envelope = sub.get(timeout=heartbeat)
                if envelope is None:
                    if sub.closed:
                        break
                    continue
                ws.send(encoded(envelope))
                if envelope["type"] == "resync" and sub.overflowed:
                    break
    except ConnectionClosed:
        pass
    with contextlib.suppress(Exception):
        ws.close()
    return HandledResponse()
