"""A user drives the dashboard in a real browser: runs start, stream, end, cancel — live."""

from __future__ import annotations

import re
from typing import Any

import pytest

from controlplane import tracked_run
from tests.browser.conftest import CHROMIUM_TESTS

pytestmark = CHROMIUM_TESTS
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

XSS = "<img src=x onerror=alert(1)>"


def connected(page: Any) -> None:
    """Wait until the page's live connection is open."""
    expect(page.locator("[data-conn]")).to_have_attribute("data-state", "connected")


def open_page(context: Any, path: str) -> Any:
    page = context.new_page()
    page.goto(path)
    connected(page)
    page.evaluate("window.__stillTheSamePage = true")
    return page


def not_reloaded(page: Any) -> bool:
    return page.evaluate("window.__stillTheSamePage === true")


def action_card(page: Any, path: str) -> Any:
    return page.locator(f'section[data-action="{path}"]')


def start_from_form(page: Any, path: str) -> str:
    """Press "Run now" on an action's card; returns the id of the run it started."""
    card = action_card(page, path)
    card.get_by_role("button", name="Run now").click()
    link = card.locator("[data-run-link]")
    expect(link).to_be_visible()
    return link.get_attribute("data-run-link")


def test_run_now_streams_live_into_every_tab(server, context):
    runs_tab = open_page(context, "/")
    actions = open_page(context, "/integrations/testing")

    run_id = start_from_form(actions, "/testing/run")

    row = runs_tab.locator(f'tr[data-run-id="{run_id}"]')
    expect(row.locator(".badge")).to_have_text("running")
    expect(row.locator(".runs__run a")).to_have_text("test:run")
    run_page = open_page(context, f"/runs/{run_id}")
    expect(run_page.locator("[data-run-status]")).to_have_text("running")
    expect(run_page.locator("[data-output]")).to_contain_text("demo line 2")

    server.open_gate()

    expect(run_page.locator("[data-output]")).to_contain_text("gate opened")
    expect(run_page.locator("[data-run-status]")).to_have_text("ok")
    expect(run_page.locator("[data-run-result]")).to_contain_text("passed")
    expect(row.locator(".badge")).to_have_text("ok")
    expect(action_card(actions, "/testing/run").locator(".runpanel .badge")).to_have_text("ok")
    expect(actions.locator("[data-toasts] .toast")).to_contain_text("test:run ended: ok")
    assert all(not_reloaded(p) for p in (runs_tab, actions, run_page))


def test_a_long_run_is_cancelled_from_its_page(server, context):
    page = open_page(context, "/integrations/testing")
    card = action_card(page, "/testing/run")
    card.get_by_label("Keyword").fill("streams_then_waits")
    run_id = start_from_form(page, "/testing/run")

    # The button says "Running…" (aria-disabled); pressed anyway, the server refuses (409)
    card.get_by_role("button", name="Running…").click(force=True)  # a user's click lands
    refusal = card.locator("[data-refusal]")  # said next to the button (issue 17 item 4)
    expect(refusal).to_contain_text("Already running: started by")
    refusal.get_by_role("link", name="open it").click()
    expect(page).to_have_url(f"{server.url}/runs/{run_id}")
    connected(page)
    expect(page.locator("[data-output]")).to_contain_text("demo line 0")

    page.get_by_role("button", name="Cancel run").click()

    expect(page.locator("[data-run-status]")).to_have_text("cancelled")
    expect(page.locator("[data-run-cancelled]")).to_contain_text("cancelled")
    expect(page.locator("[data-run-error]")).to_be_hidden()  # a calm note, not a red error
    expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()

    server.open_gate()
    page.get_by_role("button", name="Rerun").click()
    expect(page).not_to_have_url(f"{server.url}/runs/{run_id}")
    expect(page.locator("[data-run-facts]")).to_contain_text(f"Rerun of{run_id}")
    expect(page.locator("[data-run-status]")).to_have_text("ok")
    expect(page.locator("[data-run-params]")).to_contain_text("streams_then_waits")


def test_invalid_input_is_shown_next_to_the_field(server, context):
    page = open_page(context, "/integrations/testing")
    card = action_card(page, "/testing/run")
    card.get_by_label("Maxfail").fill("0")
    card.get_by_role("button", name="Run now").click()

    field = card.locator('[data-field="maxfail"]')
    expect(field.locator(".field-error")).to_contain_text("greater than or equal to 1")
    expect(card.get_by_label("Maxfail")).to_have_attribute("aria-invalid", "true")
    expect(card.get_by_label("Maxfail")).to_be_focused()
    expect(card.locator("[data-run-link]")).to_have_count(0)


def test_a_destructive_action_asks_first(demo_action, serve, open_context):
    server = serve()
    page = open_page(open_context(server), "/integrations/demo")
    sent: list[Any] = []
    page.on("request", lambda r: sent.append(r) if r.method == "POST"
            and r.url.endswith("/demo/wipe") else None)
    card = action_card(page, "/demo/wipe")
    dialog = page.locator("dialog[data-confirm]")
    run_now = card.get_by_role("button", name="Run now")

    run_now.click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Wipe the scratch area")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # focus stays inside the dialog
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(run_now).to_be_focused()

    run_now.click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert sent == []

    run_now.click()
    dialog.get_by_role("button", name="Yes, run it").click()
    expect(card.locator(".runpanel .badge")).to_have_text("ok")
    expect(card.locator(".runpanel [data-output]")).to_have_count(0)
    expect(card.locator(".runpanel .output")).to_contain_text("wiping scratch")
    assert [r.post_data_json for r in sent] == [{"target": "scratch", "confirm": True}]


def test_user_text_is_shown_as_text(server, context):
    page = open_page(context, "/")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    with tracked_run("test", "test:xss", project_root=server.repo, summary=XSS) as run:
        run.output(XSS)
        run.output(f"\x1b[31mred {XSS}\x1b[0m plain")

    row = page.locator(f'tr[data-run-id="{run.run_id}"]')
    expect(row.locator(".runs__summary")).to_have_text(XSS)
    expect(row.locator(".badge")).to_have_text("ok")
    page.goto(f"/runs/{run.run_id}")
    expect(page.locator("[data-run-summary]")).to_have_text(XSS)
    expect(page.locator("[data-output] .line").first).to_have_text(XSS)
    expect(page.locator("[data-output] .ansi-fg-red")).to_have_text(f"red {XSS}")
    assert page.locator("main img, [data-output] b").count() == 0
    assert dialogs == []


def test_a_huge_output_keeps_the_page_light(server, context):
    with tracked_run("test", "test:big", project_root=server.repo, summary="big") as run:
        run.output("first line")
        page = open_page(context, f"/runs/{run.run_id}")
        expect(page.locator("[data-output]")).to_contain_text("first line")
        for number in range(100_000):
            run.output(f"line {number}")
        run.output("last line")

    expect(page.locator("[data-run-status]")).to_have_text("ok")
    expect(page.locator("[data-output] .line").last).to_have_text("last line")
    # the page keeps a bounded number of lines (speed itself is for benchmarks, not tests)
    expect(page.locator("[data-output] .line")).to_have_count(2_000)
    # the newest lines, even when the page fell behind and caught up after a resync
    # (a catch-up may put its "N events left out" marker line first: the first output line
    # after it must still be among the newest)
    expect(page.locator("[data-output] .line:not(.line--marker)").first).to_have_text(
        re.compile(r"^line (9[89]\d{3})$"))
    expect(page.locator("[data-output-note]")).to_contain_text("earlier lines hidden")
    expect(page.locator("[data-output-note] a")).to_have_attribute(
        "href", f"/api/runs/{run.run_id}/log")


def test_keyboard_alone_starts_a_run(server, context):
    server.open_gate()
    page = open_page(context, "/integrations/testing")
    run_now = action_card(page, "/testing/run").get_by_role("button", name="Run now")
    expect(run_now).to_be_visible()

    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    for _ in range(60):
        page.keyboard.press("Tab")
        if run_now.evaluate("node => node === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reached Run now")
    page.keyboard.press("Enter")

    expect(action_card(page, "/testing/run").locator(".runpanel .badge")).to_have_text("ok")


def test_the_output_follows_until_the_reader_scrolls_up(server, context):
    with tracked_run("test", "test:scroll", project_root=server.repo, summary="scroll") as run:
        for number in range(300):
            run.output(f"line {number}")
        page = open_page(context, f"/runs/{run.run_id}")
        output = page.locator("[data-output]")
        jump = page.get_by_role("button", name="Jump to latest")
        expect(output.locator(".line").last).to_have_text("line 299")
        expect(output).to_have_attribute("data-following", "yes")

        output.evaluate("node => { node.scrollTop = 0; }")
        expect(jump).to_be_visible()
        run.output("line 300")
        expect(output.locator(".line").last).to_have_text("line 300")
        assert output.evaluate("node => node.scrollTop") == 0

        jump.click()
        expect(jump).to_be_hidden()
        run.output("line 301")
        expect(output.locator(".line").last).to_have_text("line 301")
        page.wait_for_function("""() => {
            const box = document.querySelector('[data-output]');
            return box.scrollHeight - box.scrollTop - box.clientHeight < 2;
        }""")


@pytest.mark.parametrize("seen_events", [True, False], ids=["replayed", "reloaded"])
def test_the_connection_comes_back_and_catches_up(server, context, seen_events):
    """With an event id the server replays what was missed; without one the page reloads."""
    page = open_page(context, "/")
    indicator = page.locator("[data-conn]")
    if seen_events:
        with tracked_run("test", "test:seen", project_root=server.repo) as seen:
            pass
        expect(page.locator(f'tr[data-run-id="{seen.run_id}"] .badge')).to_have_text("ok")

    context.set_offline(True)
    expect(indicator).to_have_attribute("data-state", "offline")
    with tracked_run("test", "test:missed", project_root=server.repo, summary="missed") as run:
        run.output("while the tab was offline")
    context.set_offline(False)

    expect(indicator).to_have_attribute("data-state", "connected")
    expect(page.locator(f'tr[data-run-id="{run.run_id}"] .badge')).to_have_text("ok")
    assert not_reloaded(page)


def test_auto_refresh_polls_and_is_remembered(server, context):
    page = open_page(context, "/")
    toggle = page.get_by_label("Auto-refresh")
    with page.expect_request(lambda r: "/api/runs/recent" in r.url):
        toggle.check()
    page.reload()
    expect(page.get_by_label("Auto-refresh")).to_be_checked()


def test_the_queue_is_paused_and_resumed_from_the_operations_card(server, context):
    server.open_gate()
    runs_tab = open_page(context, "/")
    ops = runs_tab.locator("[data-operations]")
    ops.get_by_role("button", name="Pause queue").click()
    runs_tab.locator("[data-confirm] [data-confirm-ok]").click()  # pausing asks first
    expect(ops.locator("[data-ops-mode]")).to_have_text("paused")
    expect(ops.get_by_role("button", name="Pause queue")).to_be_disabled()

    actions = open_page(context, "/integrations/testing")
    run_id = start_from_form(actions, "/testing/run")
    row = runs_tab.locator(f'tr[data-run-id="{run_id}"]')
    expect(row.locator(".badge")).to_have_text("queued")
    expect(ops.locator('[data-ops="queued"]')).to_have_text("1")

    ops.get_by_role("button", name="Resume queue").click()
    expect(ops.locator("[data-ops-mode]")).to_have_text("accepting runs")
    expect(row.locator(".badge")).to_have_text("ok")
    expect(ops.locator('[data-ops="queued"]')).to_have_text("0")
    expect(ops.locator('[data-ops="running"]')).to_have_text("0")
