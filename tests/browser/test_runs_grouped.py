"""The runs list grouped by pipeline in chromium: the toggle, a pipeline's link to its runs,
rows that follow ended runs, a phone without horizontal scroll, axe, the keyboard."""

from __future__ import annotations

import re
from typing import Any

import pytest

from controlplane import tracked_run
from tests.browser.conftest import CHROMIUM_TESTS
from tests.browser.test_accessibility import loaded, serious_violations

pytestmark = CHROMIUM_TESTS
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

NIGHTLY = "test:nightly-pipeline-with-a-rather-long-name"


def finished(server: Any, subtype: str) -> str:
    with server.app.extensions["controlplane"].activated(), \
            tracked_run("test", subtype, project_root=server.repo, summary="a suite") as run:
        run.result = {"passed": 1}
    return run.run_id


def grouped_row(page: Any, subtype: str) -> Any:
    return page.locator(f'[data-runs-grouped-body] tr[data-pipeline="{subtype}"]')


def test_toggle_then_a_pipeline_opens_its_runs_and_rows_follow_ended_runs(server: Any,
                                                                          context: Any) -> None:
    first = finished(server, NIGHTLY)
    finished(server, "test:smoke")
    page = context.new_page()
    loaded(page, "/")

    # a filter the list applies by JS, without a reload
    page.locator("[data-filters] select[name=status]").select_option("ok")
    page.get_by_role("link", name="By pipeline").click()
    expect(page).to_have_url(f"{server.url}/?group=pipeline&status=ok")
    expect(page.locator("[data-runs-grouped-body] tr")).to_have_count(2)
    expect(grouped_row(page, NIGHTLY).locator('[data-cell="total"]')).to_have_text("1")
    expect(grouped_row(page, NIGHTLY).locator("[data-last-run]")).to_have_attribute(
        "href", f"/runs/{first}")
    expect(page.locator("[data-conn]")).to_have_attribute("data-state", "connected")

    latest = finished(server, NIGHTLY)  # live: the row follows without a reload
    expect(grouped_row(page, NIGHTLY).locator('[data-cell="total"]')).to_have_text("2")
    expect(grouped_row(page, NIGHTLY).locator("[data-last-run]")).to_have_attribute(
        "href", f"/runs/{latest}")

    grouped_row(page, NIGHTLY).get_by_role("link", name=NIGHTLY, exact=True).click()
    expect(page).to_have_url(f"{server.url}/?status=ok&subtype={NIGHTLY}")
    expect(page.locator("[data-runs-body] tr")).to_have_count(2)
    assert server.page_errors == []


def test_a_phone_keyboard_and_axe(server: Any, open_context: Any) -> None:
    finished(server, NIGHTLY)
    finished(server, "test:smoke")
    context = open_context(server, viewport={"width": 390, "height": 844}, is_mobile=True,
                           has_touch=True)
    page = context.new_page()
    loaded(page, "/")
    toggle = page.get_by_role("link", name="By pipeline")
    toggle.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{server.url}/?group=pipeline")
    expect(page.locator("[data-runs-grouped-body] tr")).to_have_count(2)
    expect(page.get_by_role("link", name="By pipeline")).to_have_attribute("aria-current", "page")

    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the grouped view is {overflow}px wider than a 390px screen"
    assert serious_violations(page) == []
    page.emulate_media(color_scheme="dark")
    assert serious_violations(page) == []


def test_the_rows_times_are_local_as_the_rest_of_the_page(server: Any,
                                                           open_context: Any) -> None:
    """The server writes UTC (for a page without JS); the script shows the reader's time,
    as the runs list does, in the first rows and in the rows it fetches again."""
    finished(server, NIGHTLY)
    page = open_context(server, timezone_id="Asia/Tokyo", locale="en-US").new_page()
    loaded(page, "/?group=pipeline")
    when = grouped_row(page, NIGHTLY).locator("time")
    expect(when).to_have_attribute("title", re.compile(r"\d{4}"))
    expect(when).not_to_contain_text("UTC")
    iso = when.get_attribute("datetime")
    local = page.evaluate("(iso) => new Date(iso).toLocaleTimeString('en-US', "
                          "{hour: '2-digit', minute: '2-digit', second: '2-digit', "
                          "timeZone: 'Asia/Tokyo'})", iso)
    expect(when).to_contain_text(local)

    finished(server, NIGHTLY)  # the fetched rows too
    expect(grouped_row(page, NIGHTLY).locator('[data-cell="total"]')).to_have_text("2")
    expect(grouped_row(page, NIGHTLY).locator("time")).not_to_contain_text("UTC")
