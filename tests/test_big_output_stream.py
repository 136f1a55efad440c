"""A 20,000-line run reaches a live SSE client without a resync and without a silent gap
(issue 13 item 9: it used to overflow every client's queue).

The server's feed reads another process's spool every 0.2 s. A tool that prints faster
and ends between two polls gets its last ``feed.TAIL_PUBLISHED`` lines published at its
completion, and one line in place of those before (how many, and where they all are):
the contract is every line in order, or that one line standing for exactly the gap."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from controlplane.core.ledger.feed import TAIL_PUBLISHED
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
        run_ids: set[str] = set()

        def take(envelope: dict) -> bool:
            assert envelope["type"] != "resync", f"resync after {len(seen)} lines"
            if envelope["type"] == "run:output":
                seen.append(envelope["data"]["line"])
                run_ids.add(envelope["run_id"])
            return envelope["type"] == "run:completed"

        stream.wait_for(take)
    finally:
        stream.close()
    (run_id,) = run_ids
    expected = [f"line {i}" for i in range(LINES)]
    markers = [n for n, line in enumerate(seen) if not line.startswith("line ")]
    if markers:  # the tool outran the feed's polls: one line stands for the gap, no more
        assert len(markers) == 1, [seen[n] for n in markers]
        at = markers[0]
        omitted = LINES - (len(seen) - 1)
        assert seen[at] == (f"[{omitted} lines not shown live: GET /api/runs/{run_id}/log "
                            "has them]"), seen[at]
        assert LINES - (at + omitted) <= TAIL_PUBLISHED  # the tail is published whole
        expected = [*expected[:at], seen[at], *expected[at + omitted:]]
    assert seen == expected
