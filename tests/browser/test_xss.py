"""Hostile text everywhere user text is shown, in chromium: it stays text, nothing runs.

One string holding an ``<img onerror>``, a ``<script>``, an attribute break and a
``javascript:`` URL goes into every place the dashboard shows text a user or a
tool controls: a run's summary, its parameters, its live and reloaded output,
its error, an action's form defaults and description, a chat message, the
``@run:`` search results, and the URL of a 404 page. On every page the text is
shown literally, ``window.__xss`` stays undefined, no element or link the
payload describes exists, no dialog opens and no Content-Security-Policy
violation is reported (our own code needs no inline script, so any violation
would be injected code that the CSP caught after escaping failed).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
from pydantic import BaseModel, Field

from controlplane import tracked_run
from controlplane.core.actions import REGISTRY, Action, ActionContext, register
from tests.browser.conftest import CHROMIUM_TESTS, TIMEOUT_MS
from tests.browser.test_dashboard import action_card, open_page, start_from_form
from tests.conftest import TOKEN

pytestmark = CHROMIUM_TESTS
expect = pytest.importorskip("playwright.sync_api").expect

IMG = '<img src=x onerror="window.__xss=1">'
SCRIPT = "<script>window.__xss=2</script>"
BREAK = '"><svg onload=window.__xss=3>'
JS_URL = "javascript:window.__xss=4"
TEXT = f"{IMG} {SCRIPT} {BREAK} {JS_URL}"
HOSTILE = {"IMG": IMG, "SCRIPT": SCRIPT, "BREAK": BREAK, "JS_URL": JS_URL}
WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(
  `${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""
INJECTED = ("img[src='x'], main script:not([src]), [data-output] script, svg[onload], "
            "[onerror], [onload], a[href^='javascript:' i], iframe, object, embed")

gate = threading.Event()


class XssParams(BaseModel):
    note: str = Field(TEXT, max_length=500, description=f"free text, e.g. {TEXT}")
    fail: bool = Field(False, description="end with an error whose message is the text")


def echo(ctx: ActionContext, params: XssParams) -> dict[str, Any]:
    """Print the note (and each payload on its own line), wait for the gate, echo it back."""
    ctx.run.output(params.note)
    for name, payload in HOSTILE.items():
        ctx.run.output(f"{name}: {payload}")
    ctx.run.output(f"\x1b[31mred {IMG}\x1b[0m after colour")
    if not gate.wait(TIMEOUT_MS / 1000 * 3):
        raise TimeoutError("the test never opened the gate")
    if params.fail:
        raise RuntimeError(params.note)
    return {"ok": True, "echo": params.note, "link": JS_URL}


@pytest.fixture
def xss_action() -> Iterator[Action]:
    """A test-only action at /demo/xss whose title, defaults and output carry the payload."""
    action = Action(path="/demo/xss", subtype="test:xss", title=f"Echo {IMG}", params=XssParams,
                    service=echo, description=f"Test-only: shows {TEXT}")
    register(action)
    gate.clear()
    yield action
    gate.set()
    REGISTRY.pop(action.path, None)


def assert_nothing_ran(page: Any, where: str) -> None:
    """The page holds the payload only as text: no script ran, no element, no CSP report."""
    assert page.evaluate("typeof window.__xss") == "undefined", where
    assert page.locator(INJECTED).count() == 0, (where, page.locator(INJECTED).count())
    assert page.evaluate("window.__csp") == [], (where, page.evaluate("window.__csp"))


def test_hostile_text_is_shown_as_text_everywhere(xss_action: Action, serve: Any,
                                                  open_context: Any) -> None:
    server = serve()
    context = open_context(server)
    context.add_init_script(WATCH)
    dialogs: list[str] = []
    context.on("page", lambda page: page.on(
        "dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss())))
    checked: list[str] = []

    def check(page: Any, where: str) -> None:
        assert_nothing_ran(page, where)
        checked.append(where)

    # The action's form: its title, description and default value are the payload.
    form = open_page(context, "/integrations/demo")
    card = action_card(form, "/demo/xss")
    expect(card).to_contain_text(f"Echo {IMG}")
    expect(card).to_contain_text(f"free text, e.g. {TEXT}")
    expect(card.locator("input[name='note']")).to_have_value(TEXT)
    check(form, "action form defaults")

    # Run it from the form: live output in the card and on the run page.
    run_id = start_from_form(form, "/demo/xss")
    expect(card.locator(".runpanel .output")).to_contain_text(f"SCRIPT: {SCRIPT}")
    check(form, "live output in the action card")
    live = open_page(context, f"/runs/{run_id}")
    output = live.locator("[data-output]")
    for name, payload in HOSTILE.items():
        expect(output).to_contain_text(f"{name}: {payload}")
    expect(live.locator("[data-output] .ansi-fg-red")).to_have_text(f"red {IMG}")
    expect(live.locator("[data-run-params]")).to_contain_text(TEXT)
    expect(live.locator("[data-run-summary]")).to_contain_text(f"Echo {IMG}")
    check(live, "run page, live output, params and summary")
    gate.set()
    expect(live.locator("[data-run-status]")).to_have_text("ok")
    expect(live.locator("[data-run-result]")).to_contain_text(JS_URL)
    check(live, "run page, result")

    # The same run, reloaded from the ledger.
    live.reload()
    expect(live.locator("[data-run-status]")).to_have_text("ok")
    expect(live.locator("[data-output]")).to_contain_text(f"BREAK: {BREAK}")
    expect(live.locator("[data-run-params]")).to_contain_text(TEXT)
    check(live, "run page reloaded")

    # A failed run: its error message is the payload.
    gate.clear()
    bearer = {"Authorization": f"Bearer {TOKEN}", "Prefer": "respond-async"}
    started = requests.post(f"{server.url}/demo/xss", json={"fail": True}, headers=bearer,
                            timeout=30)
    assert started.status_code == 202, started.text
    failed_id = started.json()["run_id"]
    failed = open_page(context, f"/runs/{failed_id}")
    expect(failed.locator("[data-output]")).to_contain_text(f"IMG: {IMG}")
    gate.set()
    expect(failed.locator("[data-run-status]")).to_have_text("failed")
    expect(failed.locator("[data-run-error]")).to_contain_text(SCRIPT)
    check(failed, "failed run's error")
    failed.close()

    # A run recorded elsewhere with the payload as its summary; the runs table shows it.
    with tracked_run("test", "test:xss_summary", project_root=server.repo, summary=TEXT) as run:
        run.output(TEXT)
    runs = open_page(context, "/")
    expect(runs.locator(f'tr[data-run-id="{run.run_id}"] .runs__summary')).to_have_text(TEXT)
    check(runs, "runs table summaries")

    # Chat: the message, a mention whose link shows the hostile summary, the search results.
    runs.get_by_role("button", name="Chat").click()
    box = runs.get_by_role("combobox", name="Message")
    box.fill(f"{TEXT} @run:{run.run_id} (see)")
    runs.get_by_role("button", name="Send").click()
    message = runs.locator(".chatmsg").filter(has_text=SCRIPT).last
    expect(message).to_contain_text(IMG)
    expect(message.get_by_role("link")).to_have_attribute("href", f"/runs/{run.run_id}")
    expect(message.get_by_role("link")).to_contain_text(TEXT)
    check(runs, "chat message and mention")
    box.fill("@run:xss_summary")
    options = runs.get_by_role("listbox", name="Runs to mention").get_by_role("option")
    expect(options.first).to_contain_text(TEXT)
    check(runs, "@run: search results")
    other = open_page(context, f"/runs/{run.run_id}")
    expect(other.locator("[data-run-summary]")).to_have_text(TEXT)
    expect(other.locator("[data-run-mentions]")).to_contain_text(SCRIPT)
    check(other, "run page summary and mentions")

    # Pages whose address carries the payload answer 404 with it as text.
    for path in (f"/runs/{quote(TEXT, safe='')}", f"/integrations/{quote(IMG, safe='')}"):
        page = context.new_page()
        answer = page.goto(path)
        assert answer is not None and answer.status == 404, path
        check(page, f"404 page {path[:20]}")
        page.close()
    for page in context.pages:  # a browser opens at most 6 event streams per host
        page.close()
    for path in ("/metrics", "/integrations"):
        page = open_page(context, path)
        check(page, path)
        page.close()

    assert dialogs == []
    assert len(checked) >= 12, checked
    print(f"\nXSS: {len(checked)} places checked: {checked}")
