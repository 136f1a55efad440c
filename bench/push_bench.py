"""Push benchmark: ``LedgerSync.push`` against plain ``git push`` of the same refs, one run.

A project with N runs (bulk prefill, packed refs, as ``bench.ledger_bench``) and a bare
remote holding its code; the first push publishes everything. Then, interleaved:

- **no-op**: our push with nothing new vs ``git push <remote> scp-ledger
  'refs/scp/run/*:refs/scp/run/*'`` (the same refs, nothing new);
- **1,000 new runs** (per round): a twin of the remote is copied first; ours pushes to
  one, plain git the same objects to the other.

`python -m bench.push_bench [--runs 10000] [--samples 7] [--new 1000] [--rounds 4] [--quick]`

Four rounds of 1,000 new runs by default, the median of each side: with two (before
session 14), one slow push of ours made the mean of two 2.30x, where eight rounds run
alone in the same hour were 1.24x to 1.49x each. Each round's ratio is printed.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.goals import Goal, print_goals
from bench.ledger_bench import DAY, git, make_repo, prefill, say, spread_ids
from controlplane.core.ledger import Ledger
from controlplane.core.ledger.sync import LedgerSync

GOAL_RATIO = 2.0
ROUNDS = 4  # rounds of `new` runs pushed by each side
PLAIN = ["push", "--quiet", "origin", "refs/heads/scp-ledger:refs/heads/scp-ledger",
         "refs/scp/run/*:refs/scp/run/*"]


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def ours_push(project: Path) -> None:
    Ledger.forget_instances()
    report = LedgerSync(Ledger.open(project)).push()
    if not report.pushed:
        raise RuntimeError("our push did not push")


def add_runs(project: Path, count: int, code: str, seed: int, scratch: Path) -> None:
    now = time.time()
    ids = spread_ids(random.Random(seed), count, now - DAY, now - 60)
    prefill(project, None, ids, code, seed, scratch, packed_refs=False)
    Ledger.forget_instances()
    Ledger.open(project).catch_up()


def measure(work: Path, runs: int, samples: int, new: int, rounds: int) -> dict:
    project = work / "project"
    code = make_repo(project)
    remote = work / "remote.git"
    git(work, "clone", "-q", "--bare", str(project), str(remote))
    git(project, "remote", "add", "origin", str(remote))
    say(f"push bench: prefill {runs:,} runs")
    ids = spread_ids(random.Random(1), runs, time.time() - 365 * DAY, time.time() - 2 * DAY)
    prefill(project, None, ids, code, 1, work / "scratch-0.git")
    Ledger.forget_instances()
    Ledger.open(project).catch_up()
    first = timed(lambda: ours_push(project))
    say(f"first push of {runs:,} runs: {first:.2f} s")
    ours, plain = [], []
    for _ in range(samples):
        plain.append(timed(lambda: git(project, *PLAIN)))
        ours.append(timed(lambda: ours_push(project)))
    result = {"runs": runs, "first_push_s": first, "noop_ours_s": statistics.median(ours),
              "noop_plain_s": statistics.median(plain), "new": new, "new_ours_s": [],
              "new_plain_s": []}
    for n in range(rounds):
        twin = work / f"twin-{n}.git"
        shutil.copytree(remote, twin, symlinks=True)
        add_runs(project, new, code, 100 + n, work / f"scratch-{n + 1}.git")
        twin_push = [*PLAIN[:2], str(twin), *PLAIN[3:]]
        plain_push = partial(git, project, *twin_push)
        if n % 2:
            result["new_plain_s"].append(timed(plain_push))
            result["new_ours_s"].append(timed(lambda: ours_push(project)))
        else:
            result["new_ours_s"].append(timed(lambda: ours_push(project)))
            result["new_plain_s"].append(timed(plain_push))
        shutil.rmtree(twin)
    remote_tags = len(git(remote, "for-each-ref", "refs/scp/run").stdout.splitlines())
    if remote_tags != runs + rounds * new:
        raise RuntimeError(f"the remote holds {remote_tags} run tags, not {runs + rounds * new}")
    leftovers = git(project, "for-each-ref", "refs/scp/outbox").stdout
    if leftovers:
        raise RuntimeError("our push left refs under refs/scp/outbox/")
    return result


def goals(result: dict) -> list[Goal]:
    runs, new = result["runs"], result["new"]
    noop = result["noop_ours_s"] / result["noop_plain_s"]
    found = [Goal(f"push no-op @{runs:,} vs plain git push", noop, GOAL_RATIO,
                  note=f"{result['noop_ours_s'] * 1000:.0f} vs "
                       f"{result['noop_plain_s'] * 1000:.0f} ms")]
    if result["new_ours_s"]:
        ours = statistics.median(result["new_ours_s"])
        plain = statistics.median(result["new_plain_s"])
        each = ", ".join(f"{o / p:.2f}" for o, p in zip(result["new_ours_s"],
                                                          result["new_plain_s"], strict=True))
        found.append(Goal(f"push {new:,} new runs @{runs:,} vs plain git push", ours / plain,
                          GOAL_RATIO, note=f"{ours * 1000:.0f} vs {plain * 1000:.0f} ms; "
                                           f"rounds {each}"))
    return found


def run(quick: bool = False, long: bool = False) -> list[Goal]:
    """The push goals, measured (10k runs; 500 with *quick*; 100k with *long*)."""
    runs = 500 if quick else 100_000 if long else 10_000
    with tempfile.TemporaryDirectory(prefix="scp-push-bench-", ignore_cleanup_errors=True) as tmp:
        result = measure(Path(tmp), runs, 3 if quick else 7, 100 if quick else 1000,
                         1 if quick else ROUNDS)
    Ledger.forget_instances()
    found = goals(result)
    print_goals(f"push (first push of {runs:,} runs: {result['first_push_s']:.2f} s)", found)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=7)
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.samples, args.new, args.rounds = 500, 3, 100, 1
    with tempfile.TemporaryDirectory(prefix="scp-push-bench-", ignore_cleanup_errors=True) as tmp:
        result = measure(Path(tmp), args.runs, args.samples, args.new, args.rounds)
    found = goals(result)
    print_goals(f"push (first push of {args.runs:,} runs: {result['first_push_s']:.2f} s)", found)
    return 0 if all(goal.met for goal in found) else 1


if __name__ == "__main__":
    sys.exit(main())
