"""Several processes record at once; a killed script's run becomes interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from controlplane.core.ledger import Ledger
from tests.conftest import git

WRITER = """
import sys
from controlplane import tracked_run
for n in range(int(sys.argv[2])):
    with tracked_run("test", "test:parallel", summary=f"{sys.argv[3]} {n}",
                     project_root=sys.argv[1]) as run:
        run.output(f"process {sys.argv[3]} run {n}")
"""


def test_four_processes_record_at_once(repo: Path) -> None:
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(repo), "100", f"p{i}"])
               for i in range(4)]
    assert [w.wait(timeout=240) for w in writers] == [0, 0, 0, 0]
    ledger = Ledger.open(repo)
    ledger.catch_up()
    assert ledger.index.count() == 400
    assert len(git(repo, "for-each-ref", "refs/scp/run").splitlines()) == 400
    assert git(repo, "rev-list", "--count", "scp-ledger").strip() == "400"
    assert len(list((repo / ".scp-ledger/ledger/runs").rglob("run.json"))) == 400
    ledger.wait_background()  # a writer's last roll-up, detached: it deletes packs
    git(repo, "fsck", "--no-dangling")
    assert git(repo, "status", "--porcelain") == ""


SLEEPER = """
import subprocess, sys
from controlplane import tracked_run
from controlplane.core.tools import run_tool
with tracked_run("test", "test:doomed", project_root=sys.argv[1]) as run:
    run.output("started")
    print(run.run_id, flush=True)
    run_tool([sys.executable, "-c", "import time; print('child up', flush=True); time.sleep(300)"],
             run=run, timeout=600)
"""


def test_killed_script_run_becomes_interrupted(repo: Path) -> None:
    script = subprocess.Popen([sys.executable, "-c", SLEEPER, str(repo)], stdout=subprocess.PIPE,
                              text=True)
    run_id = script.stdout.readline().strip()
    ledger = Ledger.open(repo, recover=False)
    events_path = ledger.journal.events_path(run_id)
    # wait until the tool's child is up and its process group is journaled
    _wait_for(lambda: b"child up" in events_path.read_bytes()
              and json.loads(ledger.journal.meta_path(run_id).read_bytes())["groups"])
    groups = json.loads(ledger.journal.meta_path(run_id).read_bytes())["groups"]
    listed = subprocess.run([sys.executable, "-m", "controlplane", "runs", "list", "--json",
                             "--repo", str(repo)], capture_output=True, text=True, check=True)
    assert json.loads(listed.stdout)[0]["status"] == "running"
    os.kill(script.pid, signal.SIGKILL)
    script.wait()
    Ledger.forget_instances()
    reopened = Ledger.open(repo)
    stored = reopened.get(run_id)
    assert stored["status"] == "interrupted" and stored["error"]["code"] == "interrupted"
    assert [g["state"] for g in stored["result"]["process_groups"]] == ["killed"]
    for pgid in groups:
        assert _group_gone(int(pgid))
    assert "started" in [e["data"].get("line") for e in reopened.events(run_id)
                         if e["type"] == "run:output"]
    assert not ledger.journal.meta_path(run_id).exists()
    git(repo, "fsck", "--no-dangling")


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    # a killed child may linger as a zombie of init for an instant: reaped means gone
    return all(_is_zombie(pid) for pid in _pids_in_group(pgid))


def _pids_in_group(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2:].split()
            if int(fields[2]) == pgid:
                found.append(int(entry.name))
    return found


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2:].split()[0] == b"Z"


def _wait_for(condition, timeout: float = 30.0) -> None:
    """Poll a file-system condition another process makes true (no event to wait on)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    raise AssertionError("condition not met in time")
