"""The journal of in-flight runs: local to this clone, never synced.

Under ``.git/scp/journal/`` each running run has ``<run_id>.json`` (the run as
it started, host, pid, process start time, the process groups it spawned)
and ``<run_id>.events.jsonl`` (its events, appended as they happen). Other
processes read them to show the run live; the next process to open the
ledger finds runs whose process died and records them ``interrupted``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controlplane.core.output import event_seq
from controlplane.core.runs import process_alive, process_start_time


def write_atomic(path: Path, data: bytes) -> None:
    """Write *data* to *path* via a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


@dataclass
class JournalEntry:
    """What the journal knows of one in-flight run."""

    run: dict[str, Any]
    host: str
    pid: int
    pid_start: float | None
    groups: dict[str, float | None] = field(default_factory=dict)  # pgid -> leader start time

    def to_json(self) -> bytes:
        return json.dumps(
            {"run": self.run, "host": self.host, "pid": self.pid, "pid_start": self.pid_start,
             "groups": self.groups}, ensure_ascii=False
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> JournalEntry:
        data = json.loads(raw)
        return cls(run=data["run"], host=data["host"], pid=int(data["pid"]),
                   pid_start=data.get("pid_start"), groups=data.get("groups") or {})

    @property
    def alive(self) -> bool:
        return self.host == socket.gethostname() and process_alive(self.pid, self.pid_start)


class Journal:
    """The directory of in-flight runs. Safe for several processes."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)

    def meta_path(self, run_id: str) -> Path:
        return self.dir / f"{run_id}.json"

    def events_path(self, run_id: str) -> Path:
        return self.dir / f"{run_id}.events.jsonl"

    def start(self, run: dict[str, Any]) -> JournalEntry:
        """Journal a run that this process starts now."""
        pid = os.getpid()
        entry = JournalEntry(run=run, host=socket.gethostname(), pid=pid,
                             pid_start=process_start_time(pid))
        self.events_path(run["run_id"]).touch()
        write_atomic(self.meta_path(run["run_id"]), entry.to_json())
        return entry

    def update(self, entry: JournalEntry) -> None:
        write_atomic(self.meta_path(entry.run["run_id"]), entry.to_json())

    def finish(self, run_id: str, keep_events_at: Path | None = None) -> None:
        """Forget a recorded run; its event spool moves to *keep_events_at* (the raw log)."""
        events = self.events_path(run_id)
        if keep_events_at is not None and events.exists():
            keep_events_at.parent.mkdir(parents=True, exist_ok=True)
            os.replace(events, keep_events_at)
        for path in (self.meta_path(run_id), events):
            path.unlink(missing_ok=True)

    def entries(self) -> list[JournalEntry]:
        """Every readable entry, oldest run first."""
        found = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                found.append(JournalEntry.from_json(path.read_bytes()))
            except (OSError, ValueError, KeyError):
                continue  # being written or removed right now
        return found

    def read_events(self, run_id: str, after: int = 0) -> list[dict[str, Any]]:
        """The spooled events of a run with ``seq`` above *after*."""
        try:
            raw = self.events_path(run_id).read_bytes()
        except OSError:
            return []
        events = []
        for line in raw.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            seq = event_seq(event)
            if seq is not None and seq > after:
                events.append(event)
        return events

    def claim_dead(self) -> list[tuple[JournalEntry, Path]]:
        """Take over the entries of this host whose process died.

        The rename makes the claim exclusive when several processes open the
        ledger at once; returns each entry with its claimed path.
        """
        claimed = []
        host = socket.gethostname()
        for path in sorted(self.dir.glob("*.json")):
            try:
                entry = JournalEntry.from_json(path.read_bytes())
            except (OSError, ValueError, KeyError):
                continue
            if entry.host != host or entry.alive:
                continue
            target = path.with_name(path.name + f".claimed-{os.getpid()}")
            try:
                os.rename(path, target)
            except OSError:
                continue  # another process claimed it first
            claimed.append((entry, target))
        return claimed


def kill_left_groups(groups: dict[str, float | None]) -> list[dict[str, Any]]:
    """Kill process groups a dead run left behind, checked by pid plus start time."""
    report = []
    for pgid_text, start in groups.items():
        pgid = int(pgid_text)
        leader_start = process_start_time(pgid)
        if leader_start is not None and start is not None and leader_start != start:
            report.append({"pgid": pgid, "state": "gone (its id now names another process)"})
            continue
        # The leader may have died while children of its group live on; a group id is not
        # reused while the group has members, so killing the group is safe.
        try:
            os.killpg(pgid, signal.SIGKILL)
            report.append({"pgid": pgid, "state": "killed"})
        except ProcessLookupError:
            report.append({"pgid": pgid, "state": "gone"})
        except PermissionError as exc:
            report.append({"pgid": pgid, "state": f"not killed: {exc}"})
    return report
