"""Everyone can use it: axe-core finds nothing serious, phones fit, keyboards reach everything."""

from __future__ import annotations

import re
from typing import Any

import pytest

from controlplane import tracked_run
from tests.browser.conftest import CHROMIUM_TESTS

pytestmark = CHROMIUM_TESTS
sync_api = pytest.importorskip("playwright.sync_api")
axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")
expect = sync_api.expect


def finished_run(repo: Any, summary: str = "nightly suite") -> str:
    with tracked_run("test", "test:nightly", project_root=repo, summary=summary) as run:
        run.output("\x1b[32mPASSED\x1b[0m tests/test_demo.py::test_adds")
        run.output("warning: something odd", stream="stderr")
        run.progress(1, 2)
        run.result = {"passed": 1}
    return run.run_id


def loaded(page: Any, path: str) -> None:
    """Open *path* and wait until its modules have filled it in."""
    page.goto(path)
    expect(page.locator("[data-conn]")).to_have_attribute("data-state", "connected")
    if path == "/":
        expect(page.locator("[data-runs-loading]")).to_be_hidden()
        expect(page.locator('[data-kpi="total"]')).not_to_have_text("—")
    elif path.startswith("/runs/"):
        expect(page.locator("[data-run-status]")).not_to_have_text("loading")
    elif path.startswith("/integrations/"):
        expect(page.get_by_role("button", name="Run now").first).to_be_visible()
    elif path == "/metrics":
        expect(page.locator(".chart__svg").first).to_be_visible()


def serious_violations(page: Any) -> list[str]:
    results = axe_module.Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(", ".join(n["target"]) for n in v["nodes"])
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violation(server, open_context, scheme):
    run_id = finished_run(server.repo)
    context = open_context(server, color_scheme=scheme)
    page = context.new_page()
    found = {}
    for path in ["/", f"/runs/{run_id}", "/integrations/testing", "/metrics", "/integrations"]:
        loaded(page, path)
        found[path] = serious_violations(page)
    assert found == {path: [] for path in found}


def test_the_pages_a_form_post_answers_pass_axe(server, open_context):
    """The pages a form post answers without JavaScript (a question, a refusal), reached
    here by submitting the form itself (``form.submit()`` skips the page's handlers)."""
    run_id = finished_run(server.repo)
    page = open_context(server).new_page()
    found = {}
    for path, form in [("/", 'form[action="/operations/drain"]'),
                       (f"/runs/{run_id}", f'form[action="/runs/{run_id}/cancel"]')]:
        loaded(page, path)
        with page.expect_navigation():
            page.eval_on_selector(form, "form => form.submit()")
        expect(page.locator("h1")).to_have_text(re.compile(r"^(Drain|Not cancelled)"))
        found[form] = serious_violations(page)
    assert found == {form: [] for form in found}


@pytest.mark.parametrize("path", ["/", "/run", "/integrations/testing", "/metrics"])
def test_a_phone_shows_the_page_without_horizontal_scrolling(server, open_context, path):
    run_id = finished_run(server.repo, summary="a-summary-without-any-space-" * 8)
    context = open_context(server, viewport={"width": 375, "height": 740}, is_mobile=True,
                           has_touch=True)
    page = context.new_page()
    path = f"/runs/{run_id}" if path == "/run" else path
    loaded(page, path)
    if path == "/":
        expect(page.locator(f'tr[data-run-id="{run_id}"]')).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{path} is {overflow}px wider than a 375px screen"


def test_focus_is_visible_and_the_skip_link_works(server, context):
    page = context.new_page()
    loaded(page, "/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    outline = skip.evaluate("node => getComputedStyle(node).outlineStyle")
    assert outline not in ("", "none")
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()


def test_the_help_card_stays_dismissed(server, context):
    page = context.new_page()
    loaded(page, "/")
    help_card = page.locator('[data-help="runs"]')
    expect(help_card).to_be_visible()
    help_card.get_by_role("button", name="Got it, hide this").click()
    expect(help_card).to_be_hidden()
    page.reload()
    loaded(page, "/")
    expect(help_card).to_be_hidden()
    page.get_by_role("button", name="How to use this page").click()
    expect(help_card).to_be_visible()
