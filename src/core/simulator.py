"""The simulator: a stream of live demo runs, so a dashboard has something that moves.

Each run goes started → output → completed through the same path as real runs
(journal, ``run:*`` events on the bus, the ledger), with the durations and failure
rates of ``demo.CATALOGUE``. Its actor is ``{"kind": "demo", "name": "simulator"}``,
so the ledger records it on the local ``scp-demo`` branch, which sync never pushes
(``ledger.demo_branch``). Off unless ``serve --simulator`` or ``CONTROLPLANE_SIMULATOR=1``
(DECISIONS §11); the web layer checks that, this module does not.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

from controlplane.core.demo import CATALOGUE, OUTPUT
from controlplane.core.errors import Conflict, InvalidInput
from controlplane.core.events import EventBus
from controlplane.core.ledger import Ledger
from controlplane.core.runs import Run, RunStatus

log = logging.getLogger(__name__)

ACTOR = {"kind": "demo", "name": "simulator"}
MAX_IN_FLIGHT = 32  # demo runs running at once (one thread each)
LIMITS = {"count": (1, 1000), "rate": (0.1, 600.0), "duration_scale": (0.001, 10.0)}


@dataclass(frozen=True)
class SimulationParams:
    """How many runs, how many a minute, and a factor on the catalogue's durations."""

    count: int = 20
    rate: float = 30.0  # runs started per minute
    duration_scale: float = 0.1
    seed: int | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> SimulationParams:
        """From a request body; InvalidInput names every bad or unknown field."""
        bad: dict[str, str] = {}
        values: dict[str, Any] = {}
        for name in sorted(set(body) - {*LIMITS, "seed"}):
            bad[str(name)[:64]] = "unknown field (count, rate, duration_scale, seed)"
        for name, (low, high) in LIMITS.items():
            if name not in body:
                continue
            value = body[name]
            integral = isinstance(low, int)
            kinds = (int,) if integral else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) \
                    or not low <= value <= high:
                bad[name] = f"must be {'an integer' if integral else 'a number'} " \
                            f"from {low} to {high}"
            else:
                values[name] = value if integral else float(value)
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            bad["seed"] = "must be an integer"
        elif seed is not None:
            values["seed"] = seed
        if bad:
            raise InvalidInput(bad, "invalid simulation parameters")
        return cls(**values)


class Simulator:
    """Starts demo runs at the asked rate in a thread; ``stop`` cancels those in flight."""

    def __init__(self, ledger: Ledger, bus: EventBus) -> None:
        self.ledger, self.bus = ledger, bus
        self.params: SimulationParams | None = None
        self.started: list[str] = []
        self.finished = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self._threads: list[threading.Thread] = []
        self._starter: threading.Thread | None = None

    @property
    def running(self) -> bool:
        with self._lock:
            return self._alive()

    def start(self, params: SimulationParams) -> dict[str, Any]:
        """Start a simulation; Conflict while one still runs."""
        if self.running:
            raise Conflict("a simulation is running: POST /api/simulate/stop first")
        with self._lock:
            self.params, self.started, self.finished = params, [], 0
            self._stop = threading.Event()
            self._threads = []
            self._starter = threading.Thread(target=self._start_runs, args=(params,),
                                             name="scp-simulator", daemon=True)
            self._starter.start()
        return self.status()

    def stop(self, timeout: float = 10.0) -> dict[str, Any]:
        """Start no more runs; those in flight end ``cancelled``. Returns the status."""
        self._stop.set()
        return self.wait(timeout)

    def wait(self, timeout: float = 60.0) -> dict[str, Any]:
        """Block until every run of the simulation has ended (or *timeout*); the status.

        The starter first: once it has returned, no run thread is added any more."""
        with self._lock:
            starter = self._starter
        if starter is not None:
            starter.join(timeout)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
        return self.status()

    def status(self) -> dict[str, Any]:
        with self._lock:
            in_flight = sum(t.is_alive() for t in self._threads)
            return {"running": self._alive(), "started": len(self.started),
                    "finished": self.finished, "in_flight": in_flight,
                    "run_ids": self.started[-100:],
                    "params": asdict(self.params) if self.params else None}

    def _alive(self) -> bool:
        """True while the starter or a run thread lives (the caller holds the lock)."""
        return any(t.is_alive() for t in [self._starter, *self._threads] if t is not None)

    def _start_runs(self, params: SimulationParams) -> None:
        rng = random.Random(params.seed)
        interval = 60.0 / params.rate
        for number in range(params.count):
            if number and self._stop.wait(interval * rng.uniform(0.5, 1.5)):
                return
            while not self._slots.acquire(timeout=0.1):
                if self._stop.is_set():
                    return
            choice = rng.choice(CATALOGUE)
            seed = rng.getrandbits(32)
            thread = threading.Thread(target=self._one_run, args=(choice, params, seed),
                                      name="scp-simulated-run", daemon=True)
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _one_run(self, choice: tuple[str, int, float, str], params: SimulationParams,
                 seed: int) -> None:
        try:
            self._simulate(choice, params, random.Random(seed))
        except Exception:  # a demo run must never take the server down; said once per run
            log.exception("simulated run failed to record")
        finally:
            self._slots.release()
            with self._lock:
                self.finished += 1

    def _simulate(self, choice: tuple[str, int, float, str], params: SimulationParams,
                  rng: random.Random) -> None:
        from controlplane.core.run_tracker import ActiveRun  # it imports the ledger's users

        subtype, seconds, failure_rate, summary = choice
        run = Run.new(subtype, summary=summary, code_ref=self.ledger.store.code_ref(),
                      actor=dict(ACTOR))
        run.extra["demo"] = True
        active = ActiveRun(run, self.ledger, self.bus)
        with self._lock:
            self.started.append(run.run_id)
        active.start()
        failed = rng.random() < failure_rate
        lines = OUTPUT[: 3 if failed else 5]
        duration = max(0.05, rng.lognormvariate(0, 0.5) * seconds * params.duration_scale)
        for line in lines:
            if self._stop.wait(duration / len(lines)) or active.cancel_requested.is_set():
                active.finish(RunStatus.CANCELLED, {"code": "cancelled",
                                                    "message": "the simulation was stopped"})
                return
            active.output(line)
        if failed:
            active.output("error: step 3/3 failed", stream="stderr")
            active.finish(RunStatus.FAILED, {"code": "exit_status",
                                             "message": "the tool exited with status 1"})
        else:
            active.finish(RunStatus.OK)
