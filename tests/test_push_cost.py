"""Pushing the ledger costs what the remote lacks, not what the ledger holds (issue 18, 1)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controlplane import tracked_run
from controlplane.core.ledger import Ledger
from controlplane.core.ledger.sync import LedgerSync
from controlplane.core.runs import new_run_id
from tests.conftest import GIT_ENV, git, make_repo

TAGS = 1000  # run tags in the ledger: enough for a per-tag cost to show
PLAIN_PUSH = ["push", "--quiet", "origin", "refs/heads/scp-ledger:refs/heads/scp-ledger",
              "refs/scp/run/*:refs/scp/run/*"]


def add_run_tags(repo: Path, count: int) -> list[str]:
    """*count* run tags on the published code commit, packed: a long-lived ledger's refs."""
    head = git(repo, "rev-parse", "HEAD").strip()
    start = time.time() - 86_400
    ids = sorted({new_run_id(now=start + n) for n in range(count)})
    lines = "".join(f"create refs/scp/run/{run_id} {head}\n" for run_id in ids)
    subprocess.run(["git", "update-ref", "--stdin"], cwd=repo, input=lines, text=True,
                   check=True)
    git(repo, "pack-refs", "--all")
    return ids


@pytest.fixture(scope="module")
def pushed_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with a ledger of TAGS run tags, all pushed to its bare remote (built once)."""
    tmp = tmp_path_factory.mktemp("pushed")
    remote = tmp / "remote.git"
    seed = make_repo(tmp / "seed")
    git(tmp, "clone", "-q", "--bare", str(seed), str(remote))
    project = tmp / "project"
    git(tmp, "clone", "-q", str(remote), str(project))
    with tracked_run("test", "test:push", project_root=project):
        pass
    add_run_tags(project, TAGS)
    assert LedgerSync(Ledger.open(project)).push().tags_pushed == TAGS + 1
    return tmp


@pytest.fixture
def pushed(pushed_once: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of that project and its remote, for one test."""
    project, remote = tmp_path / "project", tmp_path / "remote.git"
    shutil.copytree(pushed_once / "project", project, symlinks=True)
    shutil.copytree(pushed_once / "remote.git", remote, symlinks=True)
    git(project, "remote", "set-url", "origin", str(remote))
    return project, remote


def best_of(count: int, action) -> float:
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        action()
        times.append(time.perf_counter() - t0)
    return min(times)


def test_a_push_with_nothing_new_costs_about_a_plain_git_push(pushed) -> None:
    project, _ = pushed
    sync = LedgerSync(Ledger.open(project))
    plain = best_of(3, lambda: git(project, *PLAIN_PUSH))
    ours = best_of(3, lambda: sync.push())
    report = sync.push()
    assert report.pushed and report.tags_pushed == 0
    # goal 2x (bench/push_bench.py); before: about 100x at 2,000 tags
    assert ours <= 3 * plain + 0.05, f"no-op push {ours * 1000:.0f} ms, git {plain * 1000:.0f} ms"


def test_new_runs_push_only_what_the_remote_lacks(pushed) -> None:
    project, remote = pushed
    for _ in range(3):
        with tracked_run("test", "test:push", project_root=project):
            pass
    report = LedgerSync(Ledger.open(project)).push()
    assert report.pushed and report.tags_pushed == 3 and report.tags_held == []
    assert git(remote, "rev-parse", "scp-ledger") == git(project, "rev-parse", "scp-ledger")
    assert len(git(remote, "for-each-ref", "refs/scp/run").splitlines()) == TAGS + 4


def test_an_interrupted_push_leaves_no_outbox_refs(pushed, tmp_path: Path) -> None:
    """The pushing process is killed while the remote holds its push (a hook waits)."""
    project, remote = pushed
    started, release = tmp_path / "started", tmp_path / "release"
    os.mkfifo(started)
    os.mkfifo(release)
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\ncat >/dev/null\necho in > '{started}'\ncat '{release}'\n")
    hook.chmod(0o755)
    with tracked_run("test", "test:push", project_root=project):
        pass
    code = ("import sys; from controlplane.core.ledger import Ledger; "
            "from controlplane.core.ledger.sync import LedgerSync; "
            "LedgerSync(Ledger.open(sys.argv[1])).push()")
    pusher = subprocess.Popen([sys.executable, "-c", code, str(project)],
                              env={**os.environ, **GIT_ENV}, stderr=subprocess.DEVNULL)
    try:
        with open(started) as fifo:  # blocks until the hook runs: git push is under way
            assert fifo.read().strip() == "in"
        pusher.kill()
        pusher.wait(timeout=30)
        assert git(project, "for-each-ref", "refs/scp/outbox") == ""
    finally:
        with open(release, "w") as fifo:
            fifo.write("go\n")
        pusher.kill()
    # the next push finishes the job
    hook.unlink()
    assert LedgerSync(Ledger.open(project)).push().pushed
    assert len(git(remote, "for-each-ref", "refs/scp/run").splitlines()) == TAGS + 2


def test_outbox_refs_left_by_an_older_version_are_removed(pushed) -> None:
    project, _ = pushed
    head = git(project, "rev-parse", "HEAD").strip()
    git(project, "update-ref", f"refs/scp/outbox/{new_run_id()}", head)
    LedgerSync(Ledger.open(project)).push()
    assert git(project, "for-each-ref", "refs/scp/outbox") == ""
