"""Memory benchmark: RSS of one process recording many runs, and of a server after async runs.

1. recorder: a fresh Python process records R runs (default 4,000) with
   ``tracked_run`` into a temporary project; RSS at runs 1,000 and 4,000
   (and every 1,000). Bound (DECISIONS §6): ≤ 20 MB growth from 1,000 to 4,000.
2. server: ``controlplane serve`` over a temporary project whose ``pytest`` is
   a fake printing L lines (default 2,000); A runs (default 500) are started one
   after the other with ``Prefer: respond-async`` (the dashboard's path), each
   awaited on ``GET /api/runs/<id>``; server RSS (master and workers) at async
   runs 100 and 500. Bound: ≤ 10 MB growth from 100 to 500.

``python bench/memory_bench.py [--quick] [--runs R] [--async-runs A] [--lines L]
[--json PATH]``. To measure another checkout ("before"), put a directory whose
``controlplane`` points at that checkout's ``src`` first on PYTHONPATH; the
``controlplane`` used is printed. Exits 1 when a bound is missed (full form only).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/memory_bench.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from bench.web_bench import TOKEN, free_port

RECORDER = """
import json, sys, psutil
from controlplane import tracked_run
root, count, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
me = psutil.Process()
for n in range(1, count + 1):
    with tracked_run("test", "test:memory", summary=f"run {n}", project_root=root) as run:
        run.output(f"line of run {n}")
        run.result = {"n": n}
    if n % every == 0 or n == count:
        print(json.dumps({"run": n, "rss_mb": round(me.memory_info().rss / 2**20, 1)}),
              flush=True)
"""

FAKE_PYTEST = """#!/bin/sh
i=0
while [ $i -lt {lines} ]; do echo "tests/test_x.py::test_$i PASSED"; i=$((i+1)); done
"""

FINAL = {"ok", "failed", "cancelled", "interrupted"}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def make_repo(path: Path) -> Path:
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@x"}
    path.mkdir(parents=True)
    (path / "tests").mkdir()
    (path / "tests" / "test_x.py").write_text("def test_x():\n    pass\n")
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "start"]):
        subprocess.run(["git", *args], cwd=path, check=True, env=env)
    return path


def which_controlplane() -> str:
    code = "import controlplane; print(controlplane.__file__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def recorder(tmp: Path, runs: int, every: int) -> dict[int, float]:
    """RSS (MB) of one process at every *every* runs it records."""
    repo = make_repo(tmp / "recorder")
    done = subprocess.run([sys.executable, "-c", RECORDER, str(repo), str(runs), str(every)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the recorder failed: {done.stderr[-2000:]}")
    points = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {p["run"]: p["rss_mb"] for p in points}


def tree_rss(pid: int) -> float:
    parent = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)]) / 2**20


def call(port: int, method: str, path: str, headers: dict[str, str] | None = None) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        body = b"{}" if method == "POST" else None
        conn.request(method, path, body=body,
                     headers={**AUTH, "Content-Type": "application/json", **(headers or {})})
        answer = conn.getresponse()
        payload = answer.read()
        if answer.status >= 400:
            raise RuntimeError(f"{method} {path}: {answer.status} {payload[:200]!r}")
        return json.loads(payload)
    finally:
        conn.close()


def start_run(port: int) -> str:
    """Start the suite; a 409 means the last run is recorded but its lock not yet released."""
    for _ in range(500):
        try:
            return call(port, "POST", "/testing/run", {"Prefer": "respond-async"})["run_id"]
        except RuntimeError as exc:
            if ": 409 " not in str(exc):
                raise
            time.sleep(0.01)
    raise RuntimeError("the suite's lock stayed held")


def server(tmp: Path, runs: int, lines: int, marks: tuple[int, ...]) -> dict[int, float]:
    """Server RSS (MB) after async run *m* for each mark."""
    repo = make_repo(tmp / "served")
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pytest"
    fake.write_text(FAKE_PYTEST.format(lines=lines))
    fake.chmod(0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    env.update(CONTROLPLANE_TOKEN=TOKEN, PATH=f"{bin_dir}{os.pathsep}{env['PATH']}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "controlplane", "serve", "--repo", str(repo), "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout or ():
            if "Control plane for " in line:
                break
        else:
            raise RuntimeError("the server did not start")
        found: dict[int, float] = {}
        for n in range(1, runs + 1):
            run_id = start_run(port)
            while call(port, "GET", f"/api/runs/{run_id}")["run"]["status"] not in FINAL:
                time.sleep(0.02)  # polling a live server, as the dashboard's fallback does
            if n in marks:
                found[n] = round(tree_rss(proc.pid), 1)
                print(f"  server: async run {n}: {found[n]} MB", flush=True)
        return found
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4_000)
    parser.add_argument("--async-runs", type=int, default=500)
    parser.add_argument("--lines", type=int, default=2_000)
    parser.add_argument("--quick", action="store_true", help="small numbers, a smoke test")
    parser.add_argument("--skip-server", action="store_true")
    parser.add_argument("--skip-recorder", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    first, async_first = 1_000, 100
    if args.quick:
        args.runs, args.async_runs, args.lines, first, async_first = 400, 40, 500, 100, 10
    print(f"controlplane: {which_controlplane()}")
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="scp-memory-bench-") as tmp:
        growth = 0.0
        if not args.skip_recorder:
            started = time.perf_counter()
            rss = recorder(Path(tmp), args.runs, first)
            growth = rss[args.runs] - rss[first]
            print(f"recorder: RSS at run {first:,} {rss[first]} MB, at run {args.runs:,} "
                  f"{rss[args.runs]} MB: +{growth:.1f} MB ({time.perf_counter() - started:.0f} s)")
            results["recorder"] = {"rss_mb": rss, "growth_mb": growth}
        if not args.skip_server:
            started = time.perf_counter()
            served = server(Path(tmp), args.async_runs, args.lines, (async_first, args.async_runs))
            server_growth = served[args.async_runs] - served[async_first]
            print(f"server: RSS after async run {async_first} {served[async_first]} MB, after "
                  f"{args.async_runs} {served[args.async_runs]} MB: +{server_growth:.1f} MB "
                  f"({args.lines} lines a run, {time.perf_counter() - started:.0f} s)")
            results["server"] = {"rss_mb": served, "growth_mb": server_growth,
                                 "lines": args.lines}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.quick:
        return 0
    missed = growth > 20 or (not args.skip_server and server_growth > 10)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
