"""Ledger benchmark: what recording a run costs, and whether it grows with the ledger.

Usage (from the checkout)::

    python -m bench                      # N = 10,000 runs, 200 samples (a few minutes)
    python bench/ledger_bench.py --quick # smoke test: N = 500, few samples (< 1 min)
    python -m bench --runs 100000        # works; the prefill and fsck take minutes

Everything is measured in one invocation, in throw-away repositories under a
temporary directory:

1. record cost of an empty ``tracked_run`` at 0 runs;
2. the same with N runs (spread over a year) already in the ledger;
3. the same after a burst of 2,000 runs into today's day directory;
4. a naive baseline (worktree files, ``git add``, ``git commit``, ``git tag -a``,
   each a subprocess) at 0 and N runs, and the ratios;
5. 4 processes x 100 runs recorded at once, at 0 and N runs, with checks;
6. index rebuild and ``recent(50)`` at N runs.

Results are printed as a table and written to ``bench/results/latest.json``.
The process exits 1 only when a correctness check fails (counts, fsck);
missed performance goals are reported, not fatal.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pygit2
from pygit2.enums import FileMode


def _ensure_importable() -> None:
    """Map ``controlplane`` onto ``src/`` through a temporary symlink when it is not installed."""
    try:
        import controlplane  # noqa: F401
    except ImportError:
        src = Path(__file__).resolve().parents[1] / "src"
        shim = Path(tempfile.mkdtemp(prefix="scp-bench-path-"))
        (shim / "controlplane").symlink_to(src, target_is_directory=True)
        atexit.register(shutil.rmtree, shim, True)
        sys.path.insert(0, str(shim))


_ensure_importable()

import controlplane  # noqa: E402
from controlplane import tracked_run  # noqa: E402
from controlplane.core.ledger import Ledger  # noqa: E402
from controlplane.core.ledger.ledger import dumps, events_jsonl  # noqa: E402
from controlplane.core.ledger.store import BRANCH_REF, GitStore  # noqa: E402
from controlplane.core.runs import (  # noqa: E402
    Run,
    RunStatus,
    iso,
    ledger_dir,
    new_run_id,
    run_id_time,
)

DAY = 86_400.0
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Bench User", "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench User", "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_TERMINAL_PROMPT": "0",
}
GOAL_NAIVE_RATIO, AIM_NAIVE_RATIO, GOAL_GROWTH = 3.0, 5.0, 1.5

_T0 = time.perf_counter()


LOAD: list[tuple[float, float, str]] = []  # (elapsed s, 1-minute load average, phase)


def say(message: str) -> None:
    """A progress line with the elapsed time and the load average (other work skews timings)."""
    elapsed, load = time.perf_counter() - _T0, os.getloadavg()[0]
    LOAD.append((round(elapsed, 1), load, message))
    print(f"[{elapsed:7.1f}s load {load:4.1f}] {message}", flush=True)


def wait_for_quiet(max_wait: float, threshold: float) -> None:
    """Wait up to *max_wait* seconds for the 1-minute load average to drop below *threshold*."""
    deadline = time.monotonic() + max_wait
    while os.getloadavg()[0] >= threshold and time.monotonic() < deadline:
        say(f"waiting for a quieter machine (load >= {threshold})")
        time.sleep(min(15.0, max(0.0, deadline - time.monotonic())))


# -- git helpers --------------------------------------------------------------


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run real git in *repo*."""
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL, env={**os.environ, **GIT_ENV})
    if check and done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {repo}: {done.stderr.strip()}")
    return done


def make_repo(path: Path) -> str:
    """A project repository with one commit; returns that commit's id."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", GIT_ENV["GIT_AUTHOR_NAME"])
    git(path, "config", "user.email", GIT_ENV["GIT_AUTHOR_EMAIL"])
    (path / "README.md").write_text("# benchmark project\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial commit")
    return git(path, "rev-parse", "HEAD").stdout.strip()


def ref_count(repo: Path, prefix: str) -> int:
    out = git(repo, "for-each-ref", "--format=%(refname)", prefix).stdout
    return len(out.splitlines())


def commit_count(repo: Path) -> int:
    done = git(repo, "rev-list", "--count", "scp-ledger", check=False)
    return int(done.stdout.strip()) if done.returncode == 0 else 0


def write_leaf(repo: pygit2.Repository, files: dict[str, bytes]) -> pygit2.Oid:
    """A run directory's tree (its blobs written too)."""
    builder = repo.TreeBuilder()
    for name in sorted(files):
        builder.insert(name, repo.create_blob(files[name]), FileMode.BLOB)
    return builder.write()


def bulk_tree(repo: pygit2.Repository, base: pygit2.Tree | None,
              leaves: dict[str, pygit2.Oid]) -> pygit2.Oid:
    """*base* with every ``directory -> tree`` of *leaves* inserted, each tree written once."""
    nested: dict[str, Any] = {}
    for directory, oid in leaves.items():
        node = nested
        *parents, name = directory.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[name] = oid
    return _write_nested(repo, base, nested)


def _write_nested(repo: pygit2.Repository, tree: pygit2.Tree | None,
                  node: dict[str, Any]) -> pygit2.Oid:
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    for name, child in node.items():
        if isinstance(child, pygit2.Oid):
            builder.insert(name, child, FileMode.TREE)
            continue
        sub = None
        if tree is not None and name in tree:
            entry = tree[name]
            sub = entry if isinstance(entry, pygit2.Tree) else None
        builder.insert(name, _write_nested(repo, sub, child), FileMode.TREE)
    return builder.write()


# -- realistic runs -----------------------------------------------------------

_TYPES = (("test", 30), ("build", 20), ("deploy", 10), ("plan", 8), ("validate", 8),
          ("format", 5), ("scan", 5), ("git", 5), ("ci", 4), ("backup", 2), ("install", 3))
_DETAILS = ("unit", "nightly", "lint", "api", "web", "staging", "prod", "docs", "e2e", "db")
_LINES = ("tests/test_{k}.py::test_case_{k} PASSED", "Compiling module_{k} (release)",
          "module.app.aws_instance.web[{k}]: Refreshing state...", "Step {k}/20 : RUN make",
          "warning: unused variable 'x{k}' in src/lib_{k}.c", "pushed layer sha256:{k:064x}")


def synthetic_run(rng: random.Random, run_id: str, code_commit: str, user: str,
                  host: str) -> tuple[Run, list[dict[str, Any]]]:
    """A finished run as the tracker would have recorded it, with 0-20 output lines."""
    run_type = rng.choices([t for t, _ in _TYPES], [w for _, w in _TYPES])[0]
    detail = rng.choice(_DETAILS)
    start = run_id_time(run_id).timestamp()
    duration = rng.randint(40, 240_000) / 1000
    status = rng.choices(
        [RunStatus.OK, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.INTERRUPTED],
        [85, 12, 2, 1])[0]
    error = None
    if status != RunStatus.OK:
        error = {"code": {"failed": "exit_status", "cancelled": "cancelled",
                          "interrupted": "interrupted"}[str(status)],
                 "message": f"command exited with status {rng.randint(1, 2)}"}

    def at(offset: float) -> str | None:
        return iso(datetime.fromtimestamp(start + offset, UTC))

    events: list[dict[str, Any]] = [{"seq": 1, "type": "run:started", "at": at(0),
                                     "data": {"summary": f"{run_type} {detail}"}}]
    lines = rng.randint(0, 20)
    for k in range(lines):
        text = rng.choice(_LINES).format(k=rng.randint(0, 10_000))
        events.append({"seq": k + 2, "type": "run:output", "at": at(duration * k / (lines + 1)),
                       "data": {"stream": "stdout", "line": text}})
    events.append({"seq": len(events) + 1, "type": "run:completed", "at": at(duration),
                   "data": {"status": str(status), "error": error}})
    run = Run(
        run_id=run_id, type=run_type, subtype=f"{run_type}:{detail}", status=status,
        summary=f"{run_type} {detail} on main", started_at=at(0), ended_at=at(duration),
        duration_ms=int(duration * 1000), actor={"kind": "script", "name": user},
        code_ref={"commit": code_commit, "branch": "main", "dirty": rng.random() < 0.1},
        target={"tool": run_type, "version": "1.2.3"}, host=host,
        params={"target": detail, "verbose": rng.random() < 0.3},
        result={"exit_status": 0 if status == RunStatus.OK else 1, "lines": lines},
        error=error, events=len(events),
    )
    return run, events


def spread_ids(rng: random.Random, count: int, start: float, end: float) -> list[str]:
    """*count* distinct run ids with start times uniformly in [start, end), sorted."""
    ids: set[str] = set()
    while len(ids) < count:
        ids.add(new_run_id(now=rng.uniform(start, end)))
    return sorted(ids)


def pack_into(scratch: Path, target: Path, revs: list[str]) -> None:
    """Copy the objects reachable from *revs* (``^x`` excludes) from *scratch* as one pack."""
    with tempfile.TemporaryFile("w+") as listing:
        listing.write("".join(f"{rev}\n" for rev in revs))
        listing.flush()
        listing.seek(0)
        packer = subprocess.Popen(["git", "pack-objects", "--revs", "--stdout", "-q"],
                                  cwd=scratch, stdin=listing, stdout=subprocess.PIPE)
        indexer = subprocess.run(["git", "index-pack", "--stdin"], cwd=target,
                                 stdin=packer.stdout, capture_output=True, check=False)
        assert packer.stdout is not None
        packer.stdout.close()
        if packer.wait() != 0 or indexer.returncode != 0:
            raise RuntimeError(f"packing into {target} failed: {indexer.stderr.decode()}")


def _add_refs(repo: Path, refs: list[tuple[str, str, str]], packed: bool) -> None:
    """Create ``(ref, tag, peeled)`` refs: written into a new packed-refs file or as loose refs."""
    if packed:
        path = repo / ".git" / "packed-refs"
        if path.exists():
            raise RuntimeError(f"{path} exists already")
        body = "".join(f"{tag} {ref}\n^{peeled}\n" for ref, tag, peeled in sorted(refs))
        path.write_text("# pack-refs with: peeled fully-peeled sorted \n" + body)
        return
    lines = "".join(f"create {ref} {tag}\n" for ref, tag, _ in refs)
    done = subprocess.run(["git", "update-ref", "--stdin"], cwd=repo, input=lines, text=True,
                          capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"update-ref failed: {done.stderr.strip()}")


def prefill(repo: Path, naive: Path | None, run_ids: list[str], code_commit: str, seed: int,
            scratch: Path, packed_refs: bool = True) -> dict[str, float]:
    """Add *run_ids* to the ledger of *repo* (and as files to *naive*) in bulk; returns timings.

    The objects are made with pygit2 in a *scratch* repository that borrows the
    targets' objects (alternates): run files, one leaf tree per run, every tree on
    the way up written once by TreeBuilders on top of the ledger tip, one commit,
    and one annotated run tag per run through the ledger's own ``GitStore.tag_run``.
    ``git pack-objects | git index-pack`` moves them into the target as one pack,
    and the run refs go straight into ``packed-refs`` (or loose, when
    *packed_refs* is false): the state the background gc leaves a long-lived
    ledger in, reached without creating and deleting tens of thousands of loose
    files in the target (file creation on ext4 without a journal stays slow for
    minutes after mass deletion, which would be measured instead of the ledger).
    *naive* gets the same files in a commit on its branch, ``refs/tags/scp/run/*``
    tags, and a checkout.
    """
    rng = random.Random(seed)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    pygit2.init_repository(str(scratch), bare=True)
    targets = [repo] + ([naive] if naive is not None else [])
    (scratch / "objects" / "info" / "alternates").write_text(
        "".join(f"{t / '.git' / 'objects'}\n" for t in targets))
    store = GitStore(scratch)
    naive_tags = GitStore(scratch, tag_prefix="refs/naive/scp/run/")
    srepo = store.repo
    user, host = GIT_ENV["GIT_AUTHOR_NAME"], socket.gethostname()
    leaves: dict[str, pygit2.Oid] = {}
    for run_id in run_ids:
        run, events = synthetic_run(rng, run_id, code_commit, user, host)
        files = {"run.json": dumps(run.to_dict()), "events.jsonl": events_jsonl(events)}
        leaves[ledger_dir(run_id)] = write_leaf(srepo, files)
        store.tag_run(run_id, code_commit, f"{run.subtype} {run.status}", tagger=user)
    sig = store.signature(user)
    tip = git(repo, "rev-parse", "-q", "--verify", BRANCH_REF, check=False).stdout.strip()
    base = srepo[tip].peel(pygit2.Tree) if tip else None
    tree = bulk_tree(srepo, base, leaves)
    commit = str(srepo.create_commit(None, sig, sig, f"benchmark prefill: {len(run_ids)} runs",
                                     tree, [pygit2.Oid(hex=tip)] if tip else []))
    tags = [(f"refs/scp/run/{i}", str(srepo.references[f"refs/scp/run/{i}"].target), code_commit)
            for i in run_ids]
    timings["objects_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    pack_into(scratch, repo, [commit, *(t for _, t, _ in tags), f"^{code_commit}",
                               *([f"^{tip}"] if tip else [])])
    _add_refs(repo, tags, packed=packed_refs)
    git(repo, "update-ref", "-m", "benchmark prefill", BRANCH_REF, commit, tip or "0" * 40)
    timings["pack_and_refs_s"] = time.perf_counter() - t1
    if naive is not None:
        t2 = time.perf_counter()
        head = git(naive, "rev-parse", "HEAD").stdout.strip()
        naive_tree = bulk_tree(srepo, srepo[head].peel(pygit2.Tree), leaves)
        naive_commit = str(srepo.create_commit(None, sig, sig, "prefill", naive_tree,
                                               [pygit2.Oid(hex=head)]))
        refs = []
        for run_id in run_ids:
            naive_tags.tag_run(run_id, naive_commit, "prefill", tagger=user)
            tag = str(srepo.references[f"refs/naive/scp/run/{run_id}"].target)
            refs.append((f"refs/tags/scp/run/{run_id}", tag, naive_commit))
        pack_into(scratch, naive, [naive_commit, *(t for _, t, _ in refs), f"^{head}"])
        _add_refs(naive, refs, packed=True)
        git(naive, "update-ref", "-m", "prefill", "refs/heads/main", naive_commit, head)
        git(naive, "reset", "-q", "--hard")  # the files into the worktree and the git index
        timings["naive_repo_s"] = time.perf_counter() - t2
    return timings


# -- measurements -------------------------------------------------------------


def series(fn: Callable[[], object], samples: int, warmup: int,
           budget_s: float | None = None) -> list[float]:
    """Seconds per call of *fn* after *warmup* calls; stops early past *budget_s* (>= 10 kept)."""
    for _ in range(warmup):
        fn()
    gc.collect()
    out: list[float] = []
    start = time.perf_counter()
    for _ in range(samples):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        if budget_s is not None and len(out) >= 10 and time.perf_counter() - start > budget_s:
            break
    return out


def stats(seconds: Iterable[float]) -> dict[str, float]:
    """Median, p95 (nearest rank), mean, min, max in milliseconds, and the sample count."""
    values = sorted(seconds)
    if not values:
        return {"n": 0}
    p95 = values[max(0, -(-95 * len(values) // 100) - 1)]
    return {"n": len(values), "median_ms": statistics.median(values) * 1e3, "p95_ms": p95 * 1e3,
            "mean_ms": statistics.fmean(values) * 1e3, "min_ms": values[0] * 1e3,
            "max_ms": values[-1] * 1e3}


class Recorder:
    """Records empty tracked runs into one repository; remembers their ids."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.ids: list[str] = []

    def __call__(self) -> None:
        with tracked_run("test", "test:bench", summary="benchmark run",
                         project_root=self.repo) as run:
            pass
        self.ids.append(run.run_id)


class NaiveRecorder:
    """The naive baseline: files in a worktree, then ``git add``, ``commit``, ``tag -a``."""

    def __init__(self, repo: Path, code_commit: str) -> None:
        self.repo = repo
        self.code_commit = code_commit
        self.env = {**os.environ, **GIT_ENV}

    def _git(self, *args: str) -> None:
        subprocess.run(["git", *args], cwd=self.repo, env=self.env, check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def __call__(self) -> None:
        run = Run.new("test:bench", summary="benchmark run",
                      actor={"kind": "script", "name": GIT_ENV["GIT_AUTHOR_NAME"]},
                      code_ref={"commit": self.code_commit, "branch": "main", "dirty": False})
        run.finish(RunStatus.OK)
        events = [{"seq": 1, "type": "run:started", "at": run.started_at, "data": {}},
                  {"seq": 2, "type": "run:completed", "at": run.ended_at,
                   "data": {"status": "ok", "error": None}}]
        run.events = len(events)
        directory = ledger_dir(run.run_id)
        (self.repo / directory).mkdir(parents=True)
        (self.repo / directory / "run.json").write_bytes(dumps(run.to_dict()))
        (self.repo / directory / "events.jsonl").write_bytes(events_jsonl(events))
        message = f"run {run.run_id} {run.subtype} {run.status}"
        self._git("add", "--", f"{directory}/run.json", f"{directory}/events.jsonl")
        self._git("commit", "-q", "-m", message)
        self._git("tag", "-a", "-m", f"{run.subtype} {run.status}", f"scp/run/{run.run_id}")


def worker(repo: str, count: int, name: str) -> None:
    """Subprocess side of the concurrency test: wait for ``go``, record *count* runs."""
    Ledger.open(repo)
    print("ready", flush=True)
    sys.stdin.readline()
    latencies = []
    start = time.time()
    for n in range(count):
        t0 = time.perf_counter()
        with tracked_run("test", "test:concurrent", summary=f"{name} {n}",
                         project_root=repo) as run:
            run.output(f"process {name} run {n}")
        latencies.append(time.perf_counter() - t0)
    print(json.dumps({"name": name, "start": start, "end": time.time(),
                      "latencies": latencies}), flush=True)


def ledger_counts(repo: Path) -> dict[str, int]:
    """Runs in the index, commits on the ledger branch, run refs, run.json files in the view."""
    ledger = Ledger.open(repo)
    ledger.catch_up()
    view = repo / ".scp-ledger" / "ledger" / "runs"
    return {"index": ledger.index.count(), "commits": commit_count(repo),
            "refs": ref_count(repo, "refs/scp/run"),
            "view": sum(1 for pattern in ("*/*/*/*/run.json", "*/*/*/*/*/run.json")  # both layouts
                        for _ in view.glob(pattern)) if view.exists() else 0}


def concurrent(repo: Path, processes: int, runs: int) -> dict[str, Any]:
    """*processes* subprocesses record *runs* each at once; wall time and checks."""
    t_counts = time.perf_counter()
    before = ledger_counts(repo)
    counts_s = time.perf_counter() - t_counts
    env = {**os.environ, **GIT_ENV}
    package_parent = str(Path(controlplane.__file__).parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", str(repo), str(runs)]
    procs = [subprocess.Popen([*argv, f"p{i}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env) for i in range(processes)]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"worker did not start: {line!r}")
    t0 = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=1800)[0] for proc in procs]
    wall = time.perf_counter() - t0
    codes = [proc.returncode for proc in procs]
    reports = [json.loads(out.strip().splitlines()[-1]) for out in outputs if out.strip()]
    latencies = [x for r in reports for x in r["latencies"]]
    t_counts = time.perf_counter()
    after = ledger_counts(repo)
    counts_s += time.perf_counter() - t_counts
    delta = {key: after[key] - before[key] for key in after}
    t1 = time.perf_counter()
    fsck = git(repo, "fsck", "--no-dangling", check=False)
    fsck_s = time.perf_counter() - t1
    journal = [p for p in (repo / ".git" / "scp" / "journal").iterdir()
               if not p.name.startswith(".spare.")]  # a live process's reusable file
    expected = processes * runs
    ok = (codes == [0] * processes and all(v == expected for v in delta.values())
          and fsck.returncode == 0 and not journal)
    return {"processes": processes, "runs_each": runs, "wall_s": wall,
            "runs_per_s": expected / wall, "latency": stats(latencies), "exit_codes": codes,
            "before": before, "after": after, "recorded": delta,
            "fsck_ok": fsck.returncode == 0, "fsck_s": fsck_s, "counts_s": counts_s,
            "fsck_output": (fsck.stdout + fsck.stderr).strip()[-500:],
            "journal_left": len(journal), "ok": ok}


# -- the benchmark ------------------------------------------------------------


def run_benchmark(args: argparse.Namespace, work: Path, res: dict[str, Any],
                  checkpoint: Callable[[], None]) -> None:
    """All scenarios in order, filling *res*; *checkpoint* saves it after each phase.

    Nothing is deleted before the last timing (see ``prefill``): the rebuild,
    which rewrites the view, comes last.
    """
    n, samples, warmup = args.runs, args.samples, args.warmup
    naive_samples = args.naive_samples or max(10, samples // 2)

    say("1. record cost at 0 runs (fresh repo, one commit)")
    empty = work / "ours-0"
    make_repo(empty)
    res["record"]["ours@0"] = stats(series(Recorder(empty), samples, warmup))

    checkpoint()
    say("4a. naive baseline at 0 runs")
    naive_empty = work / "naive-0"
    commit = make_repo(naive_empty)
    res["record"]["naive@0"] = stats(
        series(NaiveRecorder(naive_empty, commit), naive_samples, warmup, args.naive_budget))

    checkpoint()
    say(f"2. prefill {n:,} runs spread over 365 days (ours and naive)")
    big, naive_big = work / "ours-n", work / "naive-n"
    code_commit = make_repo(big)
    make_repo(naive_big)
    now = time.time()
    run_ids = spread_ids(random.Random(args.seed), n, now - 365 * DAY, now - 60)
    res["prefill"] = prefill(big, naive_big, run_ids, code_commit, args.seed,
                             work / "scratch-n.git")
    del run_ids
    t0 = time.perf_counter()
    Ledger.forget_instances()
    ledger = Ledger.open(big)  # first open: catch-up builds the index and the view
    res["prefill"]["first_open_catch_up_s"] = time.perf_counter() - t0
    res["prefill"]["index_count"] = ledger.index.count()
    res["prefill"]["method"] = (
        f"bulk: {n:,} runs (run.json and events.jsonl from the Run model, 0-20 output lines "
        "each, ids from new_run_id(now=...) over 365 days) in one scp-ledger commit built with "
        f"pygit2 TreeBuilders, {n:,} annotated run tags by GitStore.tag_run; made in a scratch "
        "repository and moved in as one pack (pack-objects | index-pack), run refs written to "
        "packed-refs: the packed state gc leaves a long-lived ledger in. Index and view built "
        "by Ledger.open's catch-up. Naive repo: the same files committed on main and checked "
        f"out, {n:,} tags in refs/tags/scp/run/ (packed).")
    say(f"   prefill done: {res['prefill']['objects_s']:.1f}s objects, "
        f"{res['prefill']['pack_and_refs_s']:.1f}s pack+refs, "
        f"{res['prefill']['naive_repo_s']:.1f}s naive repo, "
        f"{res['prefill']['first_open_catch_up_s']:.1f}s first open (index+view)")

    checkpoint()
    say(f"2. record cost at {n:,} runs")
    res["record"]["ours@N"] = stats(series(Recorder(big), samples, warmup))

    checkpoint()
    say(f"4b. naive baseline at {n:,} runs")
    res["record"]["naive@N"] = stats(
        series(NaiveRecorder(naive_big, code_commit), naive_samples, warmup, args.naive_budget))

    checkpoint()
    say(f"6. index at {n:,} runs: recent(50), index-only rebuild")
    res["index"]["recent50_facade"] = stats(series(lambda: ledger.recent(50), samples, warmup))
    res["index"]["recent50_sql"] = stats(series(lambda: ledger.index.recent(50), samples, warmup))
    head = ledger.store.head()

    def index_only() -> None:
        ledger.index.clear()
        ledger._catch_up_index(head)  # the index half of rebuild_index(), without the view

    res["index"]["index_only_rebuild"] = stats(series(index_only, 3 if n <= 20_000 else 1, 0))

    checkpoint()
    say(f"5. {args.procs} processes x {args.proc_runs} runs at once, at 0 runs (fresh repo)")
    fresh = work / "ours-concurrent-0"
    make_repo(fresh)
    res["concurrent"]["@0"] = concurrent(fresh, args.procs, args.proc_runs)
    checkpoint()
    say(f"5. {args.procs} processes x {args.proc_runs} runs at once, at {n:,} runs")
    res["concurrent"]["@N"] = concurrent(big, args.procs, args.proc_runs)

    checkpoint()
    say(f"3. burst of {args.burst:,} runs into today, then record cost into that day")
    day_start = now // DAY * DAY
    burst_ids = spread_ids(random.Random(args.seed + 1), args.burst, day_start,
                           max(day_start + 1, time.time() - 0.01))
    res["burst"] = prefill(big, None, burst_ids, code_commit, args.seed + 1,
                           work / "scratch-burst.git", packed_refs=False)
    res["burst"]["method"] = (f"bulk as the prefill, one commit on top of the tip; its "
                              f"{args.burst:,} run refs loose (as between two gc runs)")
    t0 = time.perf_counter()
    ledger.catch_up()
    res["burst"]["catch_up_s"] = time.perf_counter() - t0
    day = "/".join(ledger_dir(burst_ids[0]).split("/")[:5])  # ledger/runs/YYYY/MM/DD
    day_view = big / ".scp-ledger" / day
    res["burst"]["day_entries_before"] = sum(  # both layouts: <id>/ and <bucket>/<id>/
        1 for pattern in ("*/run.json", "*/*/run.json") for _ in day_view.glob(pattern))
    recorder = Recorder(big)
    res["record"]["ours@burst"] = stats(series(recorder, samples, warmup))
    res["burst"]["timed_runs_in_burst_day"] = sum(
        1 for i in recorder.ids[warmup:] if ledger_dir(i).startswith(day + "/"))

    checkpoint()
    say(f"6. rebuild_index() at {n:,} runs (drops and rewrites index and view)")
    t0 = time.perf_counter()
    res["index"]["rebuild_count"] = ledger.rebuild_index()
    res["index"]["rebuild_index_s"] = time.perf_counter() - t0

    rec = res["record"]
    res["ratios"] = {
        "naive_over_ours@N": rec["naive@N"]["median_ms"] / rec["ours@N"]["median_ms"],
        "naive_over_ours@0": rec["naive@0"]["median_ms"] / rec["ours@0"]["median_ms"],
        "ours@N_over_ours@0": rec["ours@N"]["median_ms"] / rec["ours@0"]["median_ms"],
        "ours@burst_over_ours@0": rec["ours@burst"]["median_ms"] / rec["ours@0"]["median_ms"],
    }


def table(res: dict[str, Any], n: int, burst: int) -> str:
    """The compact summary printed at the end."""
    rec, idx, ratios = res["record"], res["index"], res["ratios"]
    rows = [("record: empty tracked_run @0 runs", rec["ours@0"]),
            (f"record: empty tracked_run @{n:,} runs", rec["ours@N"]),
            (f"record: into a day of {burst:,} runs", rec["ours@burst"]),
            ("naive: files+add+commit+tag @0", rec["naive@0"]),
            (f"naive: files+add+commit+tag @{n:,}", rec["naive@N"]),
            (f"Ledger.recent(50) @{n:,}", idx["recent50_facade"]),
            (f"RunIndex.recent(50) @{n:,}", idx["recent50_sql"]),
            (f"index-only rebuild @{n:,}", idx["index_only_rebuild"])]
    lines = [f"{'measure':<40} {'median ms':>10} {'p95 ms':>10} {'n':>5}", "-" * 68]
    lines += [f"{name:<40} {s['median_ms']:>10.2f} {s['p95_ms']:>10.2f} {s['n']:>5}"
              for name, s in rows]
    naive_ratio, growth = ratios["naive_over_ours@N"], ratios["ours@N_over_ours@0"]
    verdict = ("aim met" if naive_ratio >= AIM_NAIVE_RATIO
               else "goal met" if naive_ratio >= GOAL_NAIVE_RATIO else "GOAL MISSED")
    growth_verdict = "goal met" if growth <= GOAL_GROWTH else "GOAL MISSED"
    if n < 10_000:
        verdict = growth_verdict = "the goals are set for 10,000 runs"
    lines += ["-" * 68,
              f"naive/ours @{n:,}: {naive_ratio:.1f}x (goal >= {GOAL_NAIVE_RATIO:.0f}x, "
              f"aim {AIM_NAIVE_RATIO:.0f}x): {verdict}",
              f"naive/ours @0: {ratios['naive_over_ours@0']:.1f}x",
              f"ours@{n:,} / ours@0: {growth:.2f} (goal <= {GOAL_GROWTH}): "
              f"{growth_verdict}",
              f"ours@burst / ours@0: {ratios['ours@burst_over_ours@0']:.2f}",
              f"rebuild_index() (index + view) @{n:,}: {idx['rebuild_index_s']:.2f} s "
              f"({idx['rebuild_count']:,} runs)",
              f"prefill {n:,}: {res['prefill']['objects_s']:.1f} s objects, "
              f"{res['prefill']['pack_and_refs_s']:.1f} s pack+refs, first open "
              f"(catch-up index+view) {res['prefill']['first_open_catch_up_s']:.1f} s; "
              f"burst: catch-up {res['burst']['catch_up_s']:.2f} s, day held "
              f"{res['burst']['day_entries_before']:,} runs, "
              f"{res['burst']['timed_runs_in_burst_day']}/{rec['ours@burst']['n']} timed runs "
              "landed in it"]
    for where, c in res["concurrent"].items():
        rec_counts = c["recorded"]
        lines.append(
            f"concurrent {c['processes']}x{c['runs_each']} {where}: {c['wall_s']:.1f} s wall, "
            f"{c['runs_per_s']:.0f} runs/s, per run median {c['latency']['median_ms']:.1f} ms "
            f"p95 {c['latency']['p95_ms']:.1f} ms; recorded index {rec_counts['index']}, "
            f"commits {rec_counts['commits']}, refs {rec_counts['refs']}, "
            f"view {rec_counts['view']}; fsck {'ok' if c['fsck_ok'] else 'FAILED'}"
            f"{'' if c['ok'] else '  <-- CHECK FAILED'}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=None, help="N runs prefilled (10,000)")
    parser.add_argument("--samples", type=int, default=None, help="timed records per case (200)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first (5)")
    parser.add_argument("--naive-samples", type=int, default=None,
                        help="timed naive records per case (samples / 2, at least 10)")
    parser.add_argument("--naive-budget", type=float, default=120.0,
                        help="stop a naive series after this many seconds (>= 10 samples)")
    parser.add_argument("--burst", type=int, default=None, help="runs in the burst day (2,000)")
    parser.add_argument("--procs", type=int, default=4, help="concurrent processes (4)")
    parser.add_argument("--proc-runs", type=int, default=None, help="runs per process (100)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: N=500, 30 samples, burst 200, 4x25 concurrent")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the synthetic runs")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the temporary repositories go (system temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary repositories")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to SECONDS for the load average to fall below 1")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results ({RESULTS})")
    args = parser.parse_args(argv)
    quick = args.quick
    for name, full, small in (("runs", 10_000, 500), ("samples", 200, 30), ("warmup", 5, 2),
                              ("burst", 2_000, 200), ("proc_runs", 100, 25)):
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    if args.runs < 1 or args.samples < 1 or args.burst < 1:
        parser.error("--runs, --samples and --burst must be positive")
    return args


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # run the clean-up and save what was measured


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (1 when a correctness check failed)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(argv[1], int(argv[2]), argv[3])
        return 0
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    if args.wait_idle > 0:
        wait_for_quiet(args.wait_idle, 1.0)
    work = Path(tempfile.mkdtemp(prefix="scp-bench-", dir=args.workdir))
    say(f"ledger benchmark: N={args.runs:,}, samples={args.samples}, warmup={args.warmup}, "
        f"in {work}" + ("" if args.runs <= 20_000 else " (large N: the prefill takes minutes)"))
    started = time.time()
    res: dict[str, Any] = {"complete": False, "record": {}, "prefill": {}, "index": {},
                           "concurrent": {}}

    def checkpoint() -> None:
        res["meta"] = {
            "started_at": iso(datetime.fromtimestamp(started, UTC)),
            "duration_s": time.time() - started, "runs": args.runs, "samples": args.samples,
            "warmup": args.warmup, "burst": args.burst, "quick": args.quick, "seed": args.seed,
            "python": platform.python_version(), "pygit2": pygit2.__version__,
            "libgit2": pygit2.LIBGIT2_VERSION,
            "git": subprocess.run(["git", "--version"], capture_output=True,
                                  text=True).stdout.strip(),
            "platform": platform.platform(), "cpus": os.cpu_count(), "load_by_phase": LOAD,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=1, default=str) + "\n")

    try:
        run_benchmark(args, work, res, checkpoint)
        res["checks_ok"] = all(c["ok"] for c in res["concurrent"].values())
        res["complete"] = True
    finally:
        Ledger.forget_instances()
        if args.keep:
            say(f"kept {work}")
        else:
            say(f"removing {work}")
            shutil.rmtree(work, ignore_errors=True)
        checkpoint()
    print()
    print(f"prefill: {res['prefill']['method']}")
    print()
    print(table(res, args.runs, args.burst))
    busiest, cpus = max(load for _, load, _ in LOAD), os.cpu_count() or 1
    if busiest > cpus + args.procs:  # more than this benchmark's own processes explain
        print(f"note: the 1-minute load average reached {busiest:.1f} on {cpus} CPUs during "
              "the run; other work skews these timings (see --wait-idle)")
    print()
    say(f"results written to {args.out}")
    return 0 if res["checks_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
