"""Bounds on what a run keeps in git: head and tail of its events, short lines, small results.

Also what makes text writable: a ``str`` holding a lone surrogate (a file name
from ``os.fsdecode`` that is not UTF-8) has its bad characters shown as
``\\xNN`` (the original byte) or ``\\uDXXX`` before it reaches any writer.
"""

from __future__ import annotations

import json
import re
from collections import deque
from typing import Any

HEAD_EVENTS = 1_000
TAIL_EVENTS = 1_000
MAX_LINE_CHARS = 8_192
MAX_RESULT_BYTES = 256 * 1024


_SURROGATE = re.compile("[\ud800-\udfff]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def valid_text(text: str) -> str:
    """*text* if it encodes as UTF-8; else with each lone surrogate written out as an escape.

    ``os.fsdecode(b"report-\\xff.txt")`` becomes ``"report-\\\\xff.txt"``: the byte
    the name really holds, readable, where UTF-8 writers would raise.
    """
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return _SURROGATE.sub(_shown, text)


def valid_obj(value: Any) -> Any:
    """*value* (JSON-like) with every string, key or value, made valid by ``valid_text``.

    Returns *value* itself when nothing needed it (the common case, checked at C speed).
    """
    try:
        if not _SURROGATE.search(json.dumps(value, ensure_ascii=False, default=str)):
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


def cap_events(events: list[dict[str, Any]] | EventLog, head: int = HEAD_EVENTS,
               tail: int = TAIL_EVENTS) -> tuple[list[dict[str, Any]], int]:
    """The first *head* and last *tail* events with a marker between; returns (events, omitted)."""
    if isinstance(events, EventLog):
        return events.capped()
    if len(events) <= head + tail:
        return events, 0
    omitted = len(events) - head - tail
    marker = _truncation_marker(omitted, events[head]["seq"], events[-tail - 1]["seq"],
                                events[head].get("at"))
    return [*events[:head], marker, *events[-tail:]], omitted


class EventLog:
    """A run's events in memory as ``cap_events`` would keep them: the head, a rolling tail.

    ``len()`` counts every event appended (the next event's seq is ``len() + 1``);
    memory stays bounded however long the run (the spool on disk has them all).
    Not thread-safe: the run appends under its own lock.
    """

    def __init__(self, head: int = HEAD_EVENTS, tail: int = TAIL_EVENTS) -> None:
        self.head_size = head
        self.head: list[dict[str, Any]] = []
        self.tail: deque[dict[str, Any]] = deque(maxlen=tail)
        self.count = 0
        self.omitted = 0
        self._first_omitted: dict[str, Any] | None = None
        self._last_omitted_seq = 0

    def __len__(self) -> int:
        return self.count

    def append(self, event: dict[str, Any]) -> None:
        self.count += 1
        if len(self.head) < self.head_size:
            self.head.append(event)
            return
        if len(self.tail) == self.tail.maxlen:  # the oldest of the tail falls out
            dropped = self.tail[0]
            self._first_omitted = self._first_omitted or dropped
            self._last_omitted_seq = dropped["seq"]
            self.omitted += 1
        self.tail.append(event)

    def capped(self) -> tuple[list[dict[str, Any]], int]:
        """What ``cap_events`` gives for every event appended: (events, omitted)."""
        if self._first_omitted is None:
            return [*self.head, *self.tail], 0
        first = self._first_omitted
        marker = _truncation_marker(self.omitted, first["seq"], self._last_omitted_seq,
                                    first.get("at"))
        return [*self.head, marker, *self.tail], self.omitted


def _truncation_marker(omitted: int, first: int, last: int, at: Any) -> dict[str, Any]:
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
