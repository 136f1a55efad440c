"""Bounds on what a run keeps in git: head and tail of its events, short lines, small results.

Also what makes text writable: a ``str`` holding a lone surrogate (a file name
from ``os.fsdecode`` that is not UTF-8) has its bad characters shown as
``\\xNN`` (the original byte) or ``\\uDXXX`` before it reaches any writer.
"""

from __future__ import annotations

import json
import re
from collections import deque

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

HEAD_EVENTS = 1_000
TAIL_EVENTS = 1_000
MAX_LINE_CHARS = 8_192
MAX_RESULT_BYTES = 256 * 1024
MAX_EVENTS_BYTES = 4 * 1024 * 1024  # events.jsonl in git, as stored
MARKER_BYTES = 512  # room kept for the truncation marker


_SURROGATE = "[\ud800-\udfff]"  # compiled at first use (~0.4 ms): see has_surrogate


def has_surrogate(text: str) -> bool:
    """Whether *text* holds a lone surrogate: the only code points UTF-8 cannot encode, so
    the encoder (C) answers without the pattern."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _compact(default: Callable[[Any], Any] | None) -> Callable[[Any], str]:
    """``json.dumps(value, ensure_ascii=False, default=default)`` through json's C encoder
    alone: ``dumps`` builds a ``JSONEncoder`` and its ``iterencode`` a closure and the C
    encoder at each call, ~100 steps where a run's record makes a dozen small documents."""
    plain = json.JSONEncoder(ensure_ascii=False, default=default)
    make = getattr(json.encoder, "c_make_encoder", None)  # CPython's _json (not in the stubs)
    if make is None:  # pragma: no cover - an interpreter without _json
        return plain.encode
    refuse = plain.default

    def encode(value: Any) -> str:
        return "".join(make({}, refuse, json.encoder.encode_basestring, None, ": ", ", ",
                            False, False, True)(value, 0))

    return encode


compact_json = _compact(None)  # json.dumps(value, ensure_ascii=False)
_compact_or_str = _compact(str)


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def valid_text(text: str) -> str:
    """*text* if it encodes as UTF-8; else with each lone surrogate written out as an escape.

    ``os.fsdecode(b"report-\\xff.txt")`` becomes ``"report-\\\\xff.txt"``: the byte
    the name really holds, readable, where UTF-8 writers would raise.
    """
    if not has_surrogate(text):
        return text
    return re.sub(_SURROGATE, _shown, text)


def valid_obj(value: Any) -> Any:
    """*value* (JSON-like) with every string, key or value, made valid by ``valid_text``.

    Returns *value* itself when nothing needed it (the common case, checked at C speed).
    """
    try:
        if not has_surrogate(_compact_or_str(value)):
            return value
    except (TypeError, ValueError):  # keys JSON cannot hold, cycles: walk it
        pass
    return _valid(value)


def _valid(value: Any) -> Any:
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, dict):
        return {_valid(k): _valid(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_valid(v) for v in value)
    return value


def clip_line(line: str, limit: int = MAX_LINE_CHARS) -> str:
    """A line (made valid UTF-8) cut to *limit* characters, saying how much it lost."""
    line = valid_text(line)
    if len(line) <= limit:
        return line
    return f"{line[:limit]}… [{len(line) - limit} characters cut]"


def stored_size(event: dict[str, Any]) -> int:
    """Bytes *event* takes as a line of events.jsonl (a control character costs 6)."""
    return len(compact_json(event).encode()) + 1


def cap_events(events: list[dict[str, Any]] | EventLog, head: int = HEAD_EVENTS,
               tail: int = TAIL_EVENTS, max_bytes: int = MAX_EVENTS_BYTES,
               ) -> tuple[list[dict[str, Any]], int]:
    """The first *head* and last *tail* events with a marker between, in at most *max_bytes*
    as stored; returns (events, omitted)."""
    if isinstance(events, EventLog):
        return events.capped()
    log = EventLog(head, tail, max_bytes)
    for event in events:
        log.append(event)
    return log.capped()


class EventLog:
    """A run's events in memory as the ledger keeps them: the head, a rolling tail.

    Bounded twice: *head* and *tail* events, and *max_bytes* as stored (half for
    the head, the rest for the tail and the marker), so a run of 6-byte control
    characters cannot put more in git than one of plain text.
    ``len()`` counts every event appended (the next event's seq is ``len() + 1``);
    memory stays bounded however long the run (the spool on disk has them all).
    Not thread-safe: the run appends under its own lock.
    """

    def __init__(self, head: int = HEAD_EVENTS, tail: int = TAIL_EVENTS,
                 max_bytes: int = MAX_EVENTS_BYTES) -> None:
        self.head_size = head
        self.tail_size = tail
        self.head_limit = max_bytes // 2
        self.tail_limit = max_bytes - self.head_limit - MARKER_BYTES
        self.head: list[dict[str, Any]] = []
        self.head_bytes = 0
        self.tail: deque[tuple[dict[str, Any], int]] = deque()
        self.tail_bytes = 0
        self.count = 0
        self.omitted = 0
        self._first_omitted: dict[str, Any] | None = None
        self._last_omitted_seq = 0

    def __len__(self) -> int:
        return self.count

    def append(self, event: dict[str, Any]) -> None:
        self.count += 1
        size = stored_size(event)
        if not self.tail and len(self.head) < self.head_size \
                and self.head_bytes + size <= self.head_limit:
            self.head.append(event)
            self.head_bytes += size
            return
        self.tail.append((event, size))
        self.tail_bytes += size
        while len(self.tail) > 1 and (len(self.tail) > self.tail_size
                                      or self.tail_bytes > self.tail_limit):
            dropped, dropped_size = self.tail.popleft()  # the oldest of the tail falls out
            self.tail_bytes -= dropped_size
            self._first_omitted = self._first_omitted or dropped
            self._last_omitted_seq = dropped["seq"]
            self.omitted += 1

    def capped(self) -> tuple[list[dict[str, Any]], int]:
        """What the ledger keeps of every event appended: (events, omitted)."""
        tail = [event for event, _ in self.tail]
        if self._first_omitted is None:
            return [*self.head, *tail], 0
        first = self._first_omitted
        marker = truncation_marker(self.omitted, first["seq"], self._last_omitted_seq,
                                    first.get("at"))
        return [*self.head, marker, *tail], self.omitted


def truncation_marker(omitted: int, first: int, last: int, at: Any) -> dict[str, Any]:
    return {"seq": first, "type": "run:truncated", "at": at,
            "data": {"omitted_events": omitted, "first_omitted_seq": first,
                     "last_omitted_seq": last, "raw_log": "kept locally under .git/scp/logs/"}}


def event_seq(event: Any) -> int | None:
    """The event's per-run number, or None for something that is not a numbered event."""
    if not isinstance(event, dict):
        return None
    seq = event.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def events_after(events: list[Any], after: int) -> list[dict[str, Any]]:
    """The numbered events above *after*; a truncation marker that still hides some is kept.

    A reader that saw lines inside the omitted range must still be told of the
    gap that follows them: the marker is renumbered to ``after + 1`` with the
    count of what it hides from there.
    """
    kept = []
    for event in events:
        seq = event_seq(event)
        if seq is None:
            continue
        if seq > after:
            kept.append(event)
            continue
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        last = data.get("last_omitted_seq")
        if event.get("type") == "run:truncated" and isinstance(last, int) and last > after:
            kept.append({**event, "seq": after + 1, "data": {
                **data, "first_omitted_seq": after + 1, "omitted_events": last - after}})
    return kept


def bound_result(result: dict[str, Any], limit: int = MAX_RESULT_BYTES) -> dict[str, Any]:
    """*result* if its JSON fits in *limit* bytes, else a preview that says it was cut."""
    text = json.dumps(valid_obj(result), ensure_ascii=False,
                      default=lambda value: valid_text(str(value)))
    if len(text.encode()) <= limit:
        return json.loads(text)
    return {"truncated": True, "bytes": len(text.encode()), "preview": text[: limit // 2]}
