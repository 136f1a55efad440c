"""Web benchmark: publish → SSE latency with many clients, /api/runs/recent, server memory.

Runs the real server (`controlplane serve`, gunicorn) on a loopback port over a
temporary project whose ledger holds N runs (default 10,000), then measures:

- publish → client latency with C concurrent SSE clients (default 50): each event
  is a chat message posted through the API; latency = client receive time minus
  the envelope's publish time (`at`, milliseconds);
- `GET /api/runs/recent?limit=50` median and p95 over keep-alive requests;
- the server's RSS (master + worker) and thread count with the clients connected.

Baseline in the same run: `GET /healthz` (the same stack without the ledger).
`python bench/web_bench.py [--runs 10000] [--clients 50] [--events 200] [--quick]`
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import psutil

TOKEN = "bench-token-0123456789abcdef"


def init_project(root: Path) -> Path:
    """``root/project``: a git repository with one empty commit."""
    repo = root / "project"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@x"}
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "start"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env)
    return repo


def make_project(root: Path, runs: int) -> Path:
    from controlplane.core.demo import fill
    from controlplane.core.ledger import Ledger

    repo = init_project(root)
    fill(Ledger.open(repo), runs=runs, days=365, seed=7, kinds=("web", "cli", "script"))
    return repo


def start_server(repo: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "controlplane", "serve", "--repo", str(repo), "--port", str(port)],
        env={**os.environ, "CONTROLPLANE_TOKEN": TOKEN}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    for line in server.stdout:
        if "/login?token=" in line:
            threading.Thread(target=server.stdout.read, daemon=True).start()
            return server
    raise RuntimeError("the server did not start")


def request(conn: http.client.HTTPConnection, method: str, path: str,
            body: dict | None = None) -> bytes:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    answer = conn.getresponse()
    payload = answer.read()
    if answer.status >= 400:
        raise RuntimeError(f"{method} {path}: {answer.status} {payload[:200]!r}")
    return payload


def timed_gets(port: int, path: str, count: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        request(conn, "GET", path)
        times.append((time.perf_counter() - start) * 1000)
    conn.close()
    return times


class SSEListener(threading.Thread):
    """One SSE client: records the latency of every chat:message it receives."""

    def __init__(self, port: int, expected: int, ready: threading.Barrier) -> None:
        super().__init__(daemon=True)
        self.port, self.expected, self.ready = port, expected, ready
        self.latencies: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.request("GET", "/api/events", headers={"Authorization": f"Bearer {TOKEN}"})
        answer = conn.getresponse()
        self.ready.wait()
        while len(self.latencies) < self.expected:
            line = answer.fp.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                envelope = json.loads(line[6:])
                if envelope["type"] == "chat:message":
                    sent = datetime.fromisoformat(envelope["at"].replace("Z", "+00:00"))
                    self.latencies.append((time.time() - sent.timestamp()) * 1000)
        self.done.set()
        conn.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def server_memory(server: subprocess.Popen) -> tuple[float, int]:
    parent = psutil.Process(server.pid)
    processes = [parent, *parent.children(recursive=True)]
    rss = sum(p.memory_info().rss for p in processes) / 2**20
    threads = sum(p.num_threads() for p in processes)
    return rss, threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="small numbers, a smoke test")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.clients, args.events = 300, 10, 30
    with tempfile.TemporaryDirectory(prefix="scp-web-bench-") as tmp:
        started = time.perf_counter()
        repo = make_project(Path(tmp), args.runs)
        print(f"prefilled {args.runs} runs in {time.perf_counter() - started:.1f} s "
              "(demo.fill: one ledger record each)")
        port = args.port or free_port()
        server = start_server(repo, port)
        try:
            results = measure(port, server, args)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print_table(results, args)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "web_latest.json").write_text(json.dumps(results, indent=1))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(port: int, server: subprocess.Popen, args: argparse.Namespace) -> dict:
    samples = 50 if args.quick else 300
    timed_gets(port, "/api/runs/recent?limit=50", 10)  # warm up
    healthz = timed_gets(port, "/healthz", samples)
    recent = timed_gets(port, "/api/runs/recent?limit=50", samples)
    ready = threading.Barrier(args.clients + 1)
    listeners = [SSEListener(port, args.events, ready) for _ in range(args.clients)]
    for listener in listeners:
        listener.start()
    ready.wait()
    rss, threads = server_memory(server)
    poster = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for n in range(args.events):
        request(poster, "POST", "/api/chat", {"text": f"bench message {n}"})
    for listener in listeners:
        listener.done.wait(120)
    latencies = [lat for listener in listeners for lat in listener.latencies]
    received = sum(len(listener.latencies) for listener in listeners)
    return {
        "runs": args.runs, "clients": args.clients, "events": args.events,
        "healthz_p50_ms": statistics.median(healthz),
        "recent_p50_ms": statistics.median(recent), "recent_p95_ms": percentile(recent, 0.95),
        "sse_p50_ms": statistics.median(latencies), "sse_p99_ms": percentile(latencies, 0.99),
        "events_received": received, "events_expected": args.clients * args.events,
        "server_rss_mb": round(rss, 1), "server_threads": threads,
    }


def print_table(r: dict, args: argparse.Namespace) -> None:
    print(f"\nweb bench: {r['runs']} runs in the ledger, {r['clients']} SSE clients, "
          f"{r['events']} events")
    print(f"  GET /healthz                 p50 {r['healthz_p50_ms']:7.2f} ms  (baseline)")
    print(f"  GET /api/runs/recent?limit=50 p50 {r['recent_p50_ms']:7.2f} ms  "
          f"p95 {r['recent_p95_ms']:.2f} ms  ratio to baseline "
          f"{r['recent_p50_ms'] / r['healthz_p50_ms']:.1f}x  (goal p50 <= 25 ms)")
    print(f"  publish -> SSE client         p50 {r['sse_p50_ms']:7.2f} ms  "
          f"p99 {r['sse_p99_ms']:.2f} ms  (goal p99 <= 100 ms)")
    print(f"  events received {r['events_received']}/{r['events_expected']}")
    print(f"  server RSS {r['server_rss_mb']} MB, {r['server_threads']} threads "
          "(goal RSS <= 200 MB)")


if __name__ == "__main__":
    main()
