"""``python -m bench``: the ledger benchmark, then the goals of the performance issue.

    python -m bench [--check] [--only push,fanout,startup,ledger] [--quick | --long]
                    [--against COMMIT] [ledger benchmark options: --runs N ...]

Each suite measures its floor in the same run and prints its goals (ratio, limit,
met or MISSED). ``--check`` exits 1 when a goal is missed (or a ledger correctness
check failed). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # `python bench` (the directory) rather than `python -m bench`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SUITES = ("ledger", "push", "fanout", "startup", "busy", "metrics", "record",
          "rebuild")
FANOUT_BASELINE = "2b25e84"  # the last commit before the broadcaster: "today" for fan-out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", add_help=False)
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--only", default=",".join(SUITES), help="suites, comma-separated")
    parser.add_argument("--long", action="store_true", help="100k runs where it applies")
    parser.add_argument("--against", default=FANOUT_BASELINE,
                        help="commit the fan-out is compared with (Nx today)")
    parser.add_argument("-h", "--help", action="store_true")
    args, rest = parser.parse_known_args(argv)
    if args.help:
        print(__doc__)
        return 0
    quick = "--quick" in rest
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(SUITES)
    if unknown:
        parser.error(f"--only: unknown suite(s) {', '.join(sorted(unknown))}; "
                     f"choose from {', '.join(SUITES)}")
    failed = False
    goals = []
    if "ledger" in chosen:
        from bench.ledger_bench import main as ledger_main

        failed = ledger_main(rest + (["--runs", "100000"] if args.long else [])) != 0
    if "push" in chosen:
        from bench import push_bench

        goals += push_bench.run(quick=quick, long=args.long)
    if "fanout" in chosen:
        from bench import fanout_bench

        goals += fanout_bench.run(quick=quick, long=args.long, against=args.against)
    if "startup" in chosen:
        from bench import startup_bench

        goals += startup_bench.run(quick=quick, long=args.long)
    if "busy" in chosen:
        from bench import busy_day_bench

        goals += busy_day_bench.run_suite(quick=quick, long=args.long)
    if "metrics" in chosen:
        from bench import metrics_bench

        goals += metrics_bench.run_suite(quick=quick, long=args.long)
    if "record" in chosen:
        from bench import record_path_bench

        goals += record_path_bench.run_suite(quick=quick, long=args.long)
    if "rebuild" in chosen:
        from bench import rebuild_bench

        goals += rebuild_bench.run_suite(quick=quick, long=args.long)
    missed = [goal for goal in goals if not goal.met]
    print(f"\n{len(goals) - len(missed)}/{len(goals)} goals met"
          + (": missed " + "; ".join(goal.name for goal in missed) if missed else ""))
    if args.check:
        return 1 if missed or failed else 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
