"""Start-up: a command imports what it uses, not the whole product (issue 18, item 8).

The import set is read from ``python -X importtime`` of the real command; the time
itself is measured by ``bench/startup_bench.py`` (wall time is too noisy for a test).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import GIT_ENV

HEAVY = {"flask", "werkzeug", "pydantic", "yaml", "psutil", "gunicorn", "redis", "jinja2"}


def imported(repo: Path, *args: str) -> set[str]:
    """Top-level package names a real ``python -m controlplane <args>`` imported."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "controlplane", *args],
                          cwd=repo, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **GIT_ENV})
    assert done.returncode == 0, done.stderr[-2000:]
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rpartition("|")[2].strip().split(".")[0])
    return names


def test_runs_list_imports_no_web_model_settings_or_process_libraries(repo: Path) -> None:
    names = imported(repo, "runs", "list")
    assert "controlplane" in names
    assert not names & (HEAVY | {"blinker"}), sorted(names & (HEAVY | {"blinker"}))


def test_exec_imports_no_web_model_settings_or_process_libraries(repo: Path) -> None:
    names = imported(repo, "exec", "test:startup", "--", "true")
    assert "blinker" in names  # the bus it publishes to
    assert not names & HEAVY, sorted(names & HEAVY)


def test_subcommands_of_other_modules_still_answer(repo: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "controlplane", "--help"], cwd=repo,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "users" in done.stdout and "action" in done.stdout
    done = subprocess.run([sys.executable, "-m", "controlplane", "users", "--help"], cwd=repo,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "add" in done.stdout


def test_the_package_still_exports_its_names() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys, controlplane; "
                           "assert 'controlplane.core.run_tracker' not in sys.modules; "
                           "from controlplane import tracked_run, run_tracked, Run, RunStatus; "
                           "print(controlplane.RunStatus.OK)"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
