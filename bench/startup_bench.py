"""Start-up benchmark: ``controlplane runs list`` and ``exec -- true`` vs ``python -c pass``.

Like hyperfine: the commands run in interleaved rounds (a few warm-up rounds first),
each a fresh process; the minimum and the median of each are printed. Goals (issue 18,
item 8), on the medians: ``runs list`` <= 40 ms; ``exec -- true`` <= 50 ms over
``python -c pass`` of the same rounds (the interpreter's own start differs between machines:
a ``.pth`` file of site-packages that imports something counts in every process here).

``runs list`` and ``exec`` are also timed on an interpreter that skips site-packages'
``.pth`` files (``python -S`` running the same console script, the package and its
dependencies on ``PYTHONPATH``; before session 15 ``python -S -m controlplane``, which
adds runpy's ~6 ms that the command as typed never pays): on this
sandbox two of them (an editable install's finder, a certificate hook importing
``certifi``) take ~25 ms of every Python process's start, which a clean install does not
pay; they also import pathlib, re, typing and more, which "over ``python -c pass``" then
does not count against a command that needs them. Under ``-S`` every import counts.

`python -m bench.startup_bench [--rounds 30]`
"""

from __future__ import annotations

import argparse
import os
import site
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.goals import Goal, print_goals

GOAL_RUNS_LIST_MS, GOAL_EXEC_OVERHEAD_MS = 40.0, 50.0


NO_PTH = ("python -S -c pass", "runs list, python -S", "exec -- true, python -S")


def commands() -> dict[str, list[str]]:
    script = Path(sys.executable).parent / "controlplane"  # the console script (not a shim)
    cp = [str(script)] if script.exists() else [sys.executable, "-m", "controlplane"]
    # under -S, the same console script run by the interpreter (``-m`` would add runpy's
    # ~6 ms, importlib.util and contextlib with it, which the command as typed never pays)
    cp_no_pth = [sys.executable, "-S", *(cp if script.exists() else cp[1:])]
    return {"python -c pass": [sys.executable, "-c", "pass"],
            "true": ["true"],
            "runs list": [*cp, "runs", "list"],
            "exec -- true": [*cp, "exec", "test:startup", "--", "true"],
            NO_PTH[0]: [sys.executable, "-S", "-c", "pass"],
            NO_PTH[1]: [*cp_no_pth, "runs", "list"],
            NO_PTH[2]: [*cp_no_pth, "exec", "test:startup", "--", "true"]}


def no_pth_path(root: Path) -> str:
    """A PYTHONPATH for ``python -S``: ``controlplane`` as imported here (an editable
    install's ``src/`` too), then site-packages."""
    import controlplane

    holder = root / "no-pth"
    holder.mkdir()
    (holder / "controlplane").symlink_to(Path(controlplane.__file__).parent,
                                         target_is_directory=True)
    return os.pathsep.join([str(holder), *site.getsitepackages()])


def project(root: Path) -> Path:
    repo = root / "project"
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com"}
    for args in (["init", "-q", "-b", "main", str(repo)],
                 ["-C", str(repo), "commit", "-q", "--allow-empty", "-m", "initial"]):
        subprocess.run(["git", *args], check=True, env=env)
    subprocess.run(commands()["exec -- true"], cwd=repo, check=True, env=env,
                   capture_output=True)  # the ledger exists: what a user's second command sees
    return repo


def measure(rounds: int, warmup: int = 3) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in commands()}
    with tempfile.TemporaryDirectory(prefix="scp-startup-bench-",
                                     ignore_cleanup_errors=True) as tmp:
        repo = project(Path(tmp))
        # as installed: byte code cached (the warm-up writes it, outside the checkout)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        no_pth = {**env, "PYTHONPATH": no_pth_path(Path(tmp))}
        for n in range(warmup + rounds):
            for name, argv in commands().items():
                t0 = time.perf_counter()
                subprocess.run(argv, cwd=repo, check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=no_pth if name in NO_PTH else env)
                if n >= warmup:
                    times[name].append((time.perf_counter() - t0) * 1000)
    return times


def goals(times: dict[str, list[float]]) -> list[Goal]:
    median = {name: statistics.median(values) for name, values in times.items()}
    base, runs_list, exec_true = (median[k] for k in ("python -c pass", "runs list",
                                                      "exec -- true"))
    return [
        Goal("runs list (median wall time)", runs_list, GOAL_RUNS_LIST_MS, unit="ms",
             note=f"python -c pass {base:.1f} ms, so {runs_list - base:.1f} ms over it; "
                  f"min {min(times['runs list']):.1f} ms"),
        Goal("runs list, no site .pth files (python -S)", median[NO_PTH[1]], GOAL_RUNS_LIST_MS,
             unit="ms", note=f"python -S -c pass {median[NO_PTH[0]]:.1f} ms; "
                             f"min {min(times[NO_PTH[1]]):.1f} ms"),
        Goal("exec -- true overhead, no site .pth files (python -S)",
             median[NO_PTH[2]] - median[NO_PTH[0]], GOAL_EXEC_OVERHEAD_MS, unit="ms",
             note=f"exec -- true {median[NO_PTH[2]]:.1f} ms, python -S -c pass "
                  f"{median[NO_PTH[0]]:.1f} ms: the modules the .pth files import count here"),
        Goal("exec -- true overhead (median, over python -c pass)", exec_true - base,
             GOAL_EXEC_OVERHEAD_MS, unit="ms",
             note=f"exec -- true {exec_true:.1f} ms, python -c pass {base:.1f} ms, "
                  f"true {median['true']:.1f} ms; min {min(times['exec -- true']):.1f} ms"),
    ]


def run(quick: bool = False, long: bool = False) -> list[Goal]:
    times = measure(15 if quick else 30)
    found = goals(times)
    print_goals(f"start-up (load average {os.getloadavg()[0]:.1f})", found)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    times = measure(args.rounds)
    for name, values in times.items():
        print(f"  {name:16} min {min(values):7.1f} ms  median {statistics.median(values):7.1f} ms")
    found = goals(times)
    print_goals(f"start-up (load average {os.getloadavg()[0]:.1f})", found)
    return 0 if all(goal.met for goal in found) else 1


if __name__ == "__main__":
    sys.exit(main())
