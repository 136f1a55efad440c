"""Bus benchmark: publish → SSE client latency, in-process bus vs Redis, in one run.

One project, one redis-server on a free loopback port, then rounds that
alternate between three real servers (`controlplane serve`): the in-process
bus (the baseline), the Redis bus with one worker, the Redis bus with two
workers (clients and posts spread over both). Each round: C SSE clients
(default 50), E chat messages posted through the API (default 200); latency =
receive time minus the envelope's publish time. Prints p50/p99 per backend
and the ratio to the in-process baseline; saves bench/results/bus_latest.json.

`python bench/bus_bench.py [--clients 50] [--events 200] [--rounds 2] [--quick]`
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.web_bench import (
    TOKEN,
    SSEListener,
    free_port,
    make_project,
    percentile,
    request,
    server_memory,
)

BACKENDS = {  # name -> (serve arguments, uses redis)
    "memory": ((), False),
    "redis": ((), True),
    "redis, 2 workers": (("--workers", "2"), True),
}


def start_redis(directory: Path) -> tuple[subprocess.Popen, str]:
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    from controlplane.core.bus_redis import wait_for_redis

    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", str(directory)],
                              stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    wait_for_redis(url)
    return server, url


def start_server(repo: Path, bus: str, *args: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "CONTROLPLANE_TOKEN": TOKEN, "CONTROLPLANE_BUS": bus}
    server = subprocess.Popen(
        [sys.executable, "-m", "controlplane", "serve", "--repo", str(repo), "--port", str(port),
         *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert server.stdout is not None
    for line in server.stdout:
        if "/login?token=" in line:
            threading.Thread(target=server.stdout.read, daemon=True).start()
            return server, port
    raise RuntimeError(f"the server ({bus} {args}) did not start")


def one_round(port: int, server: subprocess.Popen, clients: int, events: int) -> dict:
    ready = threading.Barrier(clients + 1)
    listeners = [SSEListener(port, events, ready) for _ in range(clients)]
    for listener in listeners:
        listener.start()
    ready.wait()
    rss, threads = server_memory(server)
    posters = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(2)]
    for n in range(events):  # two keep-alive connections: with two workers, both post
        request(posters[n % 2], "POST", "/api/chat", {"text": f"bench message {n}"})
    for poster in posters:
        poster.close()
    for listener in listeners:
        listener.done.wait(120)
    latencies = [lat for listener in listeners for lat in listener.latencies]
    return {"latencies": latencies, "received": len(latencies),
            "expected": clients * events, "rss_mb": rss, "threads": threads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1000, help="runs prefilled in the ledger")
    parser.add_argument("--quick", action="store_true", help="small numbers, a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.events, args.rounds, args.runs = 10, 30, 1, 100
    results: dict[str, dict] = {name: {"latencies": [], "received": 0, "expected": 0}
                                for name in BACKENDS}
    with tempfile.TemporaryDirectory(prefix="scp-bus-bench-") as tmp:
        repo = make_project(Path(tmp), args.runs)
        redis, url = start_redis(Path(tmp))
        try:
            for _ in range(args.rounds):
                for name, (serve_args, uses_redis) in BACKENDS.items():
                    server, port = start_server(repo, url if uses_redis else "memory",
                                                *serve_args)
                    try:
                        found = one_round(port, server, args.clients, args.events)
                    finally:
                        server.terminate()
                        server.wait(timeout=60)
                    kept = results[name]
                    kept["latencies"] += found.pop("latencies")
                    kept["received"] += found.pop("received")
                    kept["expected"] += found.pop("expected")
                    kept.update(found)
        finally:
            redis.terminate()
            redis.wait(timeout=10)
    summary = summarize(results, args)
    print_table(summary)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "bus_latest.json").write_text(json.dumps(summary, indent=1))


def summarize(results: dict[str, dict], args: argparse.Namespace) -> dict:
    summary: dict = {"clients": args.clients, "events": args.events, "rounds": args.rounds,
                     "load_average": os.getloadavg()[0], "backends": {}}
    for name, kept in results.items():
        lat = kept["latencies"]
        summary["backends"][name] = {
            "p50_ms": round(statistics.median(lat), 2), "p99_ms": round(percentile(lat, 0.99), 2),
            "received": kept["received"], "expected": kept["expected"],
            "server_rss_mb": round(kept["rss_mb"], 1), "server_threads": kept["threads"]}
    return summary


def print_table(summary: dict) -> None:
    base = summary["backends"]["memory"]
    print(f"\nbus bench: {summary['clients']} SSE clients, {summary['events']} events, "
          f"{summary['rounds']} round(s) alternated, load average {summary['load_average']:.1f}")
    for name, row in summary["backends"].items():
        print(f"  {name:17} publish -> client p50 {row['p50_ms']:7.2f} ms "
              f"({row['p50_ms'] / base['p50_ms']:.2f}x)  p99 {row['p99_ms']:7.2f} ms "
              f"({row['p99_ms'] / base['p99_ms']:.2f}x)  received {row['received']}/"
              f"{row['expected']}  RSS {row['server_rss_mb']} MB")


if __name__ == "__main__":
    main()
