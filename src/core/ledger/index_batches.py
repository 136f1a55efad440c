"""This process's records, written to the run index in batches (issue 18, item 5).

A record's index write is one SQLite transaction: 0.10-0.19 ms of a 1.5 ms record, most of
it the WAL pages a commit writes whatever it holds. Thirty-two runs in one transaction cost
0.017 ms each. So a record leaves its run here, and the batch is written:

- when it holds ``INDEX_BATCH`` records (a script recording many);
- ``INDEX_DELAY`` seconds after its first record, from a timer thread (a server between
  runs, so that another process finds the index current and reads it without the ledger);
- before this process reads its index (``Ledger.index``): what it recorded, it reads back;
- when the process exits (``atexit``; a process killed first leaves its runs to the next
  reader's catch-up, as after any crash: the index is a cache of the ledger).

A process that has not opened the index (``exec``, a script's ``tracked_run``) does not open
it to write a batch: the ledger leaves the batch queued on disk for the index's next
reader (``index_queue``), unless the queue is already full.

The batch is applied as one move of the index's head when its records follow each other
(each one's parent the commit before); records of several threads that landed out of order
are applied in runs of such records, and the first refused move (another process moved the
head) hands over to the ledger's catch-up, which reads what is missing from git.
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from controlplane.core.ledger.index import RunIndex

INDEX_BATCH = 32
INDEX_DELAY = 0.1
TIMER_NAME = "scp-index-batch"


class Pending:
    """One record's move of the index: from *parent* to *commit*, with its run or message
    (a plain class: ``dataclasses`` costs a command's start-up its import)."""

    __slots__ = ("commit", "messages", "parent", "runs")

    def __init__(self, parent: str | None, commit: str,
                 runs: list[tuple[dict[str, Any], str]],
                 messages: list[tuple[dict[str, Any], str]]) -> None:
        self.parent, self.commit, self.runs, self.messages = parent, commit, runs, messages


class IndexBatches:
    """Records waiting for their index write; ``flush`` writes them (thread-safe)."""

    def __init__(self, index_of: Callable[[], RunIndex], catch_up: Callable[[], object],
                 on_timer: Callable[[], object]) -> None:
        self._index_of = index_of  # the index, opened at the first flush that writes to it
        self._catch_up = catch_up  # brings the index to the ledger's tip from git
        self._on_timer = on_timer  # the owner's flush, with its error handling
        self.pending: list[Pending] = []
        self._lock = threading.Lock()  # the list
        self._timer: threading.Timer | None = None

    def after_fork(self) -> None:
        """In a forked child: the parent's timer thread and a lock another thread held are
        not there; the queue stays, written by the first of the two to flush (the other's
        move is refused and catches up)."""
        self._lock = threading.Lock()
        self._timer = None

    def add(self, record: Pending) -> bool:
        """Queue *record*; True when the batch is full (the caller flushes it now)."""
        with self._lock:
            self.pending.append(record)
            if self._timer is None:
                self._timer = threading.Timer(INDEX_DELAY, self._on_timer)
                self._timer.name = TIMER_NAME
                self._timer.daemon = True  # never holds an exit: atexit flushes
                self._timer.start()
            return len(self.pending) >= INDEX_BATCH

    def flush(self) -> None:
        """Write every queued record to the index (errors raise: the caller reports).

        Under the index's own lock, taken before the queue is: one batch written at a time
        and in order, and a thread already inside the index (a damaged one refilled, whose
        catch-up reads the index) flushes again without waiting on another."""
        index = self._index_of()
        with index.lock:
            batch = self.take()
            if batch:
                self._write(index, batch)

    def take(self) -> list[Pending]:
        """Empty the queue and stop its timer; returns what it held."""
        with self._lock:
            batch, self.pending = self.pending, []
            timer, self._timer = self._timer, None
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()
        return batch

    def put_back(self, batch: list[Pending]) -> None:
        """Queue *batch* again, before what was added since (a spill that failed)."""
        with self._lock:
            self.pending[:0] = batch

    def _write(self, index: RunIndex, batch: list[Pending]) -> None:
        start = 0
        while start < len(batch):
            end = start + 1
            while end < len(batch) and batch[end].parent == batch[end - 1].commit:
                end += 1
            group = batch[start:end]
            runs = [run for record in group for run in record.runs]
            messages = [message for record in group for message in record.messages]
            if not index.apply(group[0].parent, group[-1].commit, runs, [], messages):
                self._catch_up()  # moved by another process, or out of order: from git
                return
            start = end
