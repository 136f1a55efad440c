"""The chat covers nothing and run ids never wrap one letter per line (issue 17).

Measured from the boxes chromium lays out: at 1920x1080 and 390x844, with the chat open
and closed, at the top and at the end of the page, no runs-table row and no Details row
of the run page intersects the chat's button or panel; in a chat message at 390 px, a
mentioned run id spans at most two line boxes (a Range over its text: getClientRects()).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from controlplane import Run, RunStatus, tracked_run
from controlplane.core.ledger import Ledger
from tests.browser.conftest import CHROMIUM_TESTS
from tests.browser.test_operator import connected

pytestmark = CHROMIUM_TESTS
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
WIDE = {"width": 1920, "height": 1080}
PHONE = {"width": 390, "height": 844}

# Every box of the chat, every row box of the content, in viewport pixels.
BOXES = """(rowSelector) => {
  const box = (node) => { const r = node.getBoundingClientRect();
    return { left: r.left, top: r.top, right: r.right, bottom: r.bottom,
             what: node.outerHTML.slice(0, 80) }; };
  const shown = (node) => node.getClientRects().length > 0;
  const all = (selector) => [...document.querySelectorAll(selector)].filter(shown).map(box);
  return { chat: all('.chatpanel__toggle, .chatpanel__body'), rows: all(rowSelector) };
}"""

# How many lines the first occurrence of *text* in *root* takes (a Range over exactly it).
LINES = """([root, text]) => {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const at = node.data.indexOf(text);
    if (at < 0) continue;
    const range = document.createRange();
    range.setStart(node, at);
    range.setEnd(node, at + text.length);
    return new Set([...range.getClientRects()].filter((r) => r.width > 0)
      .map((r) => Math.round(r.top))).size;
  }
  return -1;
}"""


def overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] \
        and a["top"] < b["bottom"] and b["top"] < a["bottom"]


def covered(page: Any, rows: str) -> list[str]:
    """Content rows a chat box lies over, at the top and at the end of the page."""
    found = []
    for where in ("top", "end"):
        page.evaluate("window.scrollTo(0, 0)" if where == "top"
                      else "window.scrollTo(0, document.documentElement.scrollHeight)")
        boxes = page.evaluate(BOXES, rows)
        assert boxes["chat"] and boxes["rows"], boxes
        found += [f"{where}: {row['what']} under {chat['what']}" for chat in boxes["chat"]
                  for row in boxes["rows"] if overlaps(chat, row)]
    return found


def record_runs(repo: Any, count: int) -> list[str]:
    ledger = Ledger.open(repo)
    ids = []
    for number in range(count):
        run = Run.new("test:placement", summary=f"placement run {number}")
        run.finish(RunStatus.OK)
        ledger.record(run, [])
        ids.append(run.run_id)
    return ids


@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["1920x1080", "390x844"])
def test_the_chat_covers_no_run_row_and_no_detail_row(
        server: Any, open_context: Callable[..., Any], viewport: dict[str, int]) -> None:
    ids = record_runs(server.repo, 30)
    page = open_context(server, viewport=viewport).new_page()
    for path, rows in (("/", "[data-runs-body] tr"), (f"/runs/{ids[-1]}", ".facts__row")):
        page.goto(path)
        connected(page)
        if path == "/":
            expect(page.locator("[data-runs-body] tr")).to_have_count(30)
        toggle = page.get_by_role("button", name="Chat")
        assert covered(page, rows) == [], (path, "closed")
        toggle.click()
        expect(page.get_by_role("combobox", name="Message")).to_be_focused()
        assert covered(page, rows) == [], (path, "open")
        toggle.click()
        expect(page.locator(".chatpanel__body")).to_be_hidden()


def test_a_mentioned_run_id_takes_at_most_two_lines_on_a_phone(
        server: Any, open_context: Callable[..., Any]) -> None:
    with tracked_run("build", "build:wheel", project_root=server.repo) as known:
        pass  # no summary: its mention shows the id
    with tracked_run("deploy", "deploy:web", project_root=server.repo,
                     summary="roll the web tier out to every region, one zone at a time " * 3) \
            as wordy:
        pass
    unknown = "20200101T000000000Z-00000000"
    page = open_context(server, viewport=PHONE).new_page()
    page.goto("/")
    connected(page)
    page.get_by_role("button", name="Chat").click()
    box = page.get_by_role("combobox", name="Message")
    box.fill(f"see @run:{known.run_id} and @run:{unknown} side by side")
    box.press("Enter")
    message = page.locator(".chatmsg").filter(has_text="side by side")
    expect(message.get_by_role("link")).to_be_visible()
    for text in (known.run_id[-8:], unknown):
        lines = page.evaluate(LINES, [message.element_handle(), text])
        assert 1 <= lines <= 2, (text, lines)
    expect(message.get_by_role("link")).to_have_attribute("title", known.run_id)  # the full id

    box.fill("@run:deploy")  # a suggestion's id stays whole beside a long summary
    option = page.get_by_role("listbox", name="Runs to mention").get_by_role("option").first
    expect(option).to_contain_text(wordy.run_id)
    assert 1 <= page.evaluate(LINES, [option.element_handle(), wordy.run_id]) <= 2
