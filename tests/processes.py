"""Helpers for tests that drive real processes (``controlplane exec``, scripts, tools)."""

from __future__ import annotations

import select
import subprocess
from pathlib import Path


def read_line(process: subprocess.Popen[str], wait: float) -> str:
    """The next line *process* prints (it prints when it is ready); *wait* bounds a hang."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], wait)
    assert ready, "the process printed nothing"
    return process.stdout.readline().strip()


def alive(pid: int) -> bool:
    """True if *pid* runs (a zombie waiting for its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
