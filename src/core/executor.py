"""Background runs: a queue, a concurrency limit, pause/resume/drain, cancel, locks.

A job is submitted as a run that is journaled ``queued`` at once; it starts
when a slot is free and the executor is not paused. Two jobs with the same
lock key never overlap: the second is refused with ``RunInProgress``. Cancel
removes a queued run (recorded ``cancelled``) or asks a running one to stop;
the tool runner then kills its whole process group; ``cancel_anywhere`` reaches
runs of other processes too (their journal entries). Thread-safe.

The executor holds a job only while it is queued or running. A finished job
stays findable (``wait``) only while its submitter still holds it: a server
answering ``202`` drops it, and its events and result go with it (the ledger
has them).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controlplane.core.contracts import Coordinator
from controlplane.core.coordination import LocalCoordinator
from controlplane.core.errors import NotFound, RunInProgress
from controlplane.core.events import EventBus
from controlplane.core.run_tracker import ActiveRun, apply_result, running
from controlplane.core.runs import RunStatus

log = logging.getLogger(__name__)

JobFn = Callable[[ActiveRun], Any]
DRAIN_TIMEOUT = 300.0  # seconds a drain waits by default


@dataclass
class Job:
    """A run waiting for, or holding, a slot."""

    active: ActiveRun
    fn: JobFn
    lock_key: str
    final: dict[str, Any] | None = None
    result: Any = None
    done: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class Executor:
    """Runs jobs in threads, at most ``limit`` at once."""

    def __init__(self, bus: EventBus, limit: int = 4, coordinator: Coordinator | None = None,
                 refresh_seconds: float = 5.0) -> None:
        self.bus = bus
        self.limit = max(1, int(limit))
        self.coordinator = coordinator or LocalCoordinator(self.limit)
        self.paused = False
        self._lock = threading.Condition()
        self._queued: deque[Job] = deque()
        self._running: dict[str, Job] = {}
        self._jobs: dict[str, Job] = {}  # run id -> job, while queued or running
        # run id -> finished job, for as long as its submitter holds it (wait after the end)
        self._finished: weakref.WeakValueDictionary[str, Job] = weakref.WeakValueDictionary()
        self._stop = threading.Event()
        self._refresher = None
        self.coordinator.listen(cancel=self._cancel_requested, slot_freed=self._slot_freed)
        if not isinstance(self.coordinator, LocalCoordinator):
            self._refresher = threading.Thread(target=self._refresh, args=(refresh_seconds,),
                                               name="scp-executor-refresh", daemon=True)
            self._refresher.start()

    def _refresh(self, seconds: float) -> None:
        """Keep shared locks and slots alive; start queued runs when another worker freed one."""
        while not self._stop.wait(seconds):
            with self._lock:
                held = {j.lock_key: j.active.run_id for j in self._jobs.values()
                        if not j.done.is_set()}
                running = list(self._running)
                try:
                    self.coordinator.refresh(held, running)
                    self._pump()
                except Exception:  # the shared store is down: retry at the next tick
                    log.warning("could not refresh shared locks and slots", exc_info=True)

    # -- submitting ------------------------------------------------------

    def submit(self, active: ActiveRun, fn: JobFn, lock_key: str) -> Job:
        """Queue *active* to run ``fn(active)``; raises RunInProgress if the lock is held."""
        with self._lock:
            holder = self.coordinator.lock(lock_key, active.run_id)
            if holder is not None:
                raise RunInProgress(holder, lock_key)
            job = Job(active=active, fn=fn, lock_key=lock_key)
            self._jobs[active.run_id] = job
            active.queue()
            self._queued.append(job)
            self._pump()
        self._publish_state()
        return job

    def _pump(self) -> None:
        """Start queued jobs while slots are free (caller holds the lock)."""
        while not self.paused and self._queued and len(self._running) < self.limit:
            if not self.coordinator.claim_slot(self._queued[0].active.run_id):
                return  # every slot is taken (maybe by another worker)
            job = self._queued.popleft()
            self._running[job.active.run_id] = job
            job.thread = threading.Thread(target=self._execute, args=(job,), daemon=True,
                                          name=f"run-{job.active.run_id}")
            job.thread.start()

    def _execute(self, job: Job) -> None:
        active = job.active
        try:
            with running(active):
                job.result = job.fn(active)
                status, _ = apply_result(active, job.result)
                if status == RunStatus.FAILED:
                    active.run.status = RunStatus.FAILED
        except Exception:  # recorded as failed by running(); nothing more to do here
            log.info("run %s raised", active.run_id, exc_info=True)
        finally:
            self._done(job)

    def _done(self, job: Job) -> None:
        job.final = job.active.run.to_dict()
        with self._lock:
            self._finished[job.active.run_id] = job
            self._jobs.pop(job.active.run_id, None)
            self._running.pop(job.active.run_id, None)
            self.coordinator.release_slot(job.active.run_id)
            self.coordinator.unlock(job.lock_key, job.active.run_id)
            self._pump()
            self._lock.notify_all()
        job.done.set()
        self._publish_state()

    # -- waiting and control ---------------------------------------------

    def wait(self, run_id: str, timeout: float | None = None) -> Job:
        """Block until the run is final; returns its job (``final`` set unless timed out)."""
        with self._lock:
            job = self._jobs.get(run_id) or self._finished.get(run_id)
        if job is None:
            raise NotFound(f"no run {run_id} in this server's executor")
        job.done.wait(timeout)
        return job

    def forget(self, run_id: str) -> None:
        """Drop a finished job now (it also goes once nobody holds it)."""
        with self._lock:
            self._finished.pop(run_id, None)

    def cancel(self, run_id: str, elsewhere: bool = False) -> str:
        """Cancel a queued or running run; returns what was done.

        With *elsewhere*, a run this worker does not hold is asked of the other
        workers (``"requested"``); NotFound if none listens.
        """
        with self._lock:
            job = self._jobs.get(run_id) or self._finished.get(run_id)
            if job is None or job.done.is_set():
                if elsewhere and job is None and self.coordinator.request_cancel(run_id):
                    return "requested"
                raise NotFound(f"run {run_id} is not queued or running here")
            if job in self._queued:
                self._queued.remove(job)
                queued = True
            else:
                queued = False
                job.active.cancel_requested.set()
        if queued:
            job.active.cancel_requested.set()
            job.active.finish(RunStatus.CANCELLED,
                              {"code": "cancelled", "message": "cancelled before it started"})
            self._done(job)
            return "cancelled"
        return "cancelling"

    def cancel_anywhere(self, run_id: str, journal: Any, queued: bool = False,
                        by: dict[str, Any] | None = None) -> str:
        """Cancel a run wherever it is in flight: here, queued in another worker, or in any
        process of this clone through its journal entry (see ``Journal.cancel_in_flight``).

        NotFound if no process has it in flight.
        """
        with contextlib.suppress(NotFound):
            return self.cancel(run_id, elsewhere=queued)  # a queued run waits in an executor
        outcome = journal.cancel_in_flight(run_id, by=by)
        if outcome is not None:
            return outcome
        try:  # a worker of another clone may still hold it
            return self.cancel(run_id, elsewhere=True)
        except NotFound:
            raise NotFound(f"run {run_id} is not queued or running in any process here; "
                           "reload to see how it ended") from None

    def _cancel_requested(self, run_id: str) -> None:
        """A cancel request that reached another worker: act if the run is ours."""
        with contextlib.suppress(NotFound):
            self.cancel(run_id)

    def _slot_freed(self) -> None:
        """Another worker freed a slot: a run waiting here may take it now."""
        with self._lock:
            try:
                self._pump()
            except Exception:  # the shared store is down: the refresher retries
                log.warning("could not claim a freed slot", exc_info=True)

    def pause(self) -> None:
        with self._lock:
            self.paused = True
        self._publish_state()

    def resume(self) -> None:
        with self._lock:
            self.paused = False
            self._pump()
        self._publish_state()

    def drain(self, timeout: float = DRAIN_TIMEOUT) -> dict[str, Any]:
        """Pause, then wait up to *timeout* s for running runs to end; returns what remains
        (``state()``: the runs still running and those still queued, which stay queued)."""
        self.pause()
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            self._lock.wait_for(lambda: not self._running, max(0.0, deadline - time.monotonic()))
        return self.state()

    def cancel_queued(self) -> list[str]:
        """Cancel every run queued here (recorded ``cancelled``); returns their ids."""
        with self._lock:
            queued = [job.active.run_id for job in self._queued]
        cancelled = []
        for run_id in queued:
            with contextlib.suppress(NotFound):  # it started or was cancelled meanwhile
                if self.cancel(run_id) == "cancelled":
                    cancelled.append(run_id)
        return cancelled

    def shutdown(self, graceful: bool = False, timeout: float = 30.0) -> None:
        """Leave no run in flight: cancel queued ones; cancel (or, if graceful, await) running."""
        with self._lock:
            self.paused = True
            queued = [job.active.run_id for job in self._queued]
            running_ids = list(self._running)
        for run_id in queued:
            self.cancel(run_id)
        if not graceful:
            for run_id in running_ids:
                with contextlib.suppress(NotFound):
                    self.cancel(run_id)
        deadline = time.monotonic() + timeout
        with self._lock:
            self._lock.wait_for(lambda: not self._running, max(0.0, deadline - time.monotonic()))
            overdue = list(self._running)
        for run_id in overdue:  # graceful, but past the timeout: cancel what is left
            with contextlib.suppress(NotFound):
                self.cancel(run_id)
        with self._lock:
            self._lock.wait_for(lambda: not self._running, 30.0)
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=10)
        self.coordinator.close()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "limit": self.limit, "paused": self.paused,
                "running": [j.active.run_id for j in self._running.values()],
                "queued": [j.active.run_id for j in self._queued],
            }

    def _publish_state(self) -> None:
        self.bus.publish("executor:state", self.state())
