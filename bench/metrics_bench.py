"""``/api/metrics/summary``'s index work at 10k and 100k runs: running totals vs a scan.

``python bench/metrics_bench.py [--sizes 10000 100000] [--check]``

An index is filled with realistic runs (``ledger_bench.synthetic_run`` over a year) in
one apply; the unfiltered summary (``RunIndex.filtered_metrics`` with an empty filter)
is timed from the totals, then with the totals marked stale (the scan every request made
before). Goal (issue 18 item 6): <= 5 ms at 100k.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.goals import Goal, print_goals
from bench.ledger_bench import spread_ids, synthetic_run
from controlplane.core.ledger.index import RunIndex
from controlplane.core.ledger.run_query import RunFilter
from controlplane.core.runs import ledger_dir

GOAL_MS = 5.0


def filled(path: Path, count: int) -> RunIndex:
    rng = random.Random(3)
    now = time.time()
    ids = spread_ids(rng, count, now - 365 * 86_400, now)
    runs = [(synthetic_run(rng, i, "0" * 40, "bench", "host")[0].to_dict(), ledger_dir(i))
            for i in ids]
    index = RunIndex(path)
    index.apply(None, "1" * 40, runs, [])
    return index


def timed(fn, samples: int) -> float:
    fn()
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out) * 1e3


def measure(count: int, samples: int) -> tuple[float, float]:
    """(ms from the totals, ms by a scan) for the unfiltered summary at *count* runs."""
    with tempfile.TemporaryDirectory(prefix="scp-metrics-", ignore_cleanup_errors=True) as tmp:
        path = Path(tmp) / "index.sqlite"
        index = filled(path, count)
        everything = RunFilter.of({})
        fast = timed(lambda: index.filtered_metrics(everything), samples)
        with sqlite3.connect(path) as db:
            db.execute("UPDATE meta SET value = 'stale' WHERE key = 'totals'")
        slow = timed(lambda: index.filtered_metrics(everything), max(3, samples // 10))
        index.close()
    return fast, slow


def run_suite(quick: bool = False, long: bool = False) -> list[Goal]:
    """``python -m bench``'s entry: 10k (and 100k unless *quick*; 100k is the goal's size)."""
    del long
    sizes = [10_000] if quick else [10_000, 100_000]
    measured = [Goal(f"metrics summary @{n:,} runs (index)", fast, GOAL_MS, unit="ms",
                     note=f"scan {slow:.1f} ms")
                for n, (fast, slow) in ((n, measure(n, 50)) for n in sizes)]
    print_goals("metrics summary (issue 18 item 6)", measured)
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    goals = []
    for count in args.sizes:
        fast, slow = measure(count, args.samples)
        goals.append(Goal(f"metrics summary @{count:,} runs (index)", fast, GOAL_MS, unit="ms",
                          note=f"scan {slow:.1f} ms"))
    print_goals("metrics summary (issue 18 item 6)", goals)
    return 1 if args.check and not all(g.met for g in goals) else 0


if __name__ == "__main__":
    sys.exit(main())
