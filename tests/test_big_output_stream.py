"""A 20,000-line run reaches a live SSE client whole: every line, in order, no resync
(issue 13 item 9: it used to overflow every client's queue)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.test_serve import Events, start  # noqa: F401 (fixture)

LINES = 20_000


def test_a_20000_line_run_reaches_a_live_client_whole(start, repo: Path) -> None:  # noqa: F811
    server = start("--threads", "8")
    stream = Events(server)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "controlplane", "exec", "test:big", "--", sys.executable,
             "-c", f"for i in range({LINES}): print('line', i)"],
            cwd=repo, capture_output=True, text=True, timeout=300, env=os.environ.copy())
        assert done.returncode == 0, done.stderr
        seen: list[str] = []

        def take(envelope: dict) -> bool:
            assert envelope["type"] != "resync", f"resync after {len(seen)} lines"
            if envelope["type"] == "run:output":
                seen.append(envelope["data"]["line"])
            return envelope["type"] == "run:completed"

        stream.wait_for(take)
    finally:
        stream.close()
    assert seen == [f"line {i}" for i in range(LINES)]
