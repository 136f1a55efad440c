"""Slowloris bench: `/healthz` latency and SSE delivery while attackers hold half-sent requests.

Runs the real server (`controlplane serve --threads T`) over a fresh project, then:

1. baseline: H `GET /healthz`, each on a fresh connection;
2. S SSE clients (`/api/events`, with the token) connect;
3. the attack: N connections send `GET / HTTP/1.1\\r\\nHost: x\\r\\n` and never the blank line,
   B more send a `POST` with `Content-Length: 1000` and trickle its body at 1 byte/s; an
   attacker whose socket the server closed reconnects at once (as slowloris does);
4. under attack: H `GET /healthz` again (5 s timeout each; a timeout counts as 5,000 ms and
   as a failure), while another process records R runs (`tracked_run`): every SSE client
   must receive the `run:completed` of each.

`python bench/slowloris_bench.py [--held 1000] [--slow-body 100] [--threads 512] [--sse 50]
[--runs 20] [--healthz 200]`: prints held sockets, p50/p99 before and under attack, failures
and SSE delivery; exits 1 when `/healthz` failed or an SSE client missed an event.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

if __package__ in (None, ""):  # `python bench/slowloris_bench.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.web_bench import free_port, init_project

TOKEN = "slowloris-bench-token-0123456789"
HALF_SENT = b"GET / HTTP/1.1\r\nHost: x\r\n"
SLOW_BODY = (b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: 1000\r\n\r\n")
HEALTHZ_TIMEOUT = 5.0
WRITER = """
import sys
from controlplane import tracked_run
root, count = sys.argv[1], int(sys.argv[2])
for n in range(count):
    with tracked_run("test", "test:slowloris", summary=f"run {n}", project_root=root) as run:
        run.output(f"run {n}")
    print(run.run_id, flush=True)
"""


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (an attacker needs a socket per connection)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def start_server(repo: Path, port: int, threads: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "controlplane", "serve", "--repo", str(repo), "--port", str(port),
         "--threads", str(threads)],
        env={**env, "CONTROLPLANE_TOKEN": TOKEN}, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True)
    assert server.stdout is not None
    for line in server.stdout:
        if "/login?token=" in line:
            threading.Thread(target=server.stdout.read, daemon=True).start()
            return server
    raise RuntimeError("the server did not start")


def healthz_times(port: int, count: int) -> tuple[list[float], int]:
    """*count* `GET /healthz`, each on a fresh connection: milliseconds, and how many failed."""
    times, failed = [], 0
    for _ in range(count):
        start = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HEALTHZ_TIMEOUT)
        try:
            conn.request("GET", "/healthz")
            answer = conn.getresponse()
            ok = answer.status == 200 and b'"ok"' in answer.read()
        except OSError:
            ok = False
        finally:
            conn.close()
        times.append(HEALTHZ_TIMEOUT * 1000 if not ok else (time.perf_counter() - start) * 1000)
        failed += not ok
    return times, failed


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Attackers(threading.Thread):
    """Holds *held* half-sent requests and *slow* trickled bodies open; reopens closed ones."""

    def __init__(self, port: int, held: int, slow: int) -> None:
        super().__init__(daemon=True, name="attackers")
        self.port, self.stopping = port, threading.Event()
        self.selector = selectors.DefaultSelector()
        self.reopened = 0
        for kind, count in ((HALF_SENT, held), (SLOW_BODY, slow)):
            for _ in range(count):
                self.open(kind)

    def open(self, kind: bytes) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.sendall(kind)
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, kind)

    def run(self) -> None:
        """Once a second: a body byte on each slow body; reopen what the server closed."""
        while not self.stopping.wait(1.0):
            for key, _ in self.selector.select(0):  # answered or closed by the server
                self.selector.unregister(key.fileobj)
                key.fileobj.close()
                try:
                    self.open(key.data)
                except OSError:  # the server is gone (stopped): nothing left to attack
                    self.stopping.set()
                    break
                self.reopened += 1
            for key in list(self.selector.get_map().values()):
                if key.data is SLOW_BODY:
                    with contextlib.suppress(OSError):
                        key.fileobj.send(b" ")

    def close(self) -> None:
        self.stopping.set()
        self.join()
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        self.selector.close()


class SSEClient(threading.Thread):
    """One `/api/events` stream: the run ids of every `run:completed` it receives."""

    def __init__(self, port: int, token: str = TOKEN) -> None:
        super().__init__(daemon=True, name="sse")
        self.completed: set[str] = set()
        self.changed = threading.Condition()
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.conn.request("GET", "/api/events", headers={"Authorization": f"Bearer {token}"})
        self.answer = self.conn.getresponse()
        if self.answer.status != 200:
            raise RuntimeError(f"/api/events answered {self.answer.status}")
        self.answer.fp.readline()  # "retry:": subscribed from here on

    def run(self) -> None:
        try:
            for line in iter(self.answer.fp.readline, b""):
                if line.startswith(b"data: "):
                    envelope = json.loads(line[6:])
                    if envelope["type"] == "run:completed":
                        with self.changed:
                            self.completed.add(envelope["run_id"])
                            self.changed.notify_all()
        except OSError:
            pass

    def wait_for(self, run_ids: set[str], timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: run_ids <= self.completed, timeout)

    def close(self) -> None:
        if self.conn.sock is not None:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


def held_by_server(server: subprocess.Popen, port: int) -> int:
    """Established connections the server's worker holds on *port*."""
    total = 0
    for process in psutil.Process(server.pid).children(recursive=True):
        total += sum(1 for c in process.net_connections("tcp")
                     if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)
    return total


def wait_until_held(server: subprocess.Popen, port: int, count: int, timeout: float) -> int:
    """Poll until the server holds *count* connections (or *timeout*); returns what it holds."""
    deadline = time.monotonic() + timeout
    while (held := held_by_server(server, port)) < count and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the kernel's view, not a synchronisation by sleep
    return held


def record_runs(repo: Path, count: int) -> set[str]:
    done = subprocess.run([sys.executable, "-c", WRITER, str(repo), str(count)],
                          capture_output=True, text=True, timeout=600, check=True)
    return set(done.stdout.split())


def attack(port: int, server: subprocess.Popen, repo: Path, *, held: int, slow: int, sse: int,
           runs: int, healthz: int) -> dict:
    """The scenario of this module's docstring against a running server; the figures."""
    before, before_failed = healthz_times(port, healthz)
    clients = [SSEClient(port) for _ in range(sse)]
    for client in clients:
        client.start()
    attackers = Attackers(port, held, slow)
    attackers.start()
    try:
        holding = wait_until_held(server, port, held + slow + sse, timeout=60)
        during, during_failed = healthz_times(port, healthz)
        run_ids = record_runs(repo, runs)
        missed = sum(not client.wait_for(run_ids, timeout=60) for client in clients)
        holding_after = held_by_server(server, port)
    finally:
        attackers.close()
        for client in clients:
            client.close()
    return {
        "held": holding, "held_after": holding_after, "reopened": attackers.reopened,
        "before_p50": statistics.median(before), "before_p99": percentile(before, 0.99),
        "before_failed": before_failed,
        "during_p50": statistics.median(during), "during_p99": percentile(during, 0.99),
        "during_failed": during_failed, "healthz": healthz,
        "sse": sse, "runs": len(run_ids), "sse_missed": missed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", type=int, default=1000, help="half-sent requests held")
    parser.add_argument("--slow-body", type=int, default=100, help="bodies trickled at 1 B/s")
    parser.add_argument("--threads", type=int, default=512, help="the server's --threads")
    parser.add_argument("--sse", type=int, default=50, help="SSE clients")
    parser.add_argument("--runs", type=int, default=20, help="runs recorded under attack")
    parser.add_argument("--healthz", type=int, default=200, help="/healthz requests per phase")
    args = parser.parse_args()
    raise_fd_limit()
    with tempfile.TemporaryDirectory() as tmp:
        repo, port = init_project(Path(tmp)), free_port()
        server = start_server(repo, port, args.threads)
        try:
            r = attack(port, server, repo, held=args.held, slow=args.slow_body, sse=args.sse,
                       runs=args.runs, healthz=args.healthz)
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(f"threads {args.threads}; attack: {args.held} half-sent + {args.slow_body} slow bodies; "
          f"server held {r['held']} connections (then {r['held_after']}, "
          f"{r['reopened']} reopened)")
    for phase in ("before", "during"):
        print(f"/healthz {phase:6}: p50 {r[phase + '_p50']:7.1f} ms  p99 {r[phase + '_p99']:7.1f}"
              f" ms  failed {r[phase + '_failed']}/{r['healthz']}")
    print(f"SSE: {r['sse']} clients, {r['runs']} runs recorded under attack, "
          f"{r['sse_missed']} clients missed an event")
    sys.exit(1 if r["during_failed"] or r["sse_missed"] else 0)


if __name__ == "__main__":
    main()
