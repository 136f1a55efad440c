"""Cancel and rerun from the runs list (issue 17), in Debian chromium against a real server.

The row's own buttons: Cancel stops a real ``controlplane exec`` run of another process
(reached with the keyboard), Rerun starts a new run naming the old one, a destructive
action's rerun asks in the page's dialog first (its Cancel starts nothing), a refusal is
shown next to the row's button; the rows follow live events, the page never reloads.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controlplane.core.ledger import Ledger
from tests.browser.conftest import CHROMIUM_TESTS, TOKEN
from tests.browser.test_operator import WAIT, connected, exec_sleeper, spawn
from tests.reliability.fault_support import wait_until

pytestmark = CHROMIUM_TESTS
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
__all__ = ["spawn"]  # the fixture, used by name
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def runs_page(context: Any) -> Any:
    page = context.new_page()
    page.goto("/")
    connected(page)
    # the table's first load replaces the server-rendered rows: a click before it lands on a
    # row about to go (its dialog or refusal went with it, on a slow first start)
    expect(page.locator("[data-runs-loading]")).to_be_hidden()
    page.evaluate("window.__stillTheSamePage = true")
    return page


def row(page: Any, run_id: str) -> Any:
    return page.locator(f'tr[data-run-id="{run_id}"]')


def test_cancel_from_the_row_stops_a_controlplane_exec_run(
        serve: Callable[..., Any], open_context: Callable[..., Any],
        spawn: Callable[..., subprocess.Popen[str]], project: Path) -> None:
    server = serve(FEED=True)
    process = exec_sleeper(spawn)
    run = Ledger.open(project).active()[0]
    page = runs_page(open_context(server))
    line = row(page, run["run_id"])
    cancel = line.get_by_role("button", name=f"Cancel run {run['summary']}")
    expect(line.get_by_role("button", name="Rerun")).to_be_hidden()

    cancel.focus()  # keyboard: a real button in the tab order, Enter submits its form
    page.keyboard.press("Enter")

    expect(line.locator('[data-cell="status"]')).to_have_text("cancelled")
    expect(cancel).to_be_hidden()
    assert process.wait(WAIT) in (128 + signal.SIGINT, 128 + signal.SIGTERM)
    assert Ledger.open(project).get(run["run_id"])["status"] == "cancelled"
    assert page.evaluate("window.__stillTheSamePage === true")  # no reload, no form post
    expect(page.locator("[data-banner]")).to_be_hidden()


def test_rerun_from_the_row_starts_a_new_run_naming_the_old(
        serve: Callable[..., Any], open_context: Callable[..., Any], project: Path) -> None:
    server = serve()
    first = server.app.test_client().post("/security/generate/gitignore", json={},
                                          headers=BEARER).json
    assert first["status"] == "ok", first
    page = runs_page(open_context(server))
    line = row(page, first["run_id"])
    expect(line.get_by_role("button", name="Cancel run")).to_be_hidden()

    line.get_by_role("button", name="Rerun").click()

    newest = page.locator("[data-runs-body] tr").first
    expect(newest).not_to_have_attribute("data-run-id", first["run_id"])
    expect(newest.locator('[data-cell="status"]')).to_have_text("ok")
    rerun_id = newest.get_attribute("data-run-id")
    assert Ledger.open(project).get(rerun_id)["rerun_of"] == first["run_id"]
    expect(newest.get_by_role("button", name="Rerun")).to_be_visible()  # it can go again
    assert page.evaluate("window.__stillTheSamePage === true")


def test_rerun_of_a_destructive_action_from_the_row_asks_first(
        demo_action: Any, serve: Callable[..., Any], open_context: Callable[..., Any],
        project: Path) -> None:
    server = serve()
    first = server.app.test_client().post("/demo/wipe", json={"target": "cache", "confirm": True},
                                          headers=BEARER).json
    assert first["status"] == "ok", first
    page = runs_page(open_context(server))
    rerun = row(page, first["run_id"]).get_by_role("button", name="Rerun")
    dialog = page.locator("dialog[data-confirm]")
    sent: list[Any] = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.method == "POST"
            and r.url.endswith("/rerun") else None)

    rerun.click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("/demo/wipe")
    expect(dialog).to_contain_text("cache")
    expect(dialog.locator("[data-drain-field]")).to_be_hidden()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(rerun).to_be_focused()  # back on the row's button
    assert len(Ledger.open(project).recent(limit=10)) == 1  # refused: nothing ran
    expect(page.locator("[data-runs-body] tr")).to_have_count(1)

    rerun.click()
    dialog.get_by_role("button", name="Yes").click()
    expect(page.locator("[data-runs-body] tr")).to_have_count(2)
    runs = Ledger.open(project).recent(limit=10)
    assert runs[0]["rerun_of"] == first["run_id"]
    assert sent == [{}, {}, {"confirm": True}]


def test_a_refused_rerun_is_said_next_to_the_rows_button(
        serve: Callable[..., Any], open_context: Callable[..., Any], project: Path) -> None:
    server = serve()
    first = server.app.test_client().post("/security/generate/gitignore", json={},
                                          headers=BEARER).json
    wait_until(lambda: (Ledger.open(project).get(first["run_id"]) or {}).get("status")
               not in (None, "queued", "running"), 30, "the first run ended")
    page = runs_page(open_context(server))  # no live update of its row can follow the click
    line = row(page, first["run_id"])
    server.app.extensions["controlplane"].actions.pop("/security/generate/gitignore")

    line.get_by_role("button", name="Rerun").click()

    refusal = line.get_by_role("alert")
    expect(refusal).to_contain_text("not started by an action of this server")
    expect(refusal).to_be_focused()
    expect(page.locator("[data-banner]")).to_be_hidden()


@pytest.mark.parametrize("viewport", [{"width": 1920, "height": 1080},
                                      {"width": 390, "height": 844}], ids=["wide", "phone"])
def test_the_rows_controls_and_the_open_chat_pass_axe(
        serve: Callable[..., Any], open_context: Callable[..., Any],
        spawn: Callable[..., subprocess.Popen[str]], viewport: dict[str, int]) -> None:
    serious = pytest.importorskip("tests.browser.test_accessibility").serious_violations
    server = serve(FEED=True)
    server.app.test_client().post("/security/generate/gitignore", json={}, headers=BEARER)
    exec_sleeper(spawn)
    page = runs_page(open_context(server, viewport=viewport))
    expect(page.get_by_role("button", name="Cancel run")).to_be_visible()
    expect(page.get_by_role("button", name="Rerun")).to_be_visible()
    assert serious(page) == []
    page.get_by_role("button", name="Chat").click()
    expect(page.get_by_role("combobox", name="Message")).to_be_focused()
    assert serious(page) == []
