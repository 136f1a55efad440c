"""Who works in this clone: server workers (a heartbeat file each) and processes with runs
in flight (their journal entries).

A server worker writes ``.git/scp/workers/<host>-<pid>.json`` every ``BEAT_SECONDS``
(pid, its start time, when it beat, the runs it processed and how many failed) and
removes it when it stops. A ``controlplane exec`` or a script's ``tracked_run`` keeps no
heartbeat: it is known by its journal entries (``journal.py``: owner pid and start time),
checked alive by pid plus start time when asked, and it leaves the list when its runs end.
A process that died is listed ``gone``, never alive; a worker file is forgotten an hour
after its last beat.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controlplane.core.ledger.journal import JournalEntry, write_atomic
from controlplane.core.runs import default_host, process_alive, process_start_time

BEAT_SECONDS = 5.0
STALE_AFTER = 3 * BEAT_SECONDS  # a worker that has not beaten for this long is "stale"
FORGET_GONE_AFTER = 3600.0  # a dead worker's file is removed this long after its last beat
OWN_RUN_EVENTS = ("run:queued", "run:started")


def workers_dir(scp_dir: Path) -> Path:
    return scp_dir / "workers"


class WorkerHeartbeat:
    """This server process's heartbeat file, beaten from a daemon thread until ``stop``.

    It counts the runs this process ran (journaled with its pid) as they complete on
    *bus*: ``processed`` and ``failed``.
    """

    def __init__(self, ledger: Any, bus: Any, interval: float = BEAT_SECONDS) -> None:
        self.ledger, self.bus, self.interval = ledger, bus, interval
        self.pid = os.getpid()
        self.path = workers_dir(ledger.scp_dir) / f"{default_host()}-{self.pid}.json"
        self.started_at = time.time()
        self.processed = self.failed = 0
        self._mine: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._disconnect: Callable[[], None] | None = None

    def start(self) -> WorkerHeartbeat:
        self._disconnect = self.bus.connect(self._count)
        self.beat()
        self._thread = threading.Thread(target=self._loop, name="scp-worker-heartbeat",
                                        daemon=True)
        self._thread.start()
        return self

    def _count(self, envelope: dict[str, Any]) -> None:
        kind, run_id = envelope.get("type"), envelope.get("run_id")
        if not isinstance(run_id, str):
            return
        if kind in OWN_RUN_EVENTS and run_id not in self._mine:
            entry = self.ledger.journal.entry(run_id)
            if entry is not None and entry.pid == self.pid:
                with self._lock:
                    self._mine.add(run_id)
        elif kind == "run:completed" and run_id in self._mine:
            with self._lock:
                self._mine.discard(run_id)
                self.processed += 1
                self.failed += (envelope.get("data") or {}).get("status") == "failed"

    def counts(self) -> tuple[int, int]:
        """(processed, failed) so far."""
        with self._lock:
            return self.processed, self.failed

    def beat(self) -> None:
        """Write the heartbeat file now (a full disk is retried at the next beat)."""
        with self._lock:
            record = {"kind": "worker", "host": default_host(), "pid": self.pid,
                      "pid_start": process_start_time(self.pid), "started_at": self.started_at,
                      "beat_at": time.time(), "interval": self.interval,
                      "processed": self.processed, "failed": self.failed}
        try:
            self.path.parent.mkdir(mode=0o700, exist_ok=True)
            write_atomic(self.path, json.dumps(record).encode())
        except OSError:
            pass  # the card shows the heartbeat's age: a missed beat is seen there

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        """Stop beating and remove the file: a worker that stopped leaves the list."""
        self._stop.set()
        if self._disconnect is not None:
            self._disconnect()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)


def _read_workers(directory: Path, now: float) -> list[dict[str, Any]]:
    found = []
    for path in sorted(directory.glob("*.json")):
        try:
            record = json.loads(path.read_bytes())
            pid, beat_at = int(record["pid"]), float(record["beat_at"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written or removed right now
        here = record.get("host") == default_host()
        alive = process_alive(pid, record.get("pid_start")) if here else None
        age = max(0.0, now - beat_at)
        if alive is False and age > FORGET_GONE_AFTER:
            path.unlink(missing_ok=True)
            continue
        status = "gone" if alive is False else "stale" if age > STALE_AFTER else "alive"
        found.append({
            "kind": "worker", "pid": pid, "host": record.get("host"), "state": status,
            "pid_start": record.get("pid_start"),
            "heartbeat_age": round(age, 1), "last_activity_age": round(age, 1),
            "since": record.get("started_at"), "running": 0, "queued": 0,
            "processed": int(record.get("processed") or 0),
            "failed": int(record.get("failed") or 0), "runs": []})
    return found


def _process_kind(entry: JournalEntry) -> str:
    actor = entry.run.get("actor") or {}
    if actor.get("kind") == "cli":
        return "exec"
    return "worker" if actor.get("kind") in ("web", "api") else "script"


def _activity_age(journal: Any, run_id: str, now: float) -> float | None:
    """Seconds since the run's journal entry or event spool was last written."""
    times = []
    for path in (journal.meta_path(run_id), journal.events_path(run_id)):
        try:
            times.append(path.stat().st_mtime)
        except OSError:
            continue
    return round(max(0.0, now - max(times)), 1) if times else None


def list_processes(ledger: Any, own: WorkerHeartbeat | None = None) -> list[dict[str, Any]]:
    """One line per server worker and per process with runs in flight in this clone.

    Each line: ``kind`` (worker, exec, script), ``pid``, ``host``, ``state`` (alive,
    stale: a worker whose heartbeat is late, gone: the process died), ``heartbeat_age``
    (seconds; None for a process that keeps no heartbeat), ``last_activity_age``,
    ``since`` (epoch seconds), ``running``, ``queued``, ``processed`` and ``failed``
    (None where not counted) and ``runs`` (the run ids in flight). Workers first.
    *own*, this process's heartbeat, gives its line the counts as of now.
    """
    now = time.time()
    lines = _read_workers(workers_dir(ledger.scp_dir), now)
    by_process = {(line["host"], line["pid"]): line for line in lines}
    host = default_host()
    for entry in ledger.journal.entries():
        run = entry.run
        key = (entry.host, entry.pid)
        line = by_process.get(key)
        if line is None or (line["pid_start"] is not None and entry.pid_start is not None
                            and line["pid_start"] != entry.pid_start):
            alive = entry.alive if entry.host == host else None
            line = {"kind": _process_kind(entry), "pid": entry.pid, "host": entry.host,
                    "state": {True: "alive", False: "gone", None: "unknown"}[alive],
                    "pid_start": entry.pid_start, "heartbeat_age": None,
                    "last_activity_age": None, "since": None, "running": 0, "queued": 0,
                    "processed": None, "failed": None, "runs": []}
            by_process[key] = line
            lines.append(line)
        if line["state"] != "gone" and run.get("status") in ("running", "queued"):
            line[run["status"]] += 1
        line["runs"].append({"run_id": run.get("run_id"), "subtype": run.get("subtype"),
                             "status": run.get("status") if line["state"] != "gone"
                             else "unrecorded"})
        if line["kind"] != "worker" or line["heartbeat_age"] is None:
            age = _activity_age(ledger.journal, str(run.get("run_id")), now)
            if age is not None and (line["last_activity_age"] is None
                                    or age < line["last_activity_age"]):
                line["last_activity_age"] = age
            started = _epoch(run.get("started_at"))
            if started is not None and (line["since"] is None or started < line["since"]):
                line["since"] = started
    for line in lines:
        line.pop("pid_start", None)
        line["this"] = line["host"] == host and line["pid"] == os.getpid()
        if line["this"] and line["kind"] == "worker" and own is not None:
            line["processed"], line["failed"] = own.counts()
    order = {"worker": 0, "exec": 1, "script": 2}
    lines.sort(key=lambda line: (order.get(line["kind"], 3), line["state"] == "gone",
                                 line["pid"]))
    return lines


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
