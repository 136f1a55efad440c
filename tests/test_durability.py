"""The ``durability`` operator setting (issue 18 item 10), seen from the system calls of a real
``controlplane exec``: ``record`` fsyncs the ledger's objects and refs before the record
returns, ``batched`` flushes the file system once (here at exit), ``none`` leaves it to the
kernel; the committed project file cannot choose it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane.core.ledger import Ledger

needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")


def exec_traced(repo: Path, mode: str | None, tmp_path: Path) -> tuple[int, str]:
    """(exit status, the fsync/fdatasync/syncfs calls with their paths) of one exec."""
    trace = tmp_path / f"trace-{mode}"
    env = {k: v for k, v in os.environ.items() if k != "CONTROLPLANE_DURABILITY"}
    if mode is not None:
        env["CONTROLPLANE_DURABILITY"] = mode
    done = subprocess.run(["strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync,syncfs",
                           "-o", str(trace), sys.executable, "-m", "controlplane", "exec",
                           "test:a", "--", "true"], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.returncode, trace.read_text()


def synced(calls: str, where: str) -> list[str]:
    return [line for line in calls.splitlines()
            if line.split(None, 1)[-1].startswith(("fsync", "fdatasync")) and where in line]


@needs_strace
def test_record_mode_syncs_objects_and_refs_before_returning(repo: Path, tmp_path: Path) -> None:
    _, calls = exec_traced(repo, "record", tmp_path)
    assert synced(calls, "/.git/objects/"), calls
    assert synced(calls, "/.git/refs/"), calls
    assert "syncfs(" not in calls


@needs_strace
def test_batched_is_the_default_and_flushes_once(repo: Path, tmp_path: Path) -> None:
    _, calls = exec_traced(repo, None, tmp_path)
    assert not synced(calls, "/.git/objects/")
    assert calls.count("syncfs(") == 1 and "/.git>" in calls.split("syncfs(", 1)[1]
    assert Ledger.open(repo).recent()[0]["status"] == "ok"


@needs_strace
def test_none_leaves_it_to_the_kernel(repo: Path, tmp_path: Path) -> None:
    _, calls = exec_traced(repo, "none", tmp_path)
    assert not synced(calls, "/.git/objects/") and "syncfs(" not in calls


def test_a_bad_mode_is_one_line_and_the_project_file_cannot_choose(repo: Path) -> None:
    env = {**os.environ, "CONTROLPLANE_DURABILITY": "sometimes"}
    done = subprocess.run([sys.executable, "-m", "controlplane", "exec", "test:a", "--", "true"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode != 0
    assert "durability must be one of none, record, batched" in done.stderr, done.stderr
    (repo / ".controlplane.yaml").write_text("durability: none\n")
    shown = subprocess.run([sys.executable, "-m", "controlplane", "config"], cwd=repo,
                           capture_output=True, text=True, timeout=120, check=False)
    line = next(x for x in shown.stdout.splitlines() if x.strip().startswith("durability"))
    assert "batched" in line, shown.stdout
    assert "durability" in shown.stderr + shown.stdout.replace(line, ""), shown


def test_a_batch_whose_repository_was_deleted_flushes_without_a_warning(
        repo: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A script (or a benchmark) that removes its repository before the batch's second:
    nothing of it is left to flush, and no warning says it could not be."""
    from controlplane.core.ledger.durability import Durability

    durability = Durability(repo / ".git", "batched")
    durability.recorded()
    shutil.rmtree(repo)
    with caplog.at_level("DEBUG", logger="controlplane"):
        durability.flush()
    assert [r for r in caplog.records if r.levelname == "WARNING"] == []
