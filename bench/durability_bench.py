"""What each ``durability`` mode costs a record (issue 18 item 10).

``python bench/durability_bench.py [--runs 100]``: one fresh process and repository per
mode (libgit2's fsync switch is process-wide), modes interleaved over ``--rounds``; the
median of ``--runs`` empty ``tracked_run`` records, then the time the process spends
exiting (the batched mode's last flush).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ledger_bench import make_repo

MODES = ("none", "batched", "record")
CHILD = r"""
import json, sys, time
from controlplane import tracked_run
repo, runs = sys.argv[1], int(sys.argv[2])
for _ in range(5):
    with tracked_run("test", "test:warm", project_root=repo):
        pass
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    with tracked_run("test", "test:bench", project_root=repo):
        pass
    times.append(time.perf_counter() - t0)
print(json.dumps({"times": times, "exit_at": time.perf_counter()}), flush=True)
"""


def one(mode: str, runs: int, tmp: Path, n: int) -> tuple[float, float]:
    repo = tmp / f"{mode}-{n}"
    make_repo(repo)
    env = {**os.environ, "CONTROLPLANE_DURABILITY": mode}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(repo), str(runs)], env=env,
                            stdout=subprocess.PIPE, text=True)
    out = json.loads(proc.stdout.readline())
    seen = time.perf_counter()
    proc.wait()
    exit_ms = (time.perf_counter() - seen) * 1e3
    return statistics.median(out["times"]) * 1e3, exit_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    found: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(prefix="scp-durability-", ignore_cleanup_errors=True) as tmp:
        for n in range(args.rounds):
            for mode in MODES:
                found[mode].append(one(mode, args.runs, Path(tmp), n))
    print(f"load average {os.getloadavg()[0]:.1f}")
    for mode in MODES:
        medians = [m for m, _ in found[mode]]
        exits = [e for _, e in found[mode]]
        print(f"  {mode:8} record median {statistics.median(medians):7.2f} ms   "
              f"process exit {statistics.median(exits):7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
