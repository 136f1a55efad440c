"""Crash injection: writers and recoverers killed at random points lose no run, leave no tool.

Writers are scripts that open a ``tracked_run`` and start a tool through the tool runner;
recoverers only open the ledger (which records the runs of dead processes). Each is killed
with SIGKILL at a random moment after its imports, several at once, wave after wave. Then one
clean ``ledger doctor`` runs and every started run must be in the ledger with a final status,
no tool may be left running, ``git fsck`` must be clean and the index must equal the branch.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from controlplane.core.ledger import Ledger
from tests.conftest import git, scaled
from tests.reliability.fault_support import cli, fsck, journal_entries, listed_runs, wait_until
from tests.test_serve import server_env

WRITER = """
import sys
from controlplane.core.run_tracker import tracked_run
from controlplane.core.tools import run_tool

label, mark, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
print("imported", flush=True)
with tracked_run("test", "test:crash", summary=label) as run:
    print(run.run_id, flush=True)
    result = run_tool(argv, extra_env={"SCP_CRASH_MARK": mark}, timeout=None)
    run.result = {"exit": result.exit_code}
    if not result.ok:
        run.fail("tool", "the tool failed")
print("done", flush=True)
"""

RECOVERER = """
from controlplane.core.ledger import Ledger

print("imported", flush=True)
Ledger.open()
print("done", flush=True)
"""

FINAL = {"ok", "failed", "cancelled", "interrupted"}


def marked_processes(mark: str) -> list[psutil.Process]:
    """Live processes whose environment carries *mark* (tools and anything they started)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get("SCP_CRASH_MARK") == mark:
                found.append(process)
        except (psutil.Error, OSError):
            continue
    return found


def branch_run_ids(repo: Path) -> set[str]:
    names = git(repo, "ls-tree", "-r", "--name-only", "scp-ledger", "--", "ledger/runs",
                check=False).split()
    return {name.split("/")[-2] for name in names if name.endswith("/run.json")}


def index_run_ids(repo: Path) -> set[str]:
    with sqlite3.connect(repo / ".git" / "scp" / "index.sqlite") as db:
        return {row[0] for row in db.execute("SELECT run_id FROM runs")}


class Victim:
    """A script started now, to be SIGKILLed *delay* seconds after its imports."""

    def __init__(self, repo: Path, script: Path, args: list[str], delay: float,
                 env: dict[str, str]) -> None:
        self.delay = delay
        self.proc = subprocess.Popen([sys.executable, str(script), *args], cwd=repo, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        self.kill_at: float | None = None

    def read_imported(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line:
            self.lines.append(line)
        self.kill_at = time.monotonic() + self.delay

    def kill(self) -> None:
        """SIGKILL the script only (its tools have sessions of their own)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.stdout is not None
        self.lines += [line.strip() for line in self.proc.stdout.read().splitlines()]
        self.proc.stdout.close()
        self.proc.wait(timeout=30)


def run_wave(repo: Path, scripts: dict[str, Path], mark: str, rng: random.Random,
             env: dict[str, str], writers: int, max_delay: float) -> list[Victim]:
    victims = []
    for n in range(writers):
        argv = ["sleep", "30"] if rng.random() < 0.75 else ["true"]
        victims.append(Victim(repo, scripts["writer"], [f"w{n}", mark, *argv],
                              rng.uniform(0, max_delay), env))
    victims.append(Victim(repo, scripts["recoverer"], [], rng.uniform(0, max_delay), env))
    for victim in victims:
        victim.read_imported()
    for victim in sorted(victims, key=lambda v: v.kill_at or 0):
        wait = (victim.kill_at or 0) - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # a random kill point, not a synchronisation
        victim.kill()
    return victims


@pytest.mark.slow
def test_writers_and_recoverers_killed_at_random_lose_no_run(repo: Path, tmp_path: Path) -> None:
    waves = int(os.environ.get("CONTROLPLANE_CRASH_WAVES", "0")) or scaled(20, 200)
    rng = random.Random(int(os.environ.get("CONTROLPLANE_CRASH_SEED", "0")) or None)
    scripts = {"writer": tmp_path / "writer.py", "recoverer": tmp_path / "recoverer.py"}
    scripts["writer"].write_text(WRITER)
    scripts["recoverer"].write_text(RECOVERER)
    mark = f"crash-{os.getpid()}-{rng.randrange(1 << 30)}"
    env = server_env()
    started: set[str] = set()
    survivors: list[psutil.Process] = []
    began = time.monotonic()
    try:
        for _ in range(waves):
            for victim in run_wave(repo, scripts, mark, rng, env, writers=3, max_delay=0.7):
                started |= {line for line in victim.lines if line.startswith("20")}
        doctor = cli(repo, "ledger", "doctor")
        survivors = marked_processes(mark)
        recorded = {r["run_id"]: r for r in listed_runs(repo)}
        leftovers = sorted(p.name for p in (repo / ".git" / "scp" / "journal").iterdir())
        stranded = {name.split(".")[0] for name in leftovers}  # e.g. <run_id>.json.claimed-<pid>
        lost = sorted((started | stranded) - recorded.keys())
        print(f"FIGURE crash injection: {waves} waves, {len(started)} runs started, "
              f"{len(lost)} lost, {len(leftovers)} journal files left, {len(survivors)} "
              f"tool processes left alive, {time.monotonic() - began:.1f} s")
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert "runs of dead processes not recorded: 0" in doctor.stdout, doctor.stdout
        assert not lost, f"runs started but never recorded: {lost}"
        assert not leftovers, f"journal files left behind: {leftovers}"
        assert journal_entries(repo) == []
        assert not survivors, f"tools left running: {[p.pid for p in survivors]}"
        assert all(r["status"] in FINAL for r in recorded.values())
        assert started, "no writer got as far as starting its run"
        done = fsck(repo)
        assert done.returncode == 0, done.stdout + done.stderr
        assert index_run_ids(repo) == branch_run_ids(repo) == set(recorded)
    finally:
        for process in survivors or marked_processes(mark):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_scp_dir_is_private_and_the_index_owner_only(repo: Path) -> None:
    scp = repo / ".git" / "scp"
    scp.mkdir()
    scp.chmod(0o755)  # as an older version left it
    done = cli(repo, "exec", "test:modes", "--", "true")
    assert done.returncode == 0, done.stderr
    assert mode(scp) == 0o700
    queued = list((scp / "index-queue").iterdir())  # exec leaves its run for the index
    assert [mode(scp / "index-queue"), *map(mode, queued)] == [0o700, 0o600]
    assert json.loads(cli(repo, "runs", "list", "--json").stdout)[0]["status"] == "ok"
    Ledger.open(repo).index.head()  # the index made, as a server or a script makes it
    assert mode(scp / "index.sqlite") == 0o600


def test_a_fresh_scp_dir_is_private(repo: Path) -> None:
    done = cli(repo, "exec", "test:modes", "--", "true")
    assert done.returncode == 0, done.stderr
    assert mode(repo / ".git" / "scp") == 0o700
    assert wait_until(lambda: listed_runs(repo), 10, "the run listed")
    Ledger.open(repo).index.head()  # the index made, as a server or a script makes it
    assert mode(repo / ".git" / "scp" / "index.sqlite") == 0o600


STUCK_WRITER = """
import sys
from controlplane.core.run_tracker import tracked_run
from controlplane.core.tools import run_tool

with tracked_run("test", "test:stuck", summary=sys.argv[1]) as run:
    print(run.run_id, flush=True)
    if len(sys.argv) > 2:
        sys.stdin.readline()  # the test prepares its trap, then says go
        run_tool(sys.argv[2:], extra_env={"SCP_CRASH_MARK": sys.argv[1]}, timeout=None)
"""


def start_script(repo: Path, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    script = tmp_path / "stuck_writer.py"
    script.write_text(STUCK_WRITER)
    return subprocess.Popen([sys.executable, str(script), *args], cwd=repo, env=server_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)


def test_a_ref_lock_left_by_a_killed_writer_is_cleared_at_once(repo: Path,
                                                               tmp_path: Path) -> None:
    first = cli(repo, "exec", "test:lock", "--summary", "first", "--", "true")
    assert first.returncode == 0, first.stderr
    git_dir = repo / ".git"
    lock = git_dir / "refs" / "heads" / "scp-ledger.lock"
    reflog = git_dir / "logs" / "refs" / "heads" / "scp-ledger"
    saved = reflog.read_bytes()
    reflog.unlink()
    os.mkfifo(reflog)  # libgit2 appends to the reflog holding the ref lock: it blocks there
    writer = start_script(repo, tmp_path, "killed mid-write")
    try:
        assert writer.stdout is not None
        killed_run = writer.stdout.readline().strip()
        wait_until(lock.exists, 30, "the writer holding refs/heads/scp-ledger.lock")
        holder = json.loads((git_dir / "scp" / "ref-writer.lock").read_text())
        assert holder["pid"] == writer.pid and holder["ref"] == "refs/heads/scp-ledger"
        from controlplane.core.ledger.locks import clear_stale_locks

        assert clear_stale_locks(git_dir, repo, older_than=0.0) == []  # a live writer's lock
        assert lock.exists()
    finally:
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
        writer.stdin.close()
        writer.stdout.close()
        reflog.unlink()
        reflog.write_bytes(saved)
    assert lock.exists()  # left behind, young: the old rule kept it 60 s

    began = time.monotonic()
    after = cli(repo, "exec", "test:lock", "--summary", "right after", "--", "true")
    took = time.monotonic() - began
    assert after.returncode == 0, after.stderr
    assert "died mid-write" in after.stderr  # said once, as a warning
    assert not lock.exists()
    runs = {r["summary"]: r for r in listed_runs(repo)}
    assert runs["right after"]["status"] == "ok"
    assert runs["killed mid-write"]["status"] == "interrupted"
    assert runs["killed mid-write"]["run_id"] == killed_run
    assert journal_entries(repo) == []
    done = fsck(repo)
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"FIGURE killed writer's ref lock: next record ok in {took:.2f} s (was: exit 2 "
          "for 60 s, runs ended interrupted)")


def test_a_tool_never_runs_if_its_script_dies_before_journaling_its_group(
        repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "tool-ran"
    mark = f"gate-{os.getpid()}"
    writer = start_script(repo, tmp_path, mark, "sh", "-c",
                          f"echo ran > {marker}; exec sleep 30")
    try:
        assert writer.stdout is not None and writer.stdin is not None
        run_id = writer.stdout.readline().strip()
        journal = repo / ".git" / "scp" / "journal"
        os.mkfifo(journal / f".{run_id}.json.{writer.pid}.tmp")  # the journal write blocks
        writer.stdin.write("go\n")
        writer.stdin.flush()
        wait_until(lambda: marked_processes(mark), 30, "the tool's process spawned")
    finally:
        os.kill(writer.pid, signal.SIGKILL)  # between spawning the tool and journaling it
        writer.wait(timeout=30)
        writer.stdin.close()
        writer.stdout.close()
    try:
        wait_until(lambda: not marked_processes(mark), 10, "the gated tool to give up")
    finally:
        for process in marked_processes(mark):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
    assert not marker.exists(), "the tool ran although its group was never journaled"
    runs = {r["run_id"]: r for r in listed_runs(repo)}
    assert runs[run_id]["status"] == "interrupted"
    assert sorted(p.name for p in journal.iterdir()) == []
