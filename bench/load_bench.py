"""Load benchmark: many live clients while several processes record runs; `@run:` autocomplete.

Runs the real server (`controlplane serve`, gunicorn, one worker) over a
temporary project whose ledger is prefilled with N runs (default 10,000), then:

1. autocomplete: Q requests (default 10,000) of the chat's `@run:` search,
   `GET /api/runs/search?q=…&limit=8` (id prefixes, type words, summary words,
   a few misses) over 1, then 4 keep-alive connections at once; p50/p99, with
   `GET /healthz` over the same connections as the baseline;
2. load: S SSE clients (`/api/events`, default 200) and W WebSocket clients
   (`/ws/events`, default 20) connected, while P processes (default 4) record
   R runs each (default 250) with `tracked_run` against the same repository.
   The server's cross-process feed announces them (`run:started`, also for a
   run over between two polls, `run:output`, `run:completed`). Checked: every
   client got the same envelopes, ids contiguous and increasing (none lost,
   none duplicated, same order everywhere), one `run:started` and then one
   `run:completed` for each of the P x R runs (2 x P x R events); the ledger
   holds every run (index and `refs/scp/run/…`), `git fsck` is clean.
   Measured: publish -> client latency (envelope `at` to receive time) over all
   clients, the server's peak RSS and threads (master + worker) during the
   load, wall time.

`python bench/load_bench.py [--quick] [--runs N] [--sse S] [--ws W] [--procs P]
[--per-proc R] [--searches Q] [--conns 1,4]`; results in bench/results/load_latest.json
(`--quick`: load_quick.json). Exits 1 when a correctness check fails.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

if __package__ in (None, ""):  # `python bench/load_bench.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
import simple_websocket

from bench.web_bench import (
    TOKEN,
    free_port,
    make_project,
    percentile,
    request,
    server_memory,
    start_server,
)

RESULTS = Path(__file__).resolve().parent / "results"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WRITER = """
import sys
from controlplane import tracked_run
root, count, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for n in range(count):
    with tracked_run("test", "test:load", summary=f"load {tag} run {n}",
                     project_root=root) as run:
        run.output(f"{tag} run {n}")
    print(run.run_id, flush=True)
"""


@dataclass
class Scenario:
    """The numbers of one load run (the issue's figures by default)."""

    sse: int = 200
    ws: int = 20
    procs: int = 4
    per_proc: int = 250
    searches: int = 10_000
    healthz: int = 2_000
    conns: tuple[int, ...] = (1, 4)  # keep-alive connections at once, one pass each

    @property
    def runs(self) -> int:
        return self.procs * self.per_proc


# -- live clients --------------------------------------------------------------


class Stream(threading.Thread):
    """One live client: keeps (receive time, raw envelope) until it saw every run complete."""

    kind = "?"

    def __init__(self, port: int, resume: str, runs: int, number: int) -> None:
        super().__init__(daemon=True, name=f"{self.kind}-{number}")
        self.port, self.resume, self.runs = port, resume, runs
        self.frames: list[tuple[float, bytes]] = []
        self.completed: set[str] = set()
        self.error: str | None = None
        self.connected = threading.Event()
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            self.listen()
        except Exception as exc:  # reported by check_delivery, not raised in a thread
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.connected.set()
            self.finished.set()

    def take(self, received: float, data: bytes) -> bool:
        """Keep one envelope; True once every run's completion has arrived."""
        self.frames.append((received, data))
        if b'"type": "run:completed"' in data:
            self.completed.add(json.loads(data)["run_id"])
        return len(self.completed) >= self.runs

    def listen(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Cut the connection (a client still waiting at the deadline)."""


class SSEStream(Stream):
    kind = "sse"

    def listen(self) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        self.conn.request("GET", "/api/events", headers={**AUTH, "Last-Event-ID": self.resume})
        answer = self.conn.getresponse()
        if answer.status != 200:
            raise RuntimeError(f"/api/events answered {answer.status}")
        self.connected.set()  # subscribed: the server subscribes before it answers
        pending = b""
        while True:  # whatever arrived at once, split into lines (chunk sizes are lines too)
            chunk = answer.fp.read1(65536)
            if not chunk:
                raise EOFError("the stream ended")
            received = time.time()
            *lines, pending = (pending + chunk).split(b"\n")
            if any(line.startswith(b"data: ") and self.take(received, line[6:])
                   for line in lines):
                break
        self.conn.close()

    def close(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None and conn.sock is not None:
            conn.sock.shutdown(2)


class WSStream(Stream):
    kind = "ws"

    def listen(self) -> None:
        self.ws = simple_websocket.Client.connect(
            f"ws://127.0.0.1:{self.port}/ws/events?last_event_id={self.resume}", headers=AUTH)
        self.connected.set()  # it may subscribe a moment later: the resume id covers that
        while True:
            message = self.ws.receive(timeout=300)
            if message is None:
                raise TimeoutError("no message for 300 s")
            if self.take(time.time(), message.encode() if isinstance(message, str) else message):
                break
        self.ws.close()

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()


def marker_id(port: int) -> str:
    """The id of a fresh chat message: clients resume after it, so all start at one point."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/api/events", headers=AUTH)
    answer = conn.getresponse()
    text = f"load bench start {time.time()}"
    poster = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    request(poster, "POST", "/api/chat", {"text": text})
    poster.close()
    try:
        while True:
            line = answer.fp.readline()
            if not line:
                raise RuntimeError("the marker never arrived")
            if line.startswith(b"data: "):
                envelope = json.loads(line[6:])
                if envelope["type"] == "chat:message" and text in json.dumps(envelope["data"]):
                    return envelope["id"]
    finally:
        conn.close()


# -- the load ------------------------------------------------------------------


@dataclass
class LoadOutcome:
    """What the load phase produced: the clients, the runs written, the server's peaks."""

    streams: list[Stream]
    run_ids: list[str]
    resume: str
    wall_s: float
    record_s: float
    peak_rss_mb: float = 0.0
    peak_threads: int = 0
    writer_errors: list[str] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds used during the load


class Sampler(threading.Thread):
    """Samples the server's RSS and thread count until stopped (a measurement, not a wait)."""

    def __init__(self, server: subprocess.Popen) -> None:
        super().__init__(daemon=True, name="sampler")
        self.server, self.stop = server, threading.Event()
        self.rss, self.threads = 0.0, 0

    def run(self) -> None:
        while not self.stop.is_set():
            rss, threads = server_memory(self.server)
            self.rss, self.threads = max(self.rss, rss), max(self.threads, threads)
            self.stop.wait(0.25)


def run_load(repo: Path, port: int, server: subprocess.Popen, scenario: Scenario,
             deadline_s: float = 900, settle_s: float = 120) -> LoadOutcome:
    """Connect the clients, let the writer processes record, wait for every client to finish."""
    resume = marker_id(port)
    streams: list[Stream] = [SSEStream(port, resume, scenario.runs, n) for n in range(scenario.sse)]
    streams += [WSStream(port, resume, scenario.runs, n) for n in range(scenario.ws)]
    for stream in streams:
        stream.start()
    for stream in streams:
        stream.connected.wait(60)
    sampler = Sampler(server)
    sampler.start()
    cpu = cpu_seconds(server)
    started = time.perf_counter()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(repo), str(scenario.per_proc),
                                 f"p{n}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for n in range(scenario.procs)]
    run_ids, errors = [], []
    for writer in writers:
        out, err = writer.communicate(timeout=deadline_s)
        run_ids += out.split()
        if writer.returncode:
            errors.append(f"writer exited {writer.returncode}: {err[-500:]}")
    record_s = time.perf_counter() - started
    end = time.monotonic() + settle_s  # the feed announces within a few polls of the end
    for stream in streams:
        if not stream.finished.wait(max(0.0, end - time.monotonic())):
            stream.close()
            stream.finished.wait(10)
    wall_s = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    cpu = {k: round(v - cpu[k], 1) for k, v in cpu_seconds(server).items()}
    return LoadOutcome(streams, run_ids, resume, wall_s, record_s, round(sampler.rss, 1),
                       sampler.threads, errors, cpu)


def cpu_seconds(server: subprocess.Popen) -> dict[str, float]:
    """CPU seconds so far of the server (master + worker), the clients (this process) and
    the finished writer processes (this process's waited-for children)."""
    parent = psutil.Process(server.pid)
    used = [p.cpu_times() for p in (parent, *parent.children(recursive=True))]
    own, children = resource.getrusage(resource.RUSAGE_SELF), \
        resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"server": sum(t.user + t.system for t in used),
            "clients": own.ru_utime + own.ru_stime,
            "writers": children.ru_utime + children.ru_stime}


def seq_of(event_id: str) -> int:
    return int(event_id.rsplit("-", 1)[1])


def check_delivery(outcome: LoadOutcome, expected_runs: int) -> tuple[list[str], dict[str, Any]]:
    """Problems (empty when every client got every event once, in order) and the figures."""
    problems = [*outcome.writer_errors]
    if len(outcome.run_ids) != expected_runs or len(set(outcome.run_ids)) != expected_runs:
        problems.append(f"the writers reported {len(set(outcome.run_ids))} distinct runs, "
                        f"not {expected_runs}")
    written, sent_at = set(outcome.run_ids), {}
    reference: list[str] | None = None
    latencies: dict[str, list[float]] = {"sse": [], "ws": []}
    per_envelope: dict[str, list[float]] = {}  # id -> its latency at each client
    counts = {"envelopes": 0, "started": 0}
    first = seq_of(outcome.resume) + 1
    for stream in outcome.streams:
        name = stream.name
        if stream.error:
            problems.append(f"{name}: {stream.error}")
        envelopes = [json.loads(data) for _, data in stream.frames]
        ids = [e["id"] for e in envelopes]
        seqs = [seq_of(i) for i in ids]
        if seqs != list(range(first, first + len(seqs))):
            problems.append(f"{name}: ids not contiguous from {first} (lost, duplicated or "
                            f"out of order): {len(seqs)} envelopes, {len(set(seqs))} distinct")
        if reference is None:
            reference = ids
        elif ids != reference:
            problems.append(f"{name}: {len(ids)} envelopes differ from the first client's "
                            f"{len(reference)}")
        problems += run_order_problems(name, envelopes, written)
        counts["envelopes"] += len(envelopes)
        counts["started"] = max(counts["started"],
                                sum(e["type"] == "run:started" for e in envelopes))
        for (received, _), envelope in zip(stream.frames, envelopes, strict=True):
            at = sent_at.get(envelope["id"])
            if at is None:
                at = sent_at[envelope["id"]] = datetime.fromisoformat(
                    envelope["at"].replace("Z", "+00:00")).timestamp()
            latency = (received - at) * 1000
            latencies[stream.kind].append(latency)
            per_envelope.setdefault(envelope["id"], []).append(latency)
    figures = {"envelopes_per_client": len(reference or []),
               "envelopes_received": counts["envelopes"],
               "runs_announced_started": counts["started"],
               **spread("latency", latencies["sse"] + latencies["ws"]),
               **spread("sse", latencies["sse"]), **spread("ws", latencies["ws"]),
               # the first and the last client to get each envelope: the fan-out's spread
               **spread("first_client", [min(v) for v in per_envelope.values()]),
               **spread("last_client", [max(v) for v in per_envelope.values()])}
    return problems, figures


def spread(name: str, values: list[float]) -> dict[str, float | None]:
    """``<name>_p50_ms``, ``_p99_ms`` and ``_max_ms`` of *values* (None when empty)."""
    if not values:
        return {f"{name}_p50_ms": None, f"{name}_p99_ms": None, f"{name}_max_ms": None}
    return {f"{name}_p50_ms": statistics.median(values),
            f"{name}_p99_ms": percentile(values, 0.99), f"{name}_max_ms": max(values)}


def run_order_problems(name: str, envelopes: list[dict], written: set[str]) -> list[str]:
    """Per written run one start, then one completion; nothing else started or completed."""
    problems: list[str] = []
    started: dict[str, int] = {}
    completed: dict[str, int] = {}
    for position, envelope in enumerate(envelopes):
        run_id, kind = envelope.get("run_id"), envelope["type"]
        if kind == "run:started":
            if run_id in started or run_id in completed:
                problems.append(f"{name}: run:started for {run_id} again or after its completion")
            started[run_id] = position
        elif kind == "run:completed":
            if run_id in completed:
                problems.append(f"{name}: run:completed for {run_id} twice")
            completed[run_id] = position
    missing, extra = written - set(completed), set(completed) - written
    unstarted = written - set(started)
    if unstarted:
        problems.append(f"{name}: no run:started for {len(unstarted)} runs, e.g. {min(unstarted)}")
    if missing:
        problems.append(f"{name}: no run:completed for {len(missing)} runs, e.g. {min(missing)}")
    if extra:
        problems.append(f"{name}: run:completed for {len(extra)} runs nobody wrote")
    return problems[:5]


def check_ledger(repo: Path, run_ids: Iterable[str], total: int) -> list[str]:
    """Every written run in the index and under refs/scp/run/; *total* runs; git fsck clean."""
    from controlplane.core.ledger import Ledger

    ledger = Ledger.open(repo)
    ledger.catch_up()
    problems = []
    ids = set(run_ids)
    if ledger.index.count() != total:
        problems.append(f"the index holds {ledger.index.count()} runs, not {total}")
    unindexed = [r for r in ids if ledger.index.get(r) is None]
    if unindexed:
        problems.append(f"{len(unindexed)} written runs are not in the index")
    refs = git(repo, "for-each-ref", "--format=%(refname:lstrip=3)", "refs/scp/run").split()
    if len(refs) != total or not ids <= set(refs):
        problems.append(f"{len(refs)} run refs, {len(ids - set(refs))} written runs without one")
    fsck = subprocess.run(["git", "fsck", "--no-dangling"], cwd=repo, capture_output=True,
                          text=True, check=False)
    if fsck.returncode:
        problems.append(f"git fsck failed: {fsck.stderr[-500:]}")
    return problems


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=True).stdout


# -- autocomplete --------------------------------------------------------------


def search_queries(port: int, count: int, seed: int = 7) -> list[str]:
    """What people type after `@run:`: id prefixes, type and summary words, some misses."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    runs = json.loads(request(conn, "GET", "/api/runs/recent?limit=50"))["runs"]
    conn.close()
    rng = random.Random(seed)
    words = sorted({w for r in runs for w in [*r["subtype"].split(":"),
                                                *(r.get("summary") or "").split()] if len(w) > 2})
    queries = []
    for n in range(count):
        pick = n % 4
        if pick == 0:
            run_id = rng.choice(runs)["run_id"]
            queries.append(run_id[: rng.choice((4, 8, 11, 15, len(run_id)))])
        elif pick in (1, 2):
            word = rng.choice(words)
            queries.append(word[: rng.randint(2, len(word))])
        else:
            queries.append(rng.choice(("zzz", "nothing-like-it", "9999")))
    return queries


def timed_paths(port: int, paths: list[str], conns: int) -> tuple[list[float], float]:
    """Latencies (ms) of GETs spread over *conns* keep-alive connections, and the wall time."""
    shares = [paths[n::conns] for n in range(conns)]
    results: list[list[float]] = [[] for _ in shares]

    def client(share: list[str], times: list[float]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for path in share:
            start = time.perf_counter()
            request(conn, "GET", path)
            times.append((time.perf_counter() - start) * 1000)
        conn.close()

    threads = [threading.Thread(target=client, args=pair, daemon=True)
               for pair in zip(shares, results, strict=True)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    times = [t for share in results for t in share]
    if len(times) != len(paths):
        raise RuntimeError(f"only {len(times)} of {len(paths)} requests answered")
    return times, wall


def autocomplete(port: int, scenario: Scenario) -> list[dict[str, Any]]:
    """`@run:` search against the prefilled ledger, `/healthz` as the baseline, per concurrency."""
    queries = search_queries(port, scenario.searches)
    paths = [f"/api/runs/search?q={quote(q)}&limit=8" for q in queries]
    timed_paths(port, paths[:50] + ["/healthz"] * 50, max(scenario.conns))  # warm up
    levels = []
    for conns in scenario.conns:
        healthz, _ = timed_paths(port, ["/healthz"] * scenario.healthz, conns)
        search, wall = timed_paths(port, paths, conns)
        levels.append({
            "searches": len(search), "conns": conns,
            "search_p50_ms": statistics.median(search), "search_p99_ms": percentile(search, 0.99),
            "search_per_s": len(search) / wall, "healthz": len(healthz),
            "healthz_p50_ms": statistics.median(healthz),
            "healthz_p99_ms": percentile(healthz, 0.99)})
    return levels


# -- main ----------------------------------------------------------------------


def bench(scenario: Scenario, prefill: int, port: int = 0) -> dict[str, Any]:
    """The whole benchmark in a temporary project; returns the results (problems included)."""
    results: dict[str, Any] = {"scenario": asdict(scenario), "prefill": prefill,
                               "load_avg_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="scp-load-bench-") as tmp:
        started = time.perf_counter()
        repo = make_project(Path(tmp), prefill)
        results["prefill_s"] = time.perf_counter() - started
        port = port or free_port()
        server = start_server(repo, port)
        try:
            results["autocomplete"] = autocomplete(port, scenario)
            outcome = run_load(repo, port, server, scenario)
            results["idle_rss_mb"], results["idle_threads"] = server_memory(server)
        finally:
            server.terminate()
            server.wait(timeout=60)
        problems, figures = check_delivery(outcome, scenario.runs)
        problems += check_ledger(repo, outcome.run_ids, prefill + scenario.runs)
    results["load"] = {**figures, "wall_s": outcome.wall_s, "record_s": outcome.record_s,
                       "runs_written": len(outcome.run_ids),
                       "server_peak_rss_mb": outcome.peak_rss_mb,
                       "server_peak_threads": outcome.peak_threads,
                       "cpu_s": outcome.cpu_s}
    results["load_avg_end"] = os.getloadavg()
    results["problems"] = problems
    return results


def print_table(r: dict[str, Any]) -> None:
    s, ld = r["scenario"], r["load"]
    print(f"\nload bench: {r['prefill']} runs prefilled ({r['prefill_s']:.0f} s); load average "
          f"{r['load_avg_start'][0]:.1f} at the start, {r['load_avg_end'][0]:.1f} at the end")
    for a in r["autocomplete"]:
        print(f"  @run: autocomplete, {a['searches']} requests over {a['conns']} keep-alive "
              f"connection(s): p50 {a['search_p50_ms']:.2f} ms  p99 {a['search_p99_ms']:.2f} ms"
              f"  ({a['search_per_s']:.0f}/s)")
        print(f"    GET /healthz baseline, {a['healthz']} requests: "
              f"p50 {a['healthz_p50_ms']:.2f} ms  p99 {a['healthz_p99_ms']:.2f} ms -> ratio p50 "
              f"{a['search_p50_ms'] / a['healthz_p50_ms']:.1f}x, "
              f"p99 {a['search_p99_ms'] / a['healthz_p99_ms']:.1f}x")
    print(f"  load: {s['sse']} SSE + {s['ws']} WS clients, {s['procs']} processes x "
          f"{s['per_proc']} runs: recorded in {ld['record_s']:.1f} s, every client done in "
          f"{ld['wall_s']:.1f} s")
    print(f"  envelopes: {ld['envelopes_per_client']} per client ({ld['runs_announced_started']}"
          f" runs seen in flight -> run:started), {ld['envelopes_received']} received in all")
    for name, what in (("latency", "publish -> client (all)"), ("sse", "  SSE clients"),
                       ("ws", "  WebSocket clients"), ("first_client", "  first client"),
                       ("last_client", "  last client")):
        if ld[f"{name}_p50_ms"] is not None:
            print(f"  {what:<24} p50 {ld[f'{name}_p50_ms']:7.1f} ms  "
                  f"p99 {ld[f'{name}_p99_ms']:7.1f} ms  max {ld[f'{name}_max_ms']:.0f} ms")
    print(f"  server peak RSS {ld['server_peak_rss_mb']} MB, peak {ld['server_peak_threads']} "
          f"threads (master + worker); after: {r['idle_rss_mb']:.1f} MB, {r['idle_threads']}")
    print(f"  CPU seconds during the load: {ld['cpu_s']}")
    print("  checks: " + ("every client got every event once, in order; no run lost; fsck clean"
                          if not r["problems"] else f"{len(r['problems'])} PROBLEMS"))
    for problem in r["problems"][:20]:
        print(f"    - {problem}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Scenario()
    parser.add_argument("--runs", type=int, default=10_000, help="runs prefilled in the ledger")
    for name in ("sse", "ws", "procs", "per_proc", "searches", "healthz"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int,
                            default=getattr(defaults, name))
    parser.add_argument("--conns", default=",".join(map(str, defaults.conns)),
                        help="keep-alive connections for the autocomplete, e.g. 1,4")
    parser.add_argument("--quick", action="store_true", help="small numbers, a smoke test")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.sse, args.ws, args.procs, args.per_proc = 300, 20, 4, 2, 20
        args.searches, args.healthz = 500, 200
    scenario = Scenario(args.sse, args.ws, args.procs, args.per_proc, args.searches,
                        args.healthz, tuple(int(c) for c in args.conns.split(",")))
    results = bench(scenario, args.runs, args.port)
    results["quick"] = args.quick
    print_table(results)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("load_quick.json" if args.quick else "load_latest.json")
    out.write_text(json.dumps(results, indent=1))
    print(f"results written to {out}")
    return 1 if results["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
