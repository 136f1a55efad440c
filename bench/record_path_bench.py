"""The record path against its pygit2 floor, at 0 and N runs (issue 18 items 4 and 5).

``python bench/record_path_bench.py [--runs 10000] [--samples 150] [--check]``

*ours*: an empty ``tracked_run`` (open, journal, commit, tag, view, index).
*floor*: what git needs for the same run and nothing else, with pygit2 in process: the two
blobs, the trees on the run's path, the commit, the branch moved, the tag object and its
ref, on a branch of its own that starts at the ledger's tip (the same tree sizes), in a
copy of the filled repository's ``.git`` (``floor_copy``). The floor's objects are loose, as
libgit2 writes them (pygit2 has no way to write new objects as a pack); ours are one pack
per record (``ledger/packwrite.py``), rolled up by a detached ``git repack`` that runs
during the rounds, on the other core, as it would in use.
Samples alternate between the two. Goals: ours / floor <= 1.3 at 0 and N runs and on a
day of 5,000 runs (item 5), ours @N / ours @0 <= 1.2 with N run refs packed (item 4).

The floor writes its tag's ref as git does (a ``.lock`` file, then a rename): libgit2's
``references.create`` reads every packed ref first, which at 100k run tags would make the
floor slower than the cheapest way and flatter us. Durability: both run in this process, so
the default ``batched`` mode's flush (``syncfs`` of the whole file system, at most once a
second) covers the floor's files as well as ours (DECISIONS §6: the same mode).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pygit2
from pygit2.enums import FileMode, ObjectType

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.goals import Goal, print_goals
from bench.ledger_bench import make_repo, prefill, spread_ids
from controlplane import tracked_run
from controlplane.core.ledger import Ledger
from controlplane.core.ledger.ledger import dumps, events_jsonl
from controlplane.core.ledger.store import BRANCH_REF
from controlplane.core.runs import Run, RunStatus, ledger_dir

GOAL_FLOOR, GOAL_GROWTH = 1.3, 1.2
FLOOR_REF = "refs/heads/bench-floor"


class Floor:
    """One run's git objects and refs, written the cheapest way pygit2 allows."""

    def __init__(self, repo: Path, code: str) -> None:
        self.repo = pygit2.Repository(str(repo))
        self.code = code
        tip = self.repo.references.get(BRANCH_REF)
        if tip is not None:
            self.repo.references.create(FLOOR_REF, tip.target, force=True)
        self.sig = pygit2.Signature("bench", "bench@example.com")

    def __call__(self) -> None:
        for attempt in range(3):
            try:
                return self._record()
            except OSError:  # libgit2 renames into objects/xx, which a roll-up's
                if attempt == 2:  # prune-packed may have just removed: as a writer would, again
                    raise
        return None

    def _record(self) -> None:
        repo = self.repo
        run = Run.new("test:floor", summary="")
        run.finish(RunStatus.OK)
        files = {"run.json": dumps(run.to_dict()), "events.jsonl": events_jsonl([])}
        leaf = repo.TreeBuilder()
        for name in sorted(files):
            leaf.insert(name, repo.create_blob(files[name]), FileMode.BLOB)
        ref = repo.references.get(FLOOR_REF)
        base = repo[ref.target].peel(pygit2.Tree) if ref is not None else None
        tree = self._path(base, ledger_dir(run.run_id).split("/"), leaf.write())
        parents = [ref.target] if ref is not None else []
        commit = repo.create_commit(None, self.sig, self.sig, "run", tree, parents)
        if ref is None:
            repo.references.create(FLOOR_REF, commit)
        else:
            ref.set_target(commit)
        tag = repo.odb.write(ObjectType.TAG, (
            f"object {self.code}\ntype commit\ntag floor/{run.run_id}\n"
            f"tagger bench <bench@example.com> 0 +0000\n\nfloor\n").encode())
        ref = Path(repo.path) / "refs" / "floor" / run.run_id
        ref.parent.mkdir(parents=True, exist_ok=True)
        lock = ref.with_name(ref.name + ".lock")
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        os.write(fd, f"{tag}\n".encode())
        os.close(fd)
        os.rename(lock, ref)

    def _path(self, tree: pygit2.Tree | None, parts: list[str], leaf: pygit2.Oid) -> pygit2.Oid:
        builder = self.repo.TreeBuilder(tree) if tree is not None else self.repo.TreeBuilder()
        child = None
        if len(parts) > 1 and tree is not None and parts[0] in tree:
            child = self.repo[tree[parts[0]].id]
        builder.insert(parts[0], leaf if len(parts) == 1 else self._path(child, parts[1:], leaf),
                       FileMode.TREE)
        return builder.write()


def floor_copy(repo: Path) -> Path:
    """A copy of *repo*'s ``.git`` (the ledger's objects and refs, not our caches) for the
    floor to write in: in the same objects directory, our records' packs and their
    roll-up would make the floor's writes find and re-list packs it never made."""
    copy = repo.with_name(repo.name + "-floor") / ".git"
    shutil.copytree(repo / ".git", copy, symlinks=True, ignore=shutil.ignore_patterns("scp"))
    return copy.parent


def ours(repo: Path):
    def record() -> None:
        with tracked_run("test", "test:bench", project_root=repo):
            pass
    return record


def interleaved(calls: list, samples: int) -> list[float]:
    """Median ms of each call, every round calling each once in turn (10 warm-up rounds):
    the machine's load moves every case alike."""
    for _ in range(10):
        for fn in calls:
            fn()
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(samples):
        for fn, out in zip(calls, times, strict=True):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return [statistics.median(out) * 1e3 for out in times]


def load() -> str:
    return open("/proc/loadavg").read().split()[0]


def measure(runs: int, samples: int, day_runs: int = 0) -> dict[str, float]:
    """Medians (ms) of ours and the floor at 0 runs, N runs over a year (``n``) and, with
    *day_runs*, a day holding that many runs (``day``): every repository is filled first,
    then all six are timed in the same rounds."""
    now = time.time()
    today = now - now % 86_400
    scenarios = [("0", 0, 0.0, 0.0), ("n", runs, now - 365 * 86_400, now - 86_400)]
    if day_runs:
        scenarios.append(("day", day_runs, today, max(today + 1, now - 120)))
    with tempfile.TemporaryDirectory(prefix="scp-record-") as tmp:
        found: dict[str, float] = {}
        calls, repos = [], []
        for label, count, start, end in scenarios:
            repo = Path(tmp) / f"repo-{label}"
            code = make_repo(repo)
            t0 = time.perf_counter()
            if count:
                ids = spread_ids(random.Random(5), count, start, end)
                prefill(repo, None, ids, code, seed=5, scratch=Path(tmp) / f"scratch-{label}")
            Ledger.open(repo)  # catch up once, outside the timing
            with tracked_run("test", "test:first", project_root=repo):
                pass
            found[f"prefill_s_{label}"] = time.perf_counter() - t0
            print(f"  filled @{label}: {count:,} runs in {found[f'prefill_s_{label}']:.0f} s, "
                  f"load {load()}", flush=True)
            calls += [ours(repo), Floor(floor_copy(repo), code)]
            repos.append(repo)
        medians = interleaved(calls, samples)
        for number, (label, count, _, _) in enumerate(scenarios):
            mine, floor = medians[2 * number], medians[2 * number + 1]
            found[f"ours_{label}"], found[f"floor_{label}"] = mine, floor
            print(f"  record @{label} ({count:,} runs): ours {mine:.2f} ms, floor {floor:.2f} ms",
                  flush=True)
        print(f"  timed in the same rounds, load {load()} at the end", flush=True)
        for repo in repos:
            Ledger.open(repo).durability.flush()  # now: its repository is deleted next
            Ledger.open(repo).wait_background()  # a roll-up of its packs
        Ledger.forget_instances()
        return found


def goals(runs: int = 10_000, samples: int = 150, day_runs: int = 5_000) -> list[Goal]:
    found = measure(runs, samples, day_runs)
    measured = [
        Goal("record / pygit2 floor @0 runs", found["ours_0"] / found["floor_0"], GOAL_FLOOR,
             note=f"{found['ours_0']:.2f} vs {found['floor_0']:.2f} ms"),
        Goal(f"record / pygit2 floor @{runs:,} runs", found["ours_n"] / found["floor_n"],
             GOAL_FLOOR, note=f"{found['ours_n']:.2f} vs {found['floor_n']:.2f} ms"),
        Goal(f"record @{runs:,} / record @0 (refs packed)", found["ours_n"] / found["ours_0"],
             GOAL_GROWTH),
    ]
    if day_runs:
        measured.append(Goal(f"record / pygit2 floor on a day of {day_runs:,} runs",
                             found["ours_day"] / found["floor_day"], GOAL_FLOOR,
                             note=f"{found['ours_day']:.2f} vs {found['floor_day']:.2f} ms"))
    return measured


def run_suite(quick: bool = False, long: bool = False) -> list[Goal]:
    """``python -m bench``'s entry."""
    measured = goals(100_000 if long else 2_000 if quick else 10_000, 40 if quick else 150,
                     500 if quick else 5_000)
    print_goals("record path (issue 18 items 4, 5)", measured)
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=150)
    parser.add_argument("--day-runs", type=int, default=5_000,
                        help="runs already in today's directory for the busy-day case (0: skip)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    measured = goals(args.runs, args.samples, args.day_runs)
    print_goals("record path (issue 18 items 4, 5)", measured)
    return 1 if args.check and not all(g.met for g in measured) else 0


if __name__ == "__main__":
    sys.exit(main())
