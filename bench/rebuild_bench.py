"""Rebuild of view and index against its floor (issue 18 item 9).

``python bench/rebuild_bench.py [--runs 10000] [--check]``

*ours*: ``Ledger.rebuild_index()`` (the view deleted and written again from the ledger,
the index emptied and filled). *floor*: ``git archive scp-ledger | tar x`` into an empty
directory, then every ``run.json`` read and inserted into a fresh SQLite table in one
transaction. Goal: ours <= 2x the floor.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.goals import Goal, print_goals
from bench.ledger_bench import make_repo, prefill, spread_ids
from controlplane.core.ledger import Ledger

GOAL = 2.0


def floor(repo: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    t0 = time.perf_counter()
    archive = subprocess.Popen(["git", "archive", "scp-ledger"], cwd=repo,
                               stdout=subprocess.PIPE)
    subprocess.run(["tar", "x", "-C", str(out)], stdin=archive.stdout, check=True)
    archive.wait()
    db = sqlite3.connect(out / "floor.sqlite", isolation_level=None)
    db.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, type TEXT, subtype TEXT, "
               "status TEXT, summary TEXT, started_at TEXT, ended_at TEXT, duration_ms INTEGER,"
               " dir TEXT, json TEXT NOT NULL)")
    db.execute("BEGIN")
    for path in (out / "ledger" / "runs").rglob("run.json"):
        run = json.loads(path.read_bytes())
        db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)",
                   (run["run_id"], run.get("type"), run.get("subtype"), run.get("status"),
                    run.get("summary"), run.get("started_at"), run.get("ended_at"),
                    run.get("duration_ms"), str(path.parent), json.dumps(run)))
    db.execute("COMMIT")
    db.close()
    return time.perf_counter() - t0


def measure(runs: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory(prefix="scp-rebuild-", ignore_cleanup_errors=True) as tmp:
        repo = Path(tmp) / "repo"
        code = make_repo(repo)
        ids = spread_ids(random.Random(9), runs, time.time() - 365 * 86_400, time.time())
        prefill(repo, None, ids, code, seed=9, scratch=Path(tmp) / "scratch")
        ledger = Ledger.open(repo)
        floors, ours = [], []
        for _ in range(2):
            floors.append(floor(repo, Path(tmp) / "floor"))
            t0 = time.perf_counter()
            count = ledger.rebuild_index()
            ours.append(time.perf_counter() - t0)
        Ledger.forget_instances()
        return min(ours), min(floors), count


def goals(runs: int) -> list[Goal]:
    ours, floor_s, count = measure(runs)
    return [Goal(f"rebuild @{runs:,} / archive+tar+SQLite floor", ours / floor_s, GOAL,
                 note=f"{ours:.2f} s vs {floor_s:.2f} s, {count:,} runs")]


def run_suite(quick: bool = False, long: bool = False) -> list[Goal]:
    measured = goals(100_000 if long else 2_000 if quick else 10_000)
    print_goals("rebuild (issue 18 item 9)", measured)
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    measured = goals(args.runs)
    print_goals("rebuild (issue 18 item 9)", measured)
    return 1 if args.check and not all(g.met for g in measured) else 0


if __name__ == "__main__":
    sys.exit(main())
