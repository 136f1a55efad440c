"""A str that is not valid UTF-8 (a file name from os.fsdecode) cannot break a run.

``os.fsdecode(b"report-\\xff.txt")`` is ``"report-\\udcff.txt"``: a lone surrogate
that every UTF-8 writer refuses. Output, summary, result, error and params
holding one are recorded with the byte shown as ``\\xff``, and the run keeps its
real status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane import tracked_run
from controlplane.core.events import default_bus
from controlplane.core.ledger import Ledger

NAME = os.fsdecode(b"report-\xff.txt")  # what os.listdir gives for a non-UTF-8 file name
SHOWN = "report-\\xff.txt"


def events_of(repo: Path, run_id: str) -> list[dict]:
    return list(Ledger.open(repo).events(run_id))


def test_output_summary_and_result_with_a_lone_surrogate_are_recorded_ok(repo: Path) -> None:
    with default_bus().subscribe(default_bus().last_id) as sub:
        with tracked_run("test", "test:files", summary=f"scan {NAME}", project_root=repo,
                         params={"file": NAME}) as run:
            run.output(f"found {NAME}")
            run.summary = f"found {NAME}"
            run.result = {"files": [NAME], NAME: 1}
        published = []
        while (envelope := sub.get(timeout=0.5)) is not None:
            published.append(envelope)
    stored = Ledger.open(repo).get(run.run_id)
    assert stored["status"] == "ok"
    assert stored["summary"] == f"found {SHOWN}"
    assert stored["result"] == {"files": [SHOWN], SHOWN: 1}
    assert stored["params"] == {"file": SHOWN}
    lines = [e["data"]["line"] for e in events_of(repo, run.run_id) if e["type"] == "run:output"]
    assert lines == [f"found {SHOWN}"]
    assert {e["type"] for e in published} >= {"run:started", "run:output", "run:completed"}
    json.dumps(published, ensure_ascii=False).encode()  # what a client is sent is UTF-8


def test_an_exception_naming_such_a_file_is_recorded_failed(repo: Path) -> None:
    with pytest.raises(RuntimeError), tracked_run("test", "test:files", project_root=repo) as run:
        raise RuntimeError(f"cannot read {NAME}")
    stored = Ledger.open(repo).get(run.run_id)
    assert stored["status"] == "failed"
    assert stored["error"] == {"code": "exception", "message": f"RuntimeError: cannot read {SHOWN}"}


def test_a_script_listing_a_non_utf8_file_name_ends_ok(repo: Path) -> None:
    """The user's case end to end: a script prints the names it found, in its own process."""
    with open(os.path.join(os.fsencode(repo), b"report-\xff.txt"), "wb") as fh:
        fh.write(b"x")  # a real non-UTF-8 name on disk
    script = (
        "import os, sys\n"
        "from controlplane import tracked_run\n"
        "with tracked_run('scan', 'scan:files', project_root=sys.argv[1]) as run:\n"
        "    for name in sorted(os.listdir(sys.argv[1])):\n"
        "        run.output(name)\n"
        "    run.result = {'files': sorted(os.listdir(sys.argv[1]))}\n"
        "print(run.run_id)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(repo)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[-1]
    Ledger.forget_instances()
    stored = Ledger.open(repo).get(run_id)
    assert stored["status"] == "ok" and SHOWN in stored["result"]["files"]
    lines = [e["data"]["line"] for e in events_of(repo, run_id) if e["type"] == "run:output"]
    assert SHOWN in lines
