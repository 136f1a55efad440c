"""GitPython's git starts behind the tool gate: it runs only once its group is journaled.

Killed between starting git and journaling its group, a script used to leave git (and its
ssh) running where recovery could not find it (issue 13 item 5, the porcelain leftover).
"""

from __future__ import annotations

import threading
from pathlib import Path

from controlplane.core.integrations._git_porcelain import execute
from tests.conftest import make_repo
from tests.reliability.fault_support import wait_until


class JournalingRun:
    """What a run does when a tool starts: notes the group (here: what it saw then)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker
        self.cancel_requested = threading.Event()
        self.seen: list[tuple[bool, list[str]]] = []

    def attach_process(self, pid: int, pgid: int) -> None:
        ran_before = self.marker.exists()
        # right after exec the kernel may show an empty cmdline for a moment
        argv = wait_until(lambda: Path(f"/proc/{pid}/cmdline").read_bytes(), 2.0, "cmdline")
        self.seen.append((ran_before, [a.decode() for a in argv.split(b"\0") if a]))

    def detach_process(self, pid: int) -> None:
        pass


def test_git_waits_until_its_group_is_journaled(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "project")
    bin_dir, marker = tmp_path / "bin", tmp_path / "git-ran"
    bin_dir.mkdir()
    fake = bin_dir / "git"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\necho fake git \"$@\"\n")
    fake.chmod(0o755)
    run = JournalingRun(marker)
    result = execute(repo, ["status"], env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, run=run)
    assert result.ok and result.stdout.strip() == "fake git status", result
    [(ran_before, argv)] = run.seen
    assert not ran_before and argv[:2] == ["sh", "-c"] and "read -r go" in argv[2], argv
    assert marker.exists()  # and it ran once the gate opened


def test_a_missing_git_is_still_tool_missing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "project")
    run = JournalingRun(tmp_path / "never")
    result = execute(repo, ["status"], env={"PATH": str(tmp_path / "empty")}, run=run)
    assert result.error is not None and result.error["code"] == "tool_missing", result
    assert run.seen == []
