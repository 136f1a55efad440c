"""Detached work outlives a script without a "still running" warning, and still ends.

A roll-up (``git repack``) or ``git gc --auto`` is started detached after a record and is
never waited for by an exit. A script run with warnings on (``-X dev``, pytest) used to
print ``ResourceWarning: subprocess N is still running`` when it ended while one worked
(it was the two warnings every full test run printed at its workers' exit).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from controlplane.core.ledger import detached
from tests.conftest import GIT_ENV

SCRIPT = textwrap.dedent("""
    import sys
    from controlplane import tracked_run
    from controlplane.core.ledger import Ledger

    root = sys.argv[1]
    for number in range(400):
        with tracked_run("test", "test:busy", project_root=root):
            pass
        started = Ledger.open(root)._gc
        if started is not None and started.poll() is None:
            print(started.pid)  # exits now, while the roll-up works
            break
""")


def test_a_script_ending_during_a_roll_up_prints_no_resource_warning(repo: Path) -> None:
    done = subprocess.run([sys.executable, "-X", "dev", "-c", SCRIPT, str(repo)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **GIT_ENV})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().isdigit(), "no roll-up was running when the script ended"
    assert "is still running" not in done.stderr, done.stderr[-2000:]


def test_a_handle_answers_while_its_process_runs_and_after() -> None:
    handle = detached.start([sys.executable, "-c", "import time; time.sleep(600)"])
    assert handle.poll() is None
    os.kill(handle.pid, signal.SIGTERM)
    assert handle.wait(timeout=60) == -signal.SIGTERM
    detached.start(["true"]).wait(timeout=60)  # a start lets the ended ones go
    assert handle.poll() == 0  # let go: it had ended
