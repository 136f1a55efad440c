"""The Run model: statuses, the RUN_TYPES taxonomy, run ids and run.json (schema 1).

A reader keeps the fields it does not know (``Run.extra``) and writes them back,
so a run.json written by a newer version survives a round trip through this one.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from datetime import UTC, datetime

from controlplane.core.output import valid_obj
from controlplane.core.plain_data import field, field_names, plain_data
from controlplane.core.run_names import RUN_TYPES, RunStatus

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    from typing import Any

SCHEMA = 1

ACTOR_KINDS = ("web", "script", "cli", "ingest", "api", "demo")  # demo: the simulator

_SUBTYPE_DETAIL = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}\Z")
RUN_ID_PATTERN = re.compile(r"^\d{8}T\d{9}Z-[0-9a-f]{8}\Z", re.ASCII)  # \d: 0-9 only


def check_subtype(run_type: str, subtype: str) -> None:
    """Raise ValueError naming the culprit unless *subtype* is ``<run_type>:<detail>``."""
    if run_type not in RUN_TYPES:
        raise ValueError(f"unknown run type {run_type!r}; expected one of {', '.join(RUN_TYPES)}")
    head, sep, detail = subtype.partition(":") if isinstance(subtype, str) else ("", "", "")
    if not sep or head != run_type or not _SUBTYPE_DETAIL.match(detail):
        raise ValueError(
            f"malformed subtype {subtype!r}: expected '{run_type}:<detail>' "
            "with a detail of lowercase letters, digits, '_', '.' or '-'"
        )


def type_of(subtype: str) -> str:
    """The run type of a subtype (the part before ':'), checked against RUN_TYPES."""
    run_type = subtype.partition(":")[0]
    check_subtype(run_type, subtype)
    return run_type


_id_lock = threading.Lock()
_last_ms = 0


def new_run_id(now: float | None = None) -> str:
    """A run id: UTC start time to the millisecond plus 32 random bits.

    Ids sort by start time; the random part makes them unique across processes
    and machines. Within one process ids are also strictly increasing.
    """
    global _last_ms
    with _id_lock:
        ms = int((time.time() if now is None else now) * 1000)
        if now is None:
            ms = max(ms, _last_ms + 1)
            _last_ms = ms
    stamp = datetime.fromtimestamp(ms / 1000, UTC)
    return f"{stamp:%Y%m%dT%H%M%S}{ms % 1000:03d}Z-{os.urandom(4).hex()}"


_STAMP = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})", re.ASCII)


def run_id_time(run_id: str) -> datetime:
    """The start time encoded in a run id (not strptime: its import costs every exec)."""
    stamp = _STAMP.match(run_id)
    if stamp is None:
        raise ValueError(f"time data {run_id[:18]!r} is not a run id's")
    year, month, day, hour, minute, second, ms = map(int, stamp.groups())
    return datetime(year, month, day, hour, minute, second, ms * 1000, tzinfo=UTC)


def is_run_id(value: str) -> bool:
    return bool(RUN_ID_PATTERN.match(value or ""))


def names_run(part: str, run_id: str) -> bool:
    """True when *part* (not empty) is the start of *run_id* or of its random tail (after
    the ``-``), in either case: what a person copies of an id (its time, the dashboard's
    tail). ``RunIndex.ids_like`` asks the index the same (SQLite's ``LIKE`` ignores ASCII
    case; ids are ASCII)."""
    part, run_id = part.lower(), run_id.lower()
    return bool(part) and (run_id.startswith(part) or f"-{part}" in run_id)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    """ISO 8601 UTC with milliseconds and a Z, or None."""
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def default_host() -> str:
    """This machine's name: gethostname(2), read as ``uname`` (Linux's gethostname is the
    node name; importing ``socket`` for it cost every command ~3 ms of start-up)."""
    return os.uname().nodename


@plain_data
class Run:
    """One recorded action. Serialises to run.json schema 1 with ``to_dict``."""

    run_id: str
    type: str
    subtype: str
    status: RunStatus = RunStatus.RUNNING
    summary: str = ""
    started_at: str | None = None
    ended_at: str | None = None
    duration_ms: int | None = None
    actor: dict[str, Any] = field(default_factory=dict)
    code_ref: dict[str, Any] = field(default_factory=dict)
    target: dict[str, Any] = field(default_factory=dict)
    host: str = field(default_factory=default_host)
    params: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    parent_run_id: str | None = None
    rerun_of: str | None = None
    action: str | None = None  # the action route that started it (None: a script, exec, ingest)
    events: int = 0
    schema: int = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)

    __plain_checked__ = ("summary", "error")  # the fields __setattr__ makes valid

    def __setattr__(self, name: str, value: Any) -> None:
        # what code inside a run sets may hold a lone surrogate (an os.fsdecode'd file name):
        # made valid here, it reaches the spool, the journal and the bus as UTF-8
        if name in _VALID_ON_SET:
            value = valid_obj(value)
        object.__setattr__(self, name, value)

    @classmethod
    def new(cls, subtype: str, **values: Any) -> Run:
        """A fresh running run of *subtype*, started now."""
        run_type = type_of(subtype)
        run_id = values.pop("run_id", None) or new_run_id()
        return cls(
            run_id=run_id, type=run_type, subtype=subtype, started_at=iso(run_id_time(run_id)),
            **values,
        )

    @property
    def started(self) -> datetime:
        return parse_iso(self.started_at) or run_id_time(self.run_id)

    def finish(self, status: RunStatus, error: dict[str, Any] | None = None) -> None:
        """Set the final status, end time and duration."""
        ended = utc_now()
        self.status = RunStatus(status)
        if error is not None:
            self.error = error
        self.ended_at = iso(ended)
        self.duration_ms = max(0, int((ended - self.started).total_seconds() * 1000))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.extra)
        held = self.__dict__  # the fields, as __init__ and __setattr__ stored them
        for name in _SERIALISED:
            data[name] = held[name]
        data["status"] = str(self.status)
        return valid_obj(data)  # params, result, artifacts… are written as UTF-8

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        """Read a run.json dict, keeping unknown fields; raises ValueError if unusable."""
        if not isinstance(data, dict):
            raise ValueError("run.json is not an object")
        known = set(field_names(cls)) - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        missing = [k for k in ("run_id", "type", "subtype") if not isinstance(values.get(k), str)]
        if missing:
            raise ValueError(f"run.json lacks {', '.join(missing)}")
        wrong = [k for k, kinds in _FIELD_KINDS.items()
                 if k in values and (not isinstance(values[k], kinds)
                                     or isinstance(values[k], bool))]
        if wrong:  # the index, the pages and the API rely on these kinds
            raise ValueError(f"run.json has fields of the wrong kind: {', '.join(wrong)}")
        huge = [k for k in ("duration_ms", "events", "schema")
                if isinstance(values.get(k), int) and not -(2**63) <= values[k] < 2**63]
        if huge:  # the index keeps them as SQLite (64-bit) integers
            raise ValueError(f"run.json has integers out of range: {', '.join(huge)}")
        # the index and the view write it back as UTF-8: a lone surrogate (JSON "\ud800")
        # raises UnicodeEncodeError, a ValueError, here rather than in every later catch-up
        json.dumps(data, ensure_ascii=False).encode()
        try:
            values["status"] = RunStatus(values.get("status", "running"))
        except ValueError:
            values["status"] = RunStatus.FAILED  # a newer status we do not know: not running
        run = cls(**values)
        run.extra = {k: v for k, v in data.items() if k not in known}
        return run


_SERIALISED = tuple(name for name in field_names(Run) if name != "extra")
_VALID_ON_SET = frozenset(Run.__plain_checked__)  # written to events before to_dict() runs

_FIELD_KINDS: dict[str, tuple[type, ...]] = {
    "summary": (str,), "host": (str,), "started_at": (str, type(None)),
    "ended_at": (str, type(None)), "parent_run_id": (str, type(None)),
    "rerun_of": (str, type(None)), "action": (str, type(None)),
    "duration_ms": (int, type(None)), "events": (int,),
    "schema": (int,), "actor": (dict,), "code_ref": (dict,), "target": (dict,),
    "params": (dict,), "result": (dict,), "error": (dict, type(None)), "artifacts": (list,),
}


def _entry_dir(kind: str, entry_id: str) -> str:
    """Where a new entry is written: ``ledger/<kind>/<YYYY>/<MM>/<DD>/<bb>/<id>``.

    ``<bb>`` is the first two hex characters of the id's random suffix (256 buckets a day,
    DECISIONS §1). Readers accept the first layout too (``ledger_dirs``).
    """
    day = f"ledger/{kind}/{entry_id[0:4]}/{entry_id[4:6]}/{entry_id[6:8]}"
    return f"{day}/{entry_id[20:22]}/{entry_id}"


def ledger_dir(run_id: str) -> str:
    """The ledger directory a run is written to: ``ledger/runs/<YYYY>/<MM>/<DD>/<bb>/<id>``."""
    return _entry_dir("runs", run_id)


def chat_dir(message_id: str) -> str:
    """The ledger directory a chat message is written to (bucketed like runs)."""
    return _entry_dir("chat", message_id)


def ledger_dirs(kind: str, entry_id: str) -> tuple[str, str]:
    """Both places an entry may live, newest layout first: (bucketed, first layout)."""
    bucketed = _entry_dir(kind, entry_id)
    return bucketed, bucketed[:-len(entry_id) - 3] + entry_id


_OWN_START: dict[int, float | None] = {}  # this process's (by pid: a fork is another)


def process_start_time(pid: int) -> float | None:
    """A process's start time in clock ticks since boot (Linux), None if gone."""
    if pid != os.getpid():
        return _read_start_time(pid)
    if pid not in _OWN_START:  # read once: the journal and every ref move ask for it
        _OWN_START.clear()
        _OWN_START[pid] = _read_start_time(pid)
    return _OWN_START[pid]


def _read_start_time(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: split after the last ')'
    rest = stat[stat.rfind(b")") + 2 :].split()
    if rest and rest[0] == b"Z":
        return None
    return float(rest[19])


def process_alive(pid: int, start_time: float | None) -> bool:
    """True if *pid* is alive and is the same process (same start time)."""
    if pid <= 0:
        return False
    current = process_start_time(pid)
    if current is None:
        return False
    return start_time is None or current == start_time


__all__ = [
    "RUN_TYPES",
    "Run",
    "RunStatus",
    "chat_dir",
    "check_subtype",
    "iso",
    "ledger_dir",
    "ledger_dirs",
    "new_run_id",
]
