"""Pulls take turns with the writers of a busy ledger instead of losing a retry race.

Four processes record runs in a loop into clone A while A pulls ten times from a
remote that machine B keeps adding runs to: every pull succeeds and no run of
either side is lost. ``CONTROLPLANE_LONG_TESTS=1`` runs the form that reproduced the
starvation on this machine (B records and pushes between pulls).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from controlplane import tracked_run
from controlplane.core.ledger import Ledger
from controlplane.core.ledger.sync import LedgerSync
from tests.conftest import LONG, git, make_repo, scaled

WRITERS = 4
PULLS = 10
REMOTE_RUNS = scaled(5, 20)
LOCAL_RUNS = 200  # unpushed local runs before the first pull (long form)

WRITER = """
import sys
from pathlib import Path
from controlplane import tracked_run
repo, out, stop = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
n = 0
with open(out, "a") as ids:
    while not stop.exists():
        with tracked_run("test", "test:busy", summary=f"busy {n}", project_root=repo) as run:
            pass
        ids.write(run.run_id + "\\n")
        ids.flush()
        n += 1
"""


def clones(tmp_path: Path) -> tuple[Path, Path]:
    origin = make_repo(tmp_path / "seed")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(origin), str(remote))
    found = []
    for name in ("a", "b"):
        git(tmp_path, "clone", "-q", str(remote), str(tmp_path / name))
        git(tmp_path / name, "config", "user.name", f"machine {name}")
        git(tmp_path / name, "config", "user.email", f"{name}@example.com")
        found.append(tmp_path / name)
    return found[0], found[1]


def wait_for_lines(paths: list[Path], each: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() and p.read_text().count("\n") >= each for p in paths):
        assert time.monotonic() < deadline, "the writers did not start recording"
        time.sleep(0.05)


def remote_gains_live(b: Path) -> list[str]:
    """B records REMOTE_RUNS runs and pushes them (while A's writers keep going)."""
    added = []
    for k in range(REMOTE_RUNS):
        with tracked_run("test", "test:remote", summary=f"B {k}", project_root=b) as run:
            pass
        added.append(run.run_id)
    LedgerSync(Ledger.open(b)).push()
    return added


@pytest.mark.slow
@pytest.mark.timeout(scaled(300, 1200))
def test_ten_pulls_succeed_beside_four_busy_writers(tmp_path: Path) -> None:
    """Short form: B's runs recorded first, a slice pushed before each pull. Long form (the
    one that lost before the writer lock was taken: 1 of 10 pulls here, 4 of 10 in the
    issue): B records and pushes between pulls, so A's unpushed history keeps growing."""
    a, b = clones(tmp_path)
    with tracked_run("test", "test:seed", project_root=a):
        pass  # A has a ledger before the writers start
    slices: list[list[str]] = []
    if not LONG:
        for _ in range(PULLS):
            slices.append([])
            for k in range(REMOTE_RUNS):
                with tracked_run("test", "test:remote", summary=f"B {k}", project_root=b) as run:
                    pass
                slices[-1].append(run.run_id)
    stop = tmp_path / "stop"
    outputs = [tmp_path / f"writer-{n}.ids" for n in range(WRITERS)]
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(a), str(out), str(stop)],
                                stderr=subprocess.PIPE, text=True) for out in outputs]
    pulled, failures, b_runs = 0, [], []
    try:
        wait_for_lines(outputs, scaled(10, LOCAL_RUNS // WRITERS))
        for n in range(PULLS):
            if LONG:
                b_runs += remote_gains_live(b)
            else:
                back = sum(len(later) for later in slices[n + 1:])
                b_runs += slices[n]
                step = git(b, "rev-parse", f"scp-ledger~{back}").strip()
                git(b, "push", "-q", "origin", f"{step}:refs/heads/scp-ledger")
            try:
                LedgerSync(Ledger.open(a)).pull()
                pulled += 1
            except Exception as exc:  # the defect: SyncError merge_failed
                failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        stop.touch()
        errors = [w.communicate(timeout=120)[1] for w in writers]
    assert [w.returncode for w in writers] == [0] * WRITERS, errors
    assert (pulled, failures) == (PULLS, [])
    written = [line for out in outputs for line in out.read_text().split()]
    ledger = Ledger.open(a)
    ledger.catch_up()
    runs_in_branch = {path.rsplit("/", 1)[-1]
                      for path in git(a, "ls-tree", "-r", "-d", "--name-only",
                                      "scp-ledger", "ledger/runs").split()}
    assert set(written) <= runs_in_branch, "a writer's run was lost"
    assert set(b_runs) <= runs_in_branch, "a pulled run is missing"
    for run_id in [*written, *b_runs]:
        assert ledger.index.get(run_id) is not None, run_id
    ledger.wait_background()  # the writers' last roll-up, detached
    git(a, "fsck", "--no-dangling")
