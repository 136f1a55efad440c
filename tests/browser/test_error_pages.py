"""A person who opens a URL in Chromium without a login, or a page that does not exist, reads a
page saying what to do, not the JSON an API client gets."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM_TESTS, TIMEOUT_MS
from tests.conftest import TOKEN

pytestmark = CHROMIUM_TESTS
expect = pytest.importorskip("playwright.sync_api").expect


def test_chromium_without_a_login_and_on_a_missing_page_reads_html(server: Any,
                                                                  browser: Any) -> None:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        answer = page.goto(f"{server.url}/")  # a bookmark opened in a new browser
        assert answer is not None and answer.status == 401
        assert answer.header_value("content-type").startswith("text/html")
        expect(page.locator("h1")).to_have_text("Not logged in")
        expect(page.locator("body")).to_contain_text("login URL")

        page.goto(f"{server.url}/login?token={TOKEN}")
        answer = page.goto(f"{server.url}/runs/20260101T000000000Z-00000000")
        assert answer is not None and answer.status == 404
        assert answer.header_value("content-type").startswith("text/html")
        expect(page.locator("h1")).to_contain_text("Not found")
    finally:
        context.close()
