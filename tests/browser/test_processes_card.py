"""The workers/processes card and the settings banners in Debian chromium.

A real ``controlplane exec`` beside the served app: its row appears live (run:started from
the ledger feed) with running 1 and leaves when it ends; the settings banners are visible,
dismissible for the session, and axe finds nothing serious on the dashboard.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM_TESTS
from tests.browser.test_accessibility import serious_violations
from tests.conftest import git
from tests.processes import read_line

pytestmark = CHROMIUM_TESTS
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
WAIT = 30


@pytest.fixture
def spawn(project: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """``controlplane exec`` processes in the project; stopped if still running at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(subtype: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "controlplane", "exec", subtype, "--", "sh", "-c",
             "echo $$; exec sleep 120"],
            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(process)
        process.tool_pid = int(read_line(process, WAIT))  # type: ignore[attr-defined]
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # exec passes it on to its command
        process.communicate(timeout=WAIT)


def test_an_exec_row_appears_live_and_leaves_when_it_ends(
        serve: Callable[..., Any], open_context: Callable[..., Any],
        spawn: Callable[..., subprocess.Popen[str]]) -> None:
    server = serve(FEED=True)
    page = open_context(server).new_page()
    page.goto("/")
    expect(page.locator("[data-conn]")).to_have_attribute("data-state", "connected")
    card = page.locator("[data-processes]")
    expect(card.locator('tr[data-state="alive"] [data-cell="kind"]')).to_have_text(
        ["worker (this)"])

    process = spawn("test:card")

    row = card.locator(f'tr[data-process="{process.pid}"]')
    expect(row.locator('[data-cell="kind"]')).to_have_text("exec")
    expect(row.locator('[data-cell="running"]')).to_have_text("1")
    expect(row.locator('[data-cell="state"]')).to_have_text("alive")
    expect(row.locator('[data-cell="heartbeat"]')).to_have_text("none (pid checked)")
    process.send_signal(signal.SIGTERM)
    process.wait(WAIT)
    expect(row).to_have_count(0)


def test_a_killed_exec_shows_gone_with_no_run_to_announce_it(
        serve: Callable[..., Any], open_context: Callable[..., Any],
        spawn: Callable[..., subprocess.Popen[str]]) -> None:
    """SIGKILL ends no run: the card reads itself again at every beat, so the row does not
    stay "alive" until some other run starts or ends."""
    server = serve(FEED=True)
    page = open_context(server).new_page()
    page.goto("/")
    expect(page.locator("[data-conn]")).to_have_attribute("data-state", "connected")
    process = spawn("test:killed")
    row = page.locator(f'[data-processes] tr[data-process="{process.pid}"]')
    expect(row.locator('[data-cell="state"]')).to_have_text("alive")
    process.kill()
    process.wait(WAIT)
    os.killpg(process.tool_pid, signal.SIGKILL)  # type: ignore[attr-defined]
    expect(row.locator('[data-cell="state"]')).to_have_text("gone")


def test_settings_banners_are_visible_dismissible_and_axe_clean(
        serve: Callable[..., Any], open_context: Callable[..., Any], project: Path) -> None:
    (project / ".controlplane.yaml").write_text("executor_limit: 9\n")
    git(project, "remote", "add", "upstream", "https://example.com/shop.git")
    server = serve()
    page = open_context(server).new_page()
    page.goto("/")
    expect(page.locator("[data-conn]")).to_have_attribute("data-state", "connected")
    refused = page.locator('[data-diagnostic="setting_refused"]')
    remote = page.locator('[data-diagnostic="no_remote"]')
    expect(refused).to_contain_text("executor_limit: refused from .controlplane.yaml")
    expect(remote).to_contain_text("git remote add origin <url>")
    assert serious_violations(page) == []

    refused.get_by_role("button", name="Dismiss").click()

    expect(refused).to_be_hidden()
    expect(remote).to_be_visible()
    page.reload()
    expect(page.locator('[data-diagnostic="no_remote"]')).to_be_visible()
    expect(page.locator('[data-diagnostic="setting_refused"]')).to_be_hidden()
