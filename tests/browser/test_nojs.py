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
