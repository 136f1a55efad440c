"""Busy days: what recording a run costs when today already holds thousands of runs.

``python bench/busy_day_bench.py [--day-runs 5000] [--samples 150] [--check]``

Two throw-away repositories: a quiet one (nothing today) and a busy one (``--day-runs``
runs today, bulk-written like ``ledger_bench.prefill``). In each, ``Ledger.record`` of a
realistic run is timed, one record in each per round, and the bytes of the objects it adds
(loose, packs) are counted. The same
is measured with the first layout (runs directly under the day, ``--first-layout``) for the
before figure. Goals (issue 18 item 2): busy / quiet <= 1.2x, bytes per record <= 10 KiB.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pygit2

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.goals import Goal, print_goals
from bench.ledger_bench import (
    GIT_ENV,
    bulk_tree,
    git,
    make_repo,
    pack_into,
    synthetic_run,
    write_leaf,
)
from controlplane.core.ledger import Ledger
from controlplane.core.ledger import ledger as ledger_module
from controlplane.core.ledger.ledger import dumps, events_jsonl
from controlplane.core.ledger.store import BRANCH_REF
from controlplane.core.runs import ledger_dirs, new_run_id

GOAL_BUSY_RATIO, GOAL_BYTES = 1.2, 10 * 1024


def first_layout_dir(run_id: str) -> str:
    """Where the first layout put a run (no bucket)."""
    return ledger_dirs("runs", run_id)[1]


def fill_today(repo: Path, count: int, code: str, directory_of, seed: int,
               scratch: Path) -> None:
    """*count* runs of today in the ledger, as one commit moved in as one pack.

    The objects are made with pygit2 in *scratch*, which borrows *repo*'s objects, then
    ``git pack-objects | git index-pack`` moves them in (``ledger_bench.prefill``): the
    repository holds no loose object, as after a day of records and their roll-ups, and
    no mass deletion precedes the timing (file creation on this journal-less ext4 is slow
    for seconds after one). Before session 14 they were written loose, with ``gc.auto``
    turned off so that git would not pack them during the timing; that also turned off
    the ledger's pack per record, so the suite timed records writing loose objects."""
    ledger = Ledger.open(repo, recover=False)
    pygit2.init_repository(str(scratch), bare=True)
    (scratch / "objects" / "info" / "alternates").write_text(f"{repo / '.git' / 'objects'}\n")
    srepo, rng = pygit2.Repository(str(scratch)), random.Random(seed)
    now = time.time()
    midnight = now - now % 86_400  # the measured runs fall on the same UTC day
    leaves = {}
    for _ in range(count):
        run_id = new_run_id(now=rng.uniform(midnight, now))
        run, events = synthetic_run(rng, run_id, code, GIT_ENV["GIT_AUTHOR_NAME"], "bench")
        files = {"run.json": dumps(run.to_dict()), "events.jsonl": events_jsonl(events)}
        leaves[directory_of(run_id)] = write_leaf(srepo, files)
    sig = ledger.store.signature()
    tree = bulk_tree(srepo, None, leaves)
    commit = str(srepo.create_commit(None, sig, sig, f"{count} runs today", tree, []))
    pack_into(scratch, repo, [commit])
    git(repo, "update-ref", BRANCH_REF, commit)
    ledger.catch_up()


def object_bytes(repo: Path) -> int:
    """Bytes of every object file: loose objects, and packs with their indexes (a record
    writes one pack, ``ledger/packwrite.py``)."""
    objects = repo / ".git" / "objects"
    return sum(entry.stat().st_size for sub in [*objects.glob("[0-9a-f][0-9a-f]"),
                                                objects / "pack"] if sub.is_dir()
               for entry in os.scandir(sub) if entry.is_file())


def measure(repos: dict[str, tuple[Path, str]], samples: int, seed: int
            ) -> dict[str, tuple[float, float]]:
    """name -> (median ms per record, object bytes added per record) over *samples*
    records in each repository, their records interleaved (one each per round, the order
    swapped every round): a slower stretch of the machine weighs on both alike."""
    ledgers, runs, before = {}, {}, {}
    for name, (repo, code) in repos.items():
        ledgers[name] = ledger = Ledger.open(repo)
        # each with its index open, as a server's: the quiet one (no branch yet, nothing
        # caught up at open) would otherwise leave its runs queued (index_queue) while the
        # busy one, caught up at open, writes its index: a difference that is not the day's
        ledger.index.head()
        rng = random.Random(seed)
        runs[name] = [synthetic_run(rng, new_run_id(), code, "bench", socket.gethostname())
                      for _ in range(samples + 10)]
        for run, events in runs[name][:10]:  # warm-up
            ledger.record(run, events)
        ledger.wait_background()
        before[name] = object_bytes(repo)
    times: dict[str, list[float]] = {name: [] for name in repos}
    order = list(repos)
    rolled_up, ledger_module.PACKS_ROLLED_UP = ledger_module.PACKS_ROLLED_UP, 10**9
    try:  # no roll-up in the window: what the records wrote, not what a repack merged
        for index in range(10, samples + 10):
            for name in order:
                run, events = runs[name][index]
                t0 = time.perf_counter()
                ledgers[name].record(run, events)
                times[name].append(time.perf_counter() - t0)
            order.reverse()
    finally:
        ledger_module.PACKS_ROLLED_UP = rolled_up
    return {name: (statistics.median(times[name]) * 1e3,
                   (object_bytes(repo) - before[name]) / samples)
            for name, (repo, _) in repos.items()}


def run(day_runs: int, samples: int, first_layout: bool) -> dict[str, float]:
    original = ledger_module.ledger_dir
    directory_of = first_layout_dir if first_layout else original
    ledger_module.ledger_dir = directory_of  # the first layout: where the previous version wrote
    try:
        with tempfile.TemporaryDirectory(prefix="scp-busy-",
                                         ignore_cleanup_errors=True) as tmp:
            quiet, busy = Path(tmp) / "quiet", Path(tmp) / "busy"
            code_quiet, code_busy = make_repo(quiet), make_repo(busy)
            fill_today(busy, day_runs, code_busy, directory_of, seed=7,
                       scratch=Path(tmp) / "scratch.git")
            found = measure({"quiet": (quiet, code_quiet), "busy": (busy, code_busy)},
                            samples, seed=1)
            (quiet_ms, quiet_bytes), (busy_ms, busy_bytes) = found["quiet"], found["busy"]
            Ledger.forget_instances()
    finally:
        ledger_module.ledger_dir = original
    return {"quiet_ms": quiet_ms, "busy_ms": busy_ms, "quiet_bytes": quiet_bytes,
            "busy_bytes": busy_bytes}


def goals(day_runs: int = 5000, samples: int = 150) -> list[Goal]:
    """The busy-day goals, measured with the current layout."""
    found = run(day_runs, samples, first_layout=False)
    return [
        Goal(f"record on a {day_runs:,}-run day / quiet day", found["busy_ms"] / found["quiet_ms"],
             GOAL_BUSY_RATIO, note=f"{found['busy_ms']:.2f} vs {found['quiet_ms']:.2f} ms"),
        Goal(f"bytes added per record on a {day_runs:,}-run day", found["busy_bytes"] / 1024,
             GOAL_BYTES / 1024, unit="KiB"),
    ]


def run_suite(quick: bool = False, long: bool = False) -> list[Goal]:
    """``python -m bench``'s entry: the goals, smaller with *quick*."""
    del long  # a 5,000-run day is the goal's own size
    measured = goals(day_runs=5000, samples=40 if quick else 150)
    print_goals("busy days (issue 18 item 2)", measured)
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day-runs", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=150)
    parser.add_argument("--first-layout", action="store_true",
                        help="measure the first layout (no buckets): the before figure")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    if args.first_layout:
        found = run(args.day_runs, args.samples, first_layout=True)
        print({k: round(v, 2) for k, v in found.items()})
        return 0
    measured = goals(args.day_runs, args.samples)
    print_goals("busy days (issue 18 item 2)", measured)
    return 1 if args.check and not all(g.met for g in measured) else 0


if __name__ == "__main__":
    sys.exit(main())
