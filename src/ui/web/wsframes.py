"""WebSocket framing for the broadcaster (RFC 6455): the server's frames and the client's.

The server sends unmasked frames; a client's frames must be masked. Only what the live
feed needs: text frames out, ping/pong/close both ways, data frames from a client read
and ignored. A frame that breaks the rules or is too large raises ``FrameError``.
"""

from __future__ import annotations

import base64
import hashlib

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA
KNOWN_OPCODES = frozenset({0x0, 0x1, 0x2, CLOSE, PING, PONG})
FRAME_LIMIT = 64 * 1024  # a dashboard sends pongs and a close: more in one frame is abuse


class FrameError(ValueError):
    """The client sent something that is not a WebSocket frame we accept: drop it."""


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` answering *key*."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def handshake(key: str) -> bytes:
    """The 101 answer that switches the connection to the WebSocket protocol."""
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n").encode()


def frame(payload: bytes, opcode: int = TEXT) -> bytes:
    """One unmasked, final server frame."""
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, size))
    elif size < 1 << 16:
        head = bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big")
    return head + payload


def close_frame(payload: bytes = b"") -> bytes:
    """The close reply: the client's status code echoed (RFC 6455 5.5.1)."""
    return frame(payload[:2], CLOSE)


def unmask(data: bytes | bytearray, mask: bytes) -> bytes:
    return bytes(b ^ mask[n % 4] for n, b in enumerate(data))


def next_frame(buffer: bytearray) -> tuple[int, bytes] | None:
    """Take the first whole client frame off *buffer*: (opcode, payload), or None if it
    has not all arrived. Data frames' payloads are not unmasked (they are ignored)."""
    if len(buffer) < 2:
        return None
    first, second = buffer[0], buffer[1]
    opcode, size = first & 0x0F, second & 0x7F
    if first & 0x70 or opcode not in KNOWN_OPCODES:
        raise FrameError("reserved bits or opcode")
    if not second & 0x80:
        raise FrameError("an unmasked client frame")
    at = 2
    if size == 126:
        if len(buffer) < 4:
            return None
        size, at = int.from_bytes(buffer[2:4], "big"), 4
    elif size == 127:
        if len(buffer) < 10:
            return None
        size, at = int.from_bytes(buffer[2:10], "big"), 10
    if opcode >= CLOSE and (size > 125 or not first & 0x80):
        raise FrameError("a control frame over 125 bytes or fragmented")
    if size > FRAME_LIMIT:
        raise FrameError("a frame over the size limit")
    end = at + 4 + size
    if len(buffer) < end:
        return None
    mask = bytes(buffer[at:at + 4])
    payload = unmask(buffer[at + 4:end], mask) if opcode >= CLOSE else b""
    del buffer[:end]
    return opcode, payload
