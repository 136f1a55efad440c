"""The cross-process feed: runs of other processes (scripts, the CLI) on this process's bus.

A script needs no server: it writes the journal and the ledger. This feed
watches both and publishes ``run:started``, ``run:output`` and
``run:completed`` for runs this process did not record itself.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
from typing import Any

import pygit2

from controlplane.core.events import BusUnavailable, EventBus
from controlplane.core.ledger import rawlog
from controlplane.core.ledger.ledger import Ledger
from controlplane.core.ledger.store import RUNS_DIR
from controlplane.core.output import event_seq

log = logging.getLogger(__name__)

SPOOL_READ_MAX = 4 * 1024 * 1024  # bytes of one spool read per poll; the rest comes next poll
# events of a finished foreign run no poll read yet, published before its completion (its
# last ~0.2 s: a fast tool prints thousands of lines in it); beyond, one line says what is left
TAIL_PUBLISHED = 10_000
WALK_MAX = 10_000  # commits walked to tell a pull from local records
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
                    self._publish_event(run_id, event)
        mine = set(self.ledger.recorded_here)
        new_runs, pulled = self._new_in_ledger()
        if pulled:  # a pull: one announcement, not one event per pulled run
            self.bus.publish("ledger:synced", {"runs": len(pulled)})
        for run in new_runs:
            run_id = run["run_id"]
            if run_id in pulled and run_id not in self._seen:
                continue
            announced_start = run_id in self._seen
            after = self._seen.pop(run_id, 0)
            self._offsets.pop(run_id, None)
            self._completed[run_id] = None
            if len(self._completed) > COMPLETED_KEPT:
                del self._completed[next(iter(self._completed))]
            if run_id not in mine and not self._announced(run):
                if not announced_start:  # over between two polls: its start is told first
                    self.bus.publish("run:started", as_started(run), run_id=run_id)
                self._publish_rest(run_id, after)
                self.bus.publish("run:completed", run, run_id=run_id)
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

    def _publish_rest(self, run_id: str, after: int) -> None:
        """The output a finished foreign run spooled after *after* that no poll read yet
        (its last lines), from its raw log: the newest ``TAIL_PUBLISHED`` at most."""
        path = self.ledger.logs_dir / f"{run_id}.events.jsonl"
        if not path.exists():
            path = self.ledger.journal.events_path(run_id)
        for event in rawlog.read_tail(path, after, TAIL_PUBLISHED):
            if event.get("type") == "run:truncated":  # never a silent gap on a live page
                data = event.get("data") or {}
                event = {"type": "run:output", "seq": event["seq"], "data": {
                    "stream": "stderr", "line": f"[{data.get('omitted_events')} lines not shown "
                    f"live: GET /api/runs/{run_id}/log has them]"}}
            if event.get("type") in ("run:output", "run:progress"):
                self._publish_event(run_id, event)

    def _publish_event(self, run_id: str, event: dict[str, Any]) -> None:
        data = dict(event.get("data") or {})
        if event["type"] == "run:output":
            data["seq"] = event["seq"]
        self.bus.publish(event["type"], data, run_id=run_id)

    def _new_in_ledger(self) -> tuple[list[dict[str, Any]], set[str]]:
        """Runs added to the ledger since this feed last looked, and the ids a pull brought.

        The index is shared with other processes and may already be ahead, so
        the feed diffs from its own last-seen tip. A pull and local records can
        land in one poll: only what the pull brought is announced as a sync.
        """
        head = self.ledger.store.head()
        if head is None or head == self._head:
            return [], set()
        changed, _ = self.ledger.store.changed_entry_dirs(self._head, head)
        pulled_dirs = self._pulled_dirs(self._head, head)
        self._head = head
        self.ledger.catch_up()
        runs = []
        mine = set(self.ledger.recorded_here)
        pulled = {directory.rsplit("/", 1)[-1] for directory in pulled_dirs}
        for directory in changed:
            entry_id = directory.rsplit("/", 1)[-1]
            run = self.ledger.index.get(entry_id)
            if run is None and directory.startswith(RUNS_DIR):  # the index lags (busy): git
                run = self.ledger._read_entry(head, directory)
            if run is not None:
                runs.append(run)
                continue
            pulled.discard(entry_id)  # a message: ledger:synced counts runs
            message = self.ledger.index.message(entry_id)
            if message is not None and entry_id not in mine and directory not in pulled_dirs \
                    and not self._announced(message):
                self.bus.publish("chat:message", message)
        return runs, pulled

    def _pulled_dirs(self, old: pygit2.Oid | None, head: pygit2.Oid) -> set[str]:
        """Entry directories between *old* and *head* that a pull brought, not local records.

        Walks the first-parent chain (local records and merges): a merge brings
        what differs from its first parent; a fast-forwarded pull brings all
        below the tip it moved to.
        """
        store = self.ledger.store
        with store.lock:
            walker = store.repo.walk(head, pygit2.enums.SortMode.TOPOLOGICAL)
            walker.simplify_first_parent()
            if old is not None:
                walker.hide(old)
            commits = [(c.id, c.parent_ids) for c in itertools.islice(walker, WALK_MAX)]
        pulled: set[str] = set()
        for commit, parents in commits:
            if len(parents) > 1:
                pulled.update(store.changed_entry_dirs(parents[0], commit)[0])
            elif self.ledger.is_synced(str(commit)):
                pulled.update(store.changed_entry_dirs(old, commit)[0])
                break
        return pulled

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
