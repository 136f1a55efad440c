"""With JavaScript disabled: log in, start an action from its form, land on its run page."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM_TESTS, TIMEOUT_MS
from tests.conftest import TOKEN

pytestmark = CHROMIUM_TESTS
expect = pytest.importorskip("playwright.sync_api").expect


@pytest.fixture
def nojs_page(browser: Any) -> Any:
    context = browser.new_context(java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()


def test_an_action_runs_from_its_form_without_javascript(server: Any, nojs_page: Any) -> None:
    page = nojs_page
    server.open_gate()
    page.goto(f"{server.url}/login?token={TOKEN}")
    expect(page.locator("h1")).to_have_text("Runs")
    page.goto(f"{server.url}/integrations/testing")
    card = page.locator('section[data-action="/testing/run"]')
    card.get_by_label(re.compile(r"^Keyword\b")).fill("adds or upper")

    with page.expect_navigation():
        card.get_by_role("button", name="Run now").click()

    expect(page).to_have_url(re.compile(rf"^{server.url}/runs/\d{{8}}T\d+Z-[0-9a-f]+$"))
    run_url = page.url
    expect(page.locator("[data-run-status]")).to_have_text(re.compile(r"^(queued|running|ok)$"))
    for _ in range(100):  # no live updates without JS: the reader reloads, as a person would
        if page.locator("[data-run-status]").inner_text() == "ok":
            break
        page.wait_for_timeout(200)
        page.goto(run_url)
    expect(page.locator("[data-run-status]")).to_have_text("ok")
    expect(page.locator("[data-output]")).to_contain_text("2 passed")
    expect(page.locator("[data-run-params]")).to_contain_text("adds or upper")

    page.goto(server.url + "/")
    expect(page.locator(f'tr[data-run-id="{run_url.rsplit("/", 1)[-1]}"] .badge')
           ).to_have_text("ok")


def test_bad_input_comes_back_next_to_the_field(server: Any, nojs_page: Any) -> None:
    page = nojs_page
    page.goto(f"{server.url}/login?token={TOKEN}&next=/integrations/testing")
    card = page.locator('section[data-action="/testing/run"]')
    card.get_by_label(re.compile(r"^Maxfail\b")).fill("0")
    card.get_by_role("button", name="Run now").click()
    field = page.locator('[data-field="maxfail"] .field-error')
    expect(field).to_contain_text("greater than or equal to 1")


def test_operations_and_run_controls_work_without_javascript(server: Any, nojs_page: Any) -> None:
    """Pause from the operations card (it asks on a page), queue a run, cancel it from its
    page, rerun it from there, resume: each a form post, in Chromium with JS off."""
    page = nojs_page
    server.open_gate()
    page.goto(f"{server.url}/login?token={TOKEN}")
    ops = page.locator("[data-operations]")
    expect(ops.locator("[data-ops-mode]")).to_have_text("accepting runs")
    with page.expect_navigation():
        ops.get_by_role("button", name="Pause queue").click()
    expect(page.locator("h1")).to_have_text(re.compile(r"^Pause the queue\?"))
    with page.expect_navigation():
        page.get_by_role("button", name="Pause", exact=True).click()
    expect(ops.locator("[data-ops-mode]")).to_have_text("paused")
    expect(ops.locator("[data-ops-done]")).to_have_text("Queue paused.")
    expect(ops.get_by_role("button", name="Pause queue")).to_be_disabled()

    page.goto(f"{server.url}/integrations/testing")
    with page.expect_navigation():
        page.locator('section[data-action="/testing/run"]').get_by_role(
            "button", name="Run now").click()
    first = page.url
    expect(page.locator("[data-run-status]")).to_have_text("queued")
    expect(page.get_by_role("button", name="Rerun")).to_be_hidden()
    with page.expect_navigation():
        page.get_by_role("button", name="Cancel run").click()
    expect(page).to_have_url(first)
    expect(page.locator("[data-run-status]")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()

    with page.expect_navigation():
        page.get_by_role("button", name="Rerun").click()
    expect(page).not_to_have_url(first)
    expect(page.locator("[data-run-status]")).to_have_text("queued")
    expect(page.locator("[data-run-page]")).to_contain_text(first.rsplit("/", 1)[-1])  # rerun of

    page.goto(server.url + "/")
    with page.expect_navigation():
        page.locator("[data-operations]").get_by_role("button", name="Resume queue").click()
    expect(page.locator("[data-ops-done]")).to_have_text("Queue resumed.")
    expect(page.locator("[data-ops-mode]")).to_have_text("accepting runs")
