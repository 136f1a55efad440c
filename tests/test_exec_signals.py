"""`controlplane exec` and signals, with real processes: 128+n, and no orphan left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane.core.ledger import Ledger
from tests.processes import alive, read_line

WAIT = 30  # seconds: a bound for a hang, never a synchronisation


def exec_popen(repo: Path, *command: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "controlplane", "exec", "test:signals",
                             "--", *command], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_command_killed_by_a_signal_exits_128_plus_n(repo: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "controlplane", "exec", "test:signals", "--",
                           "sh", "-c", "kill -TERM $$"], cwd=repo, capture_output=True,
                          text=True, timeout=WAIT)
    assert done.returncode == 143, done.stderr
    run = Ledger.open(repo).recent()[0]
    assert run["status"] == "failed" and run["result"]["exit_code"] == -15
    assert "SIGTERM" in run["error"]["message"]


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("script", ["echo $$; exec sleep 60",
                                    "trap '' HUP TERM; echo $$; exec sleep 60"],
                         ids=["plain", "ignores-the-signal"])
def test_a_signal_to_exec_stops_its_command_and_records_cancelled(
        repo: Path, sent: signal.Signals, script: str) -> None:
    process = exec_popen(repo, "sh", "-c", script)
    command_pid = 0
    try:
        command_pid = int(read_line(process, WAIT))  # `sleep` runs under this pid (exec)
        assert alive(command_pid)
        process.send_signal(sent)
        assert process.wait(WAIT) == 128 + sent
        assert not alive(command_pid), "the command outlived exec"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if command_pid and alive(command_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(command_pid, signal.SIGKILL)
    _, err = process.communicate()
    run = Ledger.open(repo).recent()[0]
    assert run["status"] == "cancelled", err
    assert run["error"]["message"] == (f"controlplane exec received {sent.name}: "
                                       "the command was stopped")
    assert f"run {run['run_id']} cancelled" in err
