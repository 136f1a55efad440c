"""The cross-process feed: runs of other processes (scripts, the CLI) on this process's bus.

A script needs no server: it writes the journal and the ledger. This feed
watches both and publishes ``run:started``, ``run:output`` and
``run:completed`` for runs this process did not record itself.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from controlplane.core.events import BusUnavailable, EventBus
from controlplane.core.ledger.ledger import Ledger
from controlplane.core.ledger.store import RUNS_DIR
from controlplane.core.output import event_seq

log = logging.getLogger(__name__)

SPOOL_READ_MAX = 4 * 1024 * 1024  # bytes of one spool read per poll; the rest comes next poll
COMPLETED_KEPT = 1_000  # completed run ids remembered (their journal entries go within ms)


def as_started(run: dict[str, Any]) -> dict[str, Any]:
    """The run.json of a finished run as it was while running (no end, result or error)."""
    return {**run, "status": "running", "ended_at": None, "duration_ms": None,
            "result": {}, "error": None}


class LedgerFeed:
    """Polls the journal and the ledger head; ``poll_once`` is the whole job."""

    def __init__(self, ledger: Ledger, bus: EventBus, interval: float = 0.2) -> None:
        self.ledger = ledger
        self.bus = bus
        self.interval = interval
        self._seen: dict[str, int] = {}  # foreign in-flight run id -> last output seq published
        self._offsets: dict[str, int] = {}  # foreign in-flight run id -> spool bytes read
        # runs announced completed: a writer removes its journal entry just after it commits,
        # so a later poll may still list it; it must not be announced started again
        self._completed: dict[str, None] = {}
        self._live: dict[str, None] = {}  # ids the bus said their own process announces
        self._bus_down = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._head = ledger.store.head()  # the ledger tip this feed has announced up to

    def poll_once(self) -> None:
        """Publish what changed since the last poll."""
        current: dict[str, dict[str, Any]] = {}
        for entry in self.ledger.journal.entries():
            if entry.pid == os.getpid() or not entry.alive or self._announced(entry.run):
                continue
            run_id = entry.run.get("run_id")
            if run_id and run_id not in self._completed:
                current[run_id] = entry.run
        for run_id, run in current.items():
            if run_id not in self._seen:
                self._seen[run_id] = 0
                self.bus.publish("run:started", run, run_id=run_id)
            for event in self._new_events(run_id):
                self._seen[run_id] = event["seq"]
                if event.get("type") in ("run:output", "run:progress"):
                    data = dict(event.get("data") or {})
                    if event["type"] == "run:output":
                        data["seq"] = event["seq"]
                    self.bus.publish(event["type"], data, run_id=run_id)
        mine = set(self.ledger.recorded_here)
        new_runs, merged = self._new_in_ledger()
        if merged:  # a pull: one announcement, not one event per pulled run
            self.bus.publish("ledger:synced", {"runs": len(new_runs)})
            new_runs = [r for r in new_runs if r["run_id"] in self._seen]
        for run in new_runs:
            announced_start = self._seen.pop(run["run_id"], None) is not None
            self._offsets.pop(run["run_id"], None)
            self._completed[run["run_id"]] = None
            if len(self._completed) > COMPLETED_KEPT:
                del self._completed[next(iter(self._completed))]
            if run["run_id"] not in mine and not self._announced(run):
                if not announced_start:  # over between two polls: its start is told first
                    self.bus.publish("run:started", as_started(run), run_id=run["run_id"])
                self.bus.publish("run:completed", run, run_id=run["run_id"])
        for run_id in [r for r in self._seen if r not in current]:
            if self.ledger.index.get(run_id) is None and run_id not in mine:
                continue  # gone from the journal, not yet visible in the ledger: next poll
            self._seen.pop(run_id, None)
            self._offsets.pop(run_id, None)

    def _new_events(self, run_id: str) -> list[dict[str, Any]]:
        """A foreign run's events spooled since the last poll, read from where that one stopped.

        A long run's spool is never read whole again (a million lines: every 0.2 s).
        """
        offset = self._offsets.get(run_id, 0)
        try:
            with open(self.ledger.journal.events_path(run_id), "rb") as spool:
                spool.seek(offset)
                chunk = spool.read(SPOOL_READ_MAX)
        except OSError:
            return []
        end = chunk.rfind(b"\n") + 1  # a line still being written is read at the next poll
        if end == 0 and len(chunk) == SPOOL_READ_MAX:
            end = len(chunk)  # no line is that long: skip the garbage
        self._offsets[run_id] = offset + end
        events = []
        for line in chunk[:end].splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            seq = event_seq(event)
            if seq is not None and seq > self._seen[run_id]:
                events.append(event)
        return events

    def _new_in_ledger(self) -> tuple[list[dict[str, Any]], bool]:
        """Runs added to the ledger since this feed last looked, and whether a merge brought them.

        The index is shared with other processes and may already be ahead, so
        the feed diffs from its own last-seen tip.
        """
        head = self.ledger.store.head()
        if head is None or head == self._head:
            return [], False
        with self.ledger.store.lock:
            merged = len(self.ledger.store.repo[head].parents) > 1 \
                or self.ledger.is_synced(str(head))
        changed, _ = self.ledger.store.changed_entry_dirs(self._head, head)
        self._head = head
        self.ledger.catch_up()
        runs = []
        mine = set(self.ledger.recorded_here)
        for directory in changed:
            entry_id = directory.rsplit("/", 1)[-1]
            run = self.ledger.index.get(entry_id)
            if run is None and directory.startswith(RUNS_DIR):  # the index lags (busy): git
                run = self.ledger._read_entry(head, directory)
            if run is not None:
                runs.append(run)
                continue
            message = self.ledger.index.message(entry_id)
            if message is not None and entry_id not in mine and not merged \
                    and not self._announced(message):
                self.bus.publish("chat:message", message)
        return runs, merged

    def _announced(self, entry: dict[str, Any]) -> bool:
        """Already on this bus: announced live by the process sharing it that records it
        (another worker, a script on the same Redis); ``bus_epoch`` of old files is ignored."""
        entry_id = entry.get("run_id") or entry.get("message_id")
        if not entry_id:
            return False
        if entry_id not in self._live:
            if not self.bus.announced(entry_id):
                return False
            self._live[entry_id] = None
            if len(self._live) > COMPLETED_KEPT:
                del self._live[next(iter(self._live))]
        return True

    def start(self) -> LedgerFeed:
        self._thread = threading.Thread(target=self._loop, name="scp-ledger-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll_once()
                self._bus_down = False
            except BusUnavailable as exc:  # said once; the next poll retries
                if not self._bus_down:
                    log.warning("ledger feed paused: %s", exc.message)
                self._bus_down = True
            except Exception:  # keep following: a bad file must not end the feed
                log.exception("ledger feed poll failed")
