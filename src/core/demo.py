"""Demo data: realistic finished runs over past weeks, so the dashboard has something to show."""

from __future__ import annotations

import random
import time
from datetime import timedelta

from controlplane.core.ledger import Ledger
from controlplane.core.runs import Run, RunStatus, iso, new_run_id, run_id_time

# (subtype, typical seconds, failure rate, a summary)
CATALOGUE = (
    ("test:run", 40, 0.15, "pytest tests/"),
    ("test:coverage", 70, 0.1, "coverage run -m pytest"),
    ("build:docker", 120, 0.08, "docker build -t app:latest ."),
    ("deploy:k8s", 30, 0.12, "kubectl apply -f k8s/"),
    ("plan:terraform", 25, 0.05, "terraform plan"),
    ("deploy:terraform", 90, 0.1, "terraform apply"),
    ("validate:lint", 8, 0.2, "ruff check"),
    ("validate:typecheck", 20, 0.18, "mypy src"),
    ("git:push", 4, 0.03, "git push origin main"),
    ("backup:create", 15, 0.02, "backup of data/"),
    ("ci:build", 300, 0.1, "GitHub Actions build"),
    ("generate:dockerfile", 1, 0.0, "Dockerfile for the project"),
)
OUTPUT = ("collecting…", "running step 1/3", "running step 2/3", "running step 3/3", "done")


DEMO_ACTORS = ("alice", "bob", "carol")


def fill(ledger: Ledger, runs: int = 200, days: int = 42, seed: int | None = None,
         now: float | None = None, kinds: tuple[str, ...] = ("demo",)) -> list[str]:
    """Record *runs* finished runs spread over the *days* days before *now*; returns their ids.

    Actor kind ``demo`` (the default) keeps them on the local ``scp-demo`` branch, never
    pushed (DECISIONS §11); benches pass real kinds to build a ledger as users have it."""
    rng = random.Random(seed)
    now = time.time() if now is None else now
    starts = sorted(now - rng.uniform(0, days * 86_400) for _ in range(runs))
    code_ref = ledger.store.code_ref()
    recorded = []
    for started in starts:
        subtype, seconds, failure_rate, summary = rng.choice(CATALOGUE)
        run_id = new_run_id(started)
        run = Run.new(subtype, run_id=run_id, summary=summary, code_ref=code_ref,
                      actor={"kind": rng.choice(kinds), "name": rng.choice(DEMO_ACTORS)})
        run.extra["demo"] = True
        failed = rng.random() < failure_rate
        duration = max(0.2, rng.lognormvariate(0, 0.5) * seconds)
        run.status = RunStatus.FAILED if failed else RunStatus.OK
        run.ended_at = iso(run_id_time(run_id) + timedelta(seconds=duration))
        run.duration_ms = int(duration * 1000)
        if failed:
            run.error = {"code": "exit_status", "message": "the tool exited with status 1"}
        events = [{"seq": n + 1, "type": "run:output", "at": run.started_at,
                   "data": {"stream": "stdout", "line": line}}
                  for n, line in enumerate(OUTPUT[: 3 if failed else 5])]
        ledger.record(run, events)
        recorded.append(run_id)
    return recorded
