"""Cancel reaches runs of other processes (``controlplane exec``, scripts) through the journal.

Real processes and real HTTP: the server cancels a run it did not start; the run's recorded
process groups get SIGTERM (then SIGKILL after the grace period) and the owner records the
run ``cancelled``; a run with no group gets a cooperative request its code can check.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.core.ledger import Ledger
from controlplane.core.ledger.journal import CANCEL_GRACE, Journal
from tests.conftest import TOKEN
from tests.processes import alive, read_line

WAIT = 30  # seconds: a bound for a hang, never a synchronisation


def post(url: str, path: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url + path, data=b"{}", method="POST", headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def spawn(repo: Path) -> Iterator[Any]:
    """Start processes in *repo*; any still running at the end is killed with its group."""
    started: list[subprocess.Popen[str]] = []

    def start(*argv: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(list(argv), cwd=repo, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=WAIT)


def in_flight_id(repo: Path) -> str:
    """The one run in flight in another process of *repo*."""
    runs = Ledger.open(repo).active()
    assert len(runs) == 1, runs
    return runs[0]["run_id"]


def final(repo: Path, run_id: str) -> dict[str, Any]:
    run = Ledger.open(repo).get(run_id)
    assert run is not None
    return run


SCRIPT_WITH_OWN_GROUP = textwrap.dedent('''
    import os, subprocess, sys
    from controlplane.core.run_tracker import tracked_run

    with tracked_run("test", "test:own-group") as run:
        child = subprocess.Popen(["sh", "-c", sys.argv[1]], start_new_session=True,
                                 stdout=subprocess.PIPE, text=True)
        run.attach_process(child.pid, child.pid)
        print(child.stdout.readline().strip(), flush=True)
        code = child.wait()  # never looks at run.cancel_requested
        run.detach_process(child.pid)
        if code != 0:
            run.fail("exit_status", f"the child ended with {code}")
''')

POLITE_SCRIPT = textwrap.dedent('''
    import time
    from controlplane.core.run_tracker import tracked_run

    with tracked_run("test", "test:polite") as run:
        print("ready", flush=True)
        deadline = time.monotonic() + 60
        while not run.cancel_requested.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        if run.cancel_requested.is_set():
            run.status = "cancelled"
''')


def test_cancel_over_http_stops_a_controlplane_exec_run(served: str, repo: Path,
                                                        spawn: Any) -> None:
    process = spawn(sys.executable, "-m", "controlplane", "exec", "test:foreign", "--",
                    "sh", "-c", "echo $$; exec sleep 60")
    command_pid = int(read_line(process, WAIT))
    run_id = in_flight_id(repo)

    status, body = post(served, f"/api/runs/{run_id}/cancel")

    assert (status, body["outcome"]) == (200, "cancelling"), body
    assert process.wait(WAIT) in (128 + signal.SIGINT, 128 + signal.SIGTERM)
    assert not alive(command_pid), "the command outlived the cancel"
    run = final(repo, run_id)
    assert run["status"] == "cancelled", run
    assert run["error"]["code"] == "cancelled"
    assert not list((repo / ".git" / "scp" / "journal").glob("*.cancel"))
    again, refused = post(served, f"/api/runs/{run_id}/cancel")
    assert again == 409 and "already ended (cancelled)" in refused["message"]


def test_the_groups_get_sigterm_even_when_the_owner_never_looks(served: str, repo: Path,
                                                                spawn: Any) -> None:
    process = spawn(sys.executable, "-c", SCRIPT_WITH_OWN_GROUP, "echo $$; exec sleep 60")
    child_pid = int(read_line(process, WAIT))
    run_id = in_flight_id(repo)

    status, body = post(served, f"/api/runs/{run_id}/cancel")

    assert (status, body["outcome"]) == (200, "cancelling")
    assert process.wait(WAIT) == 0
    assert not alive(child_pid)
    run = final(repo, run_id)
    assert run["status"] == "cancelled", run


def test_a_group_that_ignores_sigterm_gets_sigkill_after_the_grace(served: str, repo: Path,
                                                                   spawn: Any) -> None:
    process = spawn(sys.executable, "-c", SCRIPT_WITH_OWN_GROUP,
                    "trap '' TERM; echo $$; while :; do sleep 0.1; done")
    child_pid = int(read_line(process, WAIT))
    run_id = in_flight_id(repo)
    asked = time.monotonic()

    assert post(served, f"/api/runs/{run_id}/cancel")[1]["outcome"] == "cancelling"

    assert process.wait(WAIT) == 0
    took = time.monotonic() - asked
    assert CANCEL_GRACE <= took < CANCEL_GRACE + 5, took  # SIGTERM was ignored: SIGKILL
    assert not alive(child_pid)
    assert final(repo, run_id)["status"] == "cancelled"


def test_a_run_without_a_tool_gets_a_cooperative_request(served: str, repo: Path,
                                                         spawn: Any) -> None:
    process = spawn(sys.executable, "-c", POLITE_SCRIPT)
    assert read_line(process, WAIT) == "ready"
    run_id = in_flight_id(repo)

    status, body = post(served, f"/api/runs/{run_id}/cancel")

    assert (status, body["outcome"]) == (200, "requested"), body
    assert process.wait(WAIT) == 0
    assert final(repo, run_id)["status"] == "cancelled"
    assert not list((repo / ".git" / "scp" / "journal").glob("*.cancel"))


def test_cancel_of_a_run_nobody_has_in_flight_is_404(served: str) -> None:
    status, body = post(served, "/api/runs/not-a-run/cancel")
    assert status == 404 and "no run" in body["message"]


def test_a_request_left_by_a_run_that_ended_is_swept(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.cancel_path("r-gone").write_text("{}")
    entry = journal.start({"run_id": "r-live"})
    journal.cancel_path("r-live").write_text("{}")
    journal.sweep()
    assert not journal.cancel_path("r-gone").exists()
    assert journal.cancel_flag("r-live").is_set()
    journal.finish(entry.run["run_id"])
    assert not journal.cancel_path("r-live").exists()
