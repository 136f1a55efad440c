"""Background packing (issue 18 item 3): a script or the CLI records one run per process,
so a count of records per process never reached git's threshold; git's own ``gc --auto``
estimate decides, from any process, detached, never while another run is in flight."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from controlplane import tracked_run
from tests.conftest import git


def cli_exec(repo: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "controlplane", "exec", "test:a", "--", "true"],
                          cwd=repo, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def loose_count(repo: Path) -> int:
    out = git(repo, "count-objects", "-v")
    return int(next(line.split()[1] for line in out.splitlines() if line.startswith("count:")))


def over_threshold(repo: Path) -> None:
    """gc.auto 256 (one loose object allowed in objects/17) and a commit of three files whose
    blobs git stores in objects/17 (as a busy repository's would be)."""
    git(repo, "config", "gc.auto", "256")
    files = repo / f"files-{time.monotonic_ns()}"
    files.mkdir()
    found, n = 0, 0
    while found < 3:
        n += 1
        data = f"{files.name} {n}\n".encode()
        if hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest().startswith("17"):
            (files / str(n)).write_bytes(data)
            found += 1
    git(repo, "add", files.name)
    git(repo, "-c", "maintenance.auto=false", "-c", "gc.auto=0", "commit", "-qm", "files")
    assert len(list((repo / ".git" / "objects" / "17").iterdir())) > 1


def wait_packed(repo: Path, before: int, seconds: float = 60.0) -> bool:
    """True once git has packed the loose objects (the detached gc's effect), polled."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if loose_count(repo) < before and not (repo / ".git" / "gc.pid").exists():
            return True
        time.sleep(0.1)
    return False


def test_one_cli_run_packs_when_git_would(repo: Path) -> None:
    over_threshold(repo)
    before = loose_count(repo)
    cli_exec(repo)  # a process that records one run and exits at once
    assert wait_packed(repo, before), f"still {loose_count(repo)} loose objects"
    assert list((repo / ".git" / "objects" / "pack").glob("*.pack"))


def test_no_pack_while_another_run_is_in_flight_nor_when_turned_off(repo: Path) -> None:
    over_threshold(repo)
    before = loose_count(repo)
    with tracked_run("test", "test:long", project_root=repo):
        cli_exec(repo)  # its record sees our run in flight: no gc
        assert not (repo / ".git" / "gc.pid").exists()
        assert loose_count(repo) >= before
    assert wait_packed(repo, before)  # our own record, nothing else in flight: packed
    over_threshold(repo)
    git(repo, "config", "gc.auto", "0")  # packing turned off
    before = loose_count(repo)
    cli_exec(repo)
    assert loose_count(repo) > before and not (repo / ".git" / "gc.pid").exists()


def fake_gc(repo: Path, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    """A process whose command line is ``git gc <args>``, named by ``gc.pid`` as git names a
    running gc; it lives until its stdin closes."""
    script = tmp_path / "git"
    script.write_text("#!/bin/sh\nread line\n")
    script.chmod(0o755)
    process = subprocess.Popen([str(script), "gc", *args], stdin=subprocess.PIPE)
    (repo / ".git" / "gc.pid").write_text(f"{process.pid} {os.uname().nodename}")
    return process


def record_in_thread(repo: Path) -> threading.Event:
    recorded = threading.Event()

    def record() -> None:
        with tracked_run("test", "test:during-gc", project_root=repo):
            pass
        recorded.set()

    threading.Thread(target=record, daemon=True).start()
    return recorded


def test_a_running_gc_auto_does_not_hold_records_back(repo: Path, tmp_path: Path) -> None:
    """``gc --auto`` prunes only objects two weeks old: a record need not wait for it (it
    waited up to 120 s, polling, while our own background gc packed)."""
    gc = fake_gc(repo, tmp_path, "--auto", "--quiet")
    try:
        assert record_in_thread(repo).wait(timeout=60)
        assert gc.poll() is None  # recorded while the gc still ran
    finally:
        gc.communicate(b"end\n")


def test_a_pruning_gc_holds_the_record_until_it_ends(repo: Path, tmp_path: Path) -> None:
    gc = fake_gc(repo, tmp_path, "--prune=now")
    try:
        recorded = record_in_thread(repo)
        assert not recorded.wait(timeout=1.0)  # outlasting the gc (gc_guard)
    finally:
        gc.communicate(b"end\n")
    assert recorded.wait(timeout=60)
