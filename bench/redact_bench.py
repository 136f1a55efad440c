"""Redaction bench: CPU seconds to redact hostile 100 KB and 1 MiB lines, one per pattern.

`python bench/redact_bench.py [--repeat 3]`: for each line (a unit repeated, behind a prefix
holding every trigger word so that every shape runs), the least thread CPU time of
*repeat* calls, and the 1 MiB / 100 KB ratio (linear ≈ 10, quadratic ≈ 110).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controlplane.core.redact import Redactor

UNITS = ["token", "a", "Bearer ", "-----BEGIN ", "=", "%2F", "QUJDRGVmZ2hpams0NTY3ODkrLw",
         "secret_", 'token="', "x://:p@", "\x1b[31m", "a\r", "ab\b", "authorization: "]
PREFIX = "gh github_pat_ AKIA xox -----BEGIN :// authorization bearer passw token "


def cpu_seconds(redactor: Redactor, text: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time()
        redactor.redact(text)
        best = min(best, time.thread_time() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    redactor = Redactor()
    redactor.register("deploy-token-value-123")
    redactor.register("a" * 19 + "b")
    print(f"{'line of':<30} {'100 KB':>9} {'1 MiB':>9} {'ratio':>6}")
    worst = 0.0
    for unit in UNITS:
        big = (PREFIX + unit * ((1 << 20) // len(unit) + 1))[: 1 << 20]
        small = big[:100_000]
        small_s = cpu_seconds(redactor, small, args.repeat)
        big_s = cpu_seconds(redactor, big, args.repeat)
        worst = max(worst, big_s)
        print(f"{unit!r:<30} {small_s:>8.3f}s {big_s:>8.3f}s {big_s / small_s:>6.1f}")
    print(f"worst 1 MiB line: {worst:.3f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
