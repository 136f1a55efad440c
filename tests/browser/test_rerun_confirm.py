"""The run page's Rerun of a destructive action asks the action form's confirmation first."""

from __future__ import annotations

import re
from typing import Any

import pytest

from controlplane.core.ledger import Ledger
from tests.browser.conftest import CHROMIUM_TESTS, TOKEN

pytestmark = CHROMIUM_TESTS
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


def test_rerun_of_a_destructive_action_asks_first(demo_action, serve, open_context) -> None:
    server = serve()
    client = server.app.test_client()
    first = client.post("/demo/wipe", json={"target": "cache", "confirm": True},
                        headers={"Authorization": f"Bearer {TOKEN}"}).json
    assert first["status"] == "ok", first
    page = open_context(server).new_page()
    page.goto(f"/runs/{first['run_id']}")
    rerun = page.get_by_role("button", name="Rerun")
    dialog = page.locator("dialog[data-confirm]")
    sent: list[Any] = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.method == "POST"
            and r.url.endswith("/rerun") else None)

    rerun.click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("/demo/wipe")
    expect(dialog).to_contain_text("cache")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert len(Ledger.open(server.repo).recent(limit=10)) == 1  # refused: nothing ran

    rerun.click()
    dialog.get_by_role("button", name="Yes, run it").click()
    expect(page).not_to_have_url(re.compile(re.escape(first["run_id"])))
    expect(page.locator("[data-run-status]")).to_have_text("ok")
    runs = Ledger.open(server.repo).recent(limit=10)
    assert len(runs) == 2 and runs[0]["rerun_of"] == first["run_id"]
    assert sent == [{}, {}, {"confirm": True}]
