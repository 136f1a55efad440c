"""The feed around a merge (issue 13, item 11): local runs and a pull in the same poll.

Another process records 20 runs while ``controlplane ledger pull --auto`` merges a
remote's ledger; one poll of the feed sees all of it. Every local run is
announced started and completed exactly once; the pulled runs are announced
once, as one ``ledger:synced``, and not run by run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from controlplane.core.events import EventBus
from controlplane.core.ledger import Ledger
from controlplane.core.ledger.feed import LedgerFeed
from controlplane.core.ledger.sync import LedgerSync
from tests.test_sync import machines, record  # noqa: F401 - the fixture

RECORDER = """
import sys
from controlplane import tracked_run
root, first, second = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for n in range(first + second):
    if n == first:
        print("half", flush=True)
        sys.stdin.readline()
    with tracked_run("test", "test:local", summary=f"local {n}", project_root=root) as run:
        run.output(f"local run {n}")
        print(run.run_id, flush=True)
print("done", flush=True)
"""


def pull_once(repo: Path) -> None:
    """A real ``ledger pull --auto`` (unrecorded), stopped after its first pull brings runs."""
    puller = subprocess.Popen([sys.executable, "-m", "controlplane", "ledger", "pull", "--auto",
                               "1"], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert puller.stdout is not None
        assert puller.stdout.readline().startswith("pulling the ledger")
        assert "pulled 5 new runs" in puller.stdout.readline()  # waits for the pull
        puller.send_signal(signal.SIGINT)
        assert puller.wait(timeout=60) == 0
    finally:
        if puller.poll() is None:
            puller.kill()
        puller.communicate(timeout=60)


@pytest.mark.parametrize("before_pull", [20, 10])
def test_local_runs_and_a_pull_in_one_poll_are_each_announced_once(machines,  # noqa: F811
                                                                   before_pull: int) -> None:
    _, a, b = machines
    record(b, 5, "remote")
    LedgerSync(Ledger.open(b)).push()
    subprocess.run(["controlplane", "exec", "test:first", "--", "true"], cwd=a, check=True,
                   capture_output=True, timeout=120)
    bus = EventBus()
    feed = LedgerFeed(Ledger.open(a), bus)  # a server's feed, between two polls from here on
    start = bus.last_id
    recorder = subprocess.Popen([sys.executable, "-c", RECORDER, str(a), str(before_pull),
                                 str(20 - before_pull)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    assert recorder.stdout is not None and recorder.stdin is not None
    local = []
    for line in recorder.stdout:
        if line == "half\n":
            pull_once(a)  # the merge lands between the local records
            recorder.stdin.write("go\n")
            recorder.stdin.flush()
        elif line == "done\n":
            break
        else:
            local.append(line.strip())
    assert recorder.wait(timeout=60) == 0
    if before_pull == 20:
        pull_once(a)  # the merge lands after all of them
    feed.poll_once()
    feed.poll_once()  # nothing new: nothing announced twice
    envelopes = bus.since(start) or []
    started = Counter(e["run_id"] for e in envelopes if e["type"] == "run:started")
    completed = Counter(e["run_id"] for e in envelopes if e["type"] == "run:completed")
    pulled = {r["run_id"] for r in Ledger.open(b).recent(limit=10) if r["subtype"] == "test:sync"}
    assert len(local) == 20 and len(pulled) == 5
    never = [run_id for run_id in local if completed[run_id] == 0]
    assert not never, f"{len(never)} of 20 local runs never announced completed"
    assert all(started[run_id] == 1 and completed[run_id] == 1 for run_id in local), \
        (started, completed)
    assert not (set(started) | set(completed)) & pulled, "pulled runs announced one by one"
    synced = [e["data"] for e in envelopes if e["type"] == "ledger:synced"]
    assert synced == [{"runs": 5}]
    outputs = {e["run_id"] for e in envelopes if e["type"] == "run:output"}
    assert outputs == set(local)  # each one's output too, before its completion
