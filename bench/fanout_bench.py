"""Fan-out benchmark: events/s and latency to many SSE clients, ours vs the previous commit.

A real server (`controlplane serve`, Redis bus) and C SSE clients read by one selector
thread in this process; a publisher on the same Redis bus publishes ``run:progress``
events (no ledger write: the fan-out alone is measured):

- **p99 at 20 events/s**: 10 s of events at 20/s; latency = receive time - the
  envelope's ``at``;
- **saturation**: a burst published as fast as possible; events/s = burst / (last
  receive - first publish) for the median client. The publishers' own rate (burst / the
  time the last of them took) is printed with it: a server that keeps up delivers at that
  rate, so a ratio against a previous server can be capped by the publishers, not by us.
  The publishers send the bus's own append script with its commands encoded before the
  burst starts: encoding them during it (session 12 and before) took the CPU the server
  delivers with on two cores, and 50 clients' delivered rate was the publishers' (3.3-4.5x
  the previous server's, where the server's CPU allowed 7-8x);
- **capacity**: the server's CPU time (its processes, user + system) spent on the burst,
  per event: 1 / that is the events/s one core running the server alone would deliver to
  these clients. It does not depend on the publishers' speed, so it is the goal's
  measure when the delivered rate is capped by them (both are printed);
- **threads**: the worker's threads with the clients connected, over idle (gthread's pool
  keeps the threads it made, idle, after the clients left).

``--against COMMIT`` runs the same against that commit's ``src/`` (``git archive``), so
"Nx today" is measured in the same run (DECISIONS §6).

`python -m bench.fanout_bench [--clients 50,200] [--against HEAD~1] [--quick]`
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import psutil

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bus_bench import start_redis
from bench.goals import Goal, print_goals
from bench.web_bench import TOKEN, free_port, percentile

ROOT = Path(__file__).resolve().parents[1]
GOAL_P99_MS, GOAL_SATURATION_X = 20.0, 5.0


MARKER = b'"type": "run:progress"'


class Clients:
    """C SSE connections read by one thread: per client, (receive time, envelope at)."""

    def __init__(self, port: int, count: int) -> None:
        self.selector = selectors.DefaultSelector()
        self.got: dict[int, list[tuple[float, float]]] = {}
        self.socks = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                         f"Authorization: Bearer "
                         f"{TOKEN}\r\n\r\n".encode())
            sock.setblocking(False)
            self.socks.append(sock)
            self.got[sock.fileno()] = []
            self.selector.register(sock, selectors.EVENT_READ, bytearray())
        self.stop = False
        self.parse = True
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self) -> None:
        while not self.stop:
            for key, _ in self.selector.select(0.2):
                try:
                    data = key.fileobj.recv(262144)
                except BlockingIOError:
                    continue
                now = time.time()
                buffer = key.data
                if not self.parse:  # the burst: count the events, no line splitting
                    seen = bytes(buffer[-len(MARKER) + 1:]) + data
                    got = self.got[key.fileobj.fileno()]
                    got.extend([(now, 0.0)] * seen.count(MARKER))
                    buffer[:] = data[-len(MARKER) + 1:]
                    continue
                buffer += data
                while (end := buffer.find(b"\n")) >= 0:
                    line = bytes(buffer[:end])
                    del buffer[:end + 1]
                    if not line.startswith(b"data: {") or MARKER not in line:
                        continue
                    envelope = json.loads(line[6:])
                    at = datetime.fromisoformat(envelope["at"].replace("Z", "+00:00"))
                    self.got[key.fileobj.fileno()].append((now, at.timestamp()))

    def received(self) -> int:
        return sum(len(v) for v in self.got.values())

    def close(self) -> None:
        self.stop = True
        self.thread.join()
        for sock in self.socks:
            sock.close()


def publisher(url: str):
    from controlplane.core.bus_redis import RedisBackend
    from controlplane.core.events import EventBus

    return EventBus(backend=RedisBackend(url), url=url)


PUBLISHERS = 2  # processes, pipelined: one event per round trip capped the burst
# The bus's own append script (EVALSHA), its commands encoded before "go": encoding them
# while publishing took the CPU the server delivers with on two cores, so the publishers, not
# the server, set the delivered rate. The bodies' "at" is the same for the burst (unread).
PUBLISH = """import json, sys
from controlplane.core.bus_redis import new_redis_epoch
from controlplane.core.runs import iso, utc_now
from bench.fanout_bench import publisher
backend, count = publisher(sys.argv[1]).backend, int(sys.argv[2])
backend.client.script_load(backend._append.script)
keys, at = [backend.seq_key, backend.stream_key, backend.epoch_key], iso(utc_now())
connection = backend.client.connection_pool.get_connection()
batches = []
for start in range(0, count, 100):
    commands = [("EVALSHA", backend._append.sha, 3, *keys,
                 json.dumps({"type": "run:progress", "run_id": None, "at": at,
                             "data": {"done": n, "total": count}}),
                 backend.replay_size, new_redis_epoch())
                for n in range(start, min(count, start + 100))]
    batches.append((len(commands), connection.pack_commands(commands)))
print("ready", flush=True)
sys.stdin.readline()
for size, packed in batches:
    connection.send_packed_command(packed)
    for _ in range(size):
        connection.read_response()
"""


def burst_publish(url: str, burst: int) -> tuple[float, float]:
    """Publish *burst* events from PUBLISHERS processes started together; (the start time,
    the time the last publisher was done)."""
    procs = [subprocess.Popen([sys.executable, "-c", PUBLISH, url, str(burst // PUBLISHERS)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              cwd=ROOT) for _ in range(PUBLISHERS)]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    first = time.time()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.close()
    for proc in procs:
        proc.wait(timeout=300)
    return first, time.time()


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def server_cpu_seconds(server: subprocess.Popen) -> float:
    """User + system CPU time of the server and its workers so far."""
    processes = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def worker_threads(server: subprocess.Popen) -> int:
    children = psutil.Process(server.pid).children(recursive=True)
    return sum(p.num_threads() for p in children)


def start_server(repo: Path, url: str, pythonpath: str | None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "CONTROLPLANE_TOKEN": TOKEN, "CONTROLPLANE_BUS": url}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    server = subprocess.Popen(
        [sys.executable, "-m", "controlplane", "serve", "--repo", str(repo), "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=repo)
    assert server.stdout is not None
    for line in server.stdout:
        if "/login?token=" in line:
            threading.Thread(target=server.stdout.read, daemon=True).start()
            return server, port
    raise RuntimeError("the server did not start")


def one_server(repo: Path, url: str, clients: int, quick: bool, pythonpath: str | None) -> dict:
    server, port = start_server(repo, url, pythonpath)
    bus = publisher(url)
    try:
        idle_threads = worker_threads(server)
        readers = Clients(port, clients)
        def everyone_connected() -> bool:  # a request sent is not yet a subscription
            bus.publish("run:progress", {"done": 0, "total": 0})
            return wait_for(lambda: all(readers.got.values()), 0.3)

        if not wait_for(everyone_connected, 30):
            raise RuntimeError("not every client got the first event")
        busy_threads = worker_threads(server)
        for values in readers.got.values():
            values.clear()
        paced, rate = (40 if quick else 200), 20.0
        start = time.perf_counter()
        for n in range(paced):
            time.sleep(max(0.0, start + n / rate - time.perf_counter()))
            bus.publish("run:progress", {"done": n, "total": paced})
        wait_for(lambda: readers.received() >= clients * paced, 30)
        latencies = [(got - at) * 1000 for v in readers.got.values() for got, at in v]
        for values in readers.got.values():
            values.clear()
        for buffer in [key.data for key in readers.selector.get_map().values()]:
            buffer.clear()
        readers.parse = False
        burst = 300 if quick else 3000
        cpu_before = server_cpu_seconds(server)
        first, published = burst_publish(url, burst)
        burst -= burst % PUBLISHERS
        wait_for(lambda: readers.received() >= clients * burst, 120)
        cpu_per_event = (server_cpu_seconds(server) - cpu_before) / burst
        rates = sorted(len(v) / max(1e-6, v[-1][0] - first) for v in readers.got.values() if v)
        received = readers.received()
        readers.close()
        left = wait_for(lambda: worker_threads(server) <= idle_threads + 2, 20)
        return {"p50_ms": statistics.median(latencies), "p99_ms": percentile(latencies, 0.99),
                "paced_received": len(latencies), "paced_expected": clients * paced,
                "saturation_eps": statistics.median(rates), "burst_received": received,
                "capacity_eps": 1 / max(1e-9, cpu_per_event),
                "publish_eps": burst / max(1e-6, published - first),
                "burst_expected": clients * burst, "threads_idle": idle_threads,
                "threads_busy": busy_threads, "threads_after": worker_threads(server),
                "threads_released": left}
    finally:
        bus.close()
        server.terminate()
        server.wait(timeout=60)


def previous_tree(commit: str, work: Path) -> str:
    """A PYTHONPATH on which ``controlplane`` is *commit*'s src/ (for 'Nx today')."""
    tree = work / "previous"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "x", "-C", str(tree)], input=archive, check=True)
    (tree / "controlplane").symlink_to(tree / "src", target_is_directory=True)
    return str(tree)


def measure(counts: list[int], against: str | None, quick: bool) -> dict:
    results: dict = {"ours": {}, "previous": {}, "against": against}
    with tempfile.TemporaryDirectory(prefix="scp-fanout-bench-") as tmp:
        repo = Path(tmp) / "project"  # no runs: the fan-out does not read the ledger
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        redis, url = start_redis(Path(tmp))
        try:
            old = previous_tree(against, Path(tmp)) if against else None
            for clients in counts:
                results["ours"][clients] = one_server(repo, url, clients, quick, None)
                if old:
                    results["previous"][clients] = one_server(repo, url, clients, quick, old)
        finally:
            redis.terminate()
            redis.wait(timeout=10)
    return results


def goals(results: dict) -> list[Goal]:
    found = []
    for clients, row in results["ours"].items():
        before = results["previous"].get(clients)
        note = (f"p50 {row['p50_ms']:.1f} ms, {row['paced_received']}/{row['paced_expected']}"
                + (f"; previous p99 {before['p99_ms']:.1f} ms" if before else ""))
        found.append(Goal(f"fan-out p99 at 20 events/s, {clients} clients", row["p99_ms"],
                          GOAL_P99_MS, unit="ms", note=note))
        if before:
            for key, measure, unit in (
                    ("saturation_eps", "saturation", f"events/s delivered; the publishers "
                                                     f"alone: {row['publish_eps']:.0f} events/s"),
                    ("capacity_eps", "capacity", "events/s per server CPU second")):
                found.append(Goal(f"fan-out {measure}, {clients} clients, vs previous",
                                  row[key] / before[key], GOAL_SATURATION_X, at_least=True,
                                  note=f"{row[key]:.0f} vs {before[key]:.0f} {unit}"))
        found.append(Goal(f"worker threads held by {clients} open streams",
                          row["threads_busy"] - row["threads_idle"], clients / 4, unit="",
                          note=f"idle {row['threads_idle']}, after they left "
                               f"{row['threads_after']} (the pool keeps idle threads)"
                               + (f"; previous {before['threads_busy'] - before['threads_idle']}"
                                  if before else "")))
    return found


def run(quick: bool = False, long: bool = False, against: str | None = "HEAD") -> list[Goal]:
    results = measure([20] if quick else [50, 200], against, quick)
    found = goals(results)
    print_goals(f"fan-out (vs {against}; load average {os.getloadavg()[0]:.1f})", found)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="50,200")
    parser.add_argument("--against", default=None, help="commit to compare with (HEAD~1…)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    results = measure([int(c) for c in args.clients.split(",")], args.against, args.quick)
    print(json.dumps(results, indent=1))
    found = goals(results)
    print_goals(f"fan-out (load average {os.getloadavg()[0]:.1f})", found)
    return 0 if all(goal.met for goal in found) else 1


if __name__ == "__main__":
    sys.exit(main())
