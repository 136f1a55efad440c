"""A run's raw log (its spool, then ``.git/scp/logs/``) read without reading it all.

Events are written one JSON line each, in ``seq`` order, so the line that
follows a given seq is found by binary search on byte offsets (no index file
to keep in step with the writer), and the newest lines are read backwards from
the end. A line cut short by a crash is skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from controlplane.core.output import event_seq, truncation_marker

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    from typing import IO, Any

SCAN_BYTES = 64 * 1024  # below this span the search reads lines one by one
BACK_CHUNK = 256 * 1024  # bytes read at a time from the end


def _line_start(fh: IO[bytes], pos: int) -> int:
    """Offset of the first line starting at or after *pos*."""
    if pos <= 0:
        return 0
    fh.seek(pos - 1)
    fh.readline()
    return fh.tell()


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if event_seq(event) is not None else None


def _first_numbered(fh: IO[bytes], pos: int, end: int) -> tuple[int, dict[str, Any]] | None:
    """(offset, event) of the first numbered line starting in [pos, end), or None."""
    offset = _line_start(fh, pos)
    fh.seek(offset)
    while offset < end:
        line = fh.readline()
        if not line:
            return None
        event = _parse(line)
        if event is not None:
            return offset, event
        offset += len(line)
    return None


def offset_after(fh: IO[bytes], after: int) -> int:
    """Offset of the first line whose seq is above *after* (the file's size if none)."""
    size = os.fstat(fh.fileno()).st_size
    if after <= 0:
        return 0
    low, high = 0, size  # every numbered line starting before *low* has seq <= after
    while high - low > SCAN_BYTES:
        middle = (low + high) // 2
        found = _first_numbered(fh, middle, high)
        if found is None or found[1]["seq"] > after:
            high = middle
        else:
            low = found[0] + 1
    offset = _line_start(fh, low)
    fh.seek(offset)
    for line in iter(fh.readline, b""):
        event = _parse(line)
        if event is not None and event["seq"] > after:
            return offset
        offset += len(line)
    return offset


def iter_events(path: Path, after: int = 0) -> Iterator[dict[str, Any]]:
    """The numbered events above *after*, read lazily from where they start."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - a generator closes it
    except OSError:
        return
    with fh:
        fh.seek(offset_after(fh, after))
        for line in fh:
            if not line.endswith(b"\n"):
                return  # being written: the next read has it whole
            event = _parse(line)
            if event is not None and event["seq"] > after:
                yield event


def _newest_lines(fh: IO[bytes], start: int, count: int) -> list[bytes]:
    """Up to *count* complete lines from the end of the file, not before *start*, in order."""
    end = os.fstat(fh.fileno()).st_size
    fh.seek(end)
    pending = b""
    lines: list[bytes] = []
    position = end
    while position > start and len(lines) <= count:
        step = min(BACK_CHUNK, position - start)
        position -= step
        fh.seek(position)
        pending = fh.read(step) + pending
        parts = pending.split(b"\n")
        pending = parts[0]  # maybe a partial line: completed by the next chunk back
        lines = [line for line in parts[1:] if line] + lines
    if position <= start and pending:
        lines.insert(0, pending)
    if lines and end and _last_byte(fh, end) != b"\n":
        lines.pop()  # the last line is still being written
    return lines


def _last_byte(fh: IO[bytes], end: int) -> bytes:
    fh.seek(end - 1)
    return fh.read(1)


def read_tail(path: Path, after: int, tail: int) -> list[dict[str, Any]]:
    """The events above *after*, or only the newest *tail* of them behind a ``run:truncated``
    marker counting the ones left out; reads only what it returns (plus a search)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return []
    with fh:
        start = offset_after(fh, after)
        events = [e for e in map(_parse, _newest_lines(fh, start, tail + 1))
                  if e is not None and e["seq"] > after]
        first = _first_numbered(fh, start, os.fstat(fh.fileno()).st_size)
    if len(events) <= tail or first is None:
        return events
    kept = events[-tail:]
    first_seq, last_seq = first[1]["seq"], kept[0]["seq"] - 1
    marker = truncation_marker(last_seq - first_seq + 1, first_seq, last_seq, first[1].get("at"))
    return [marker, *kept]
