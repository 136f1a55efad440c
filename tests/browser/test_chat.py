"""Chat in the browser: @run: autocomplete narrows and inserts; messages show live in two tabs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from controlplane import Run, RunStatus, tracked_run
from controlplane.core.ledger import Ledger
from controlplane.core.runs import new_run_id
from tests.browser.test_dashboard import open_page

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api").expect


def test_mention_a_run_with_autocomplete_seen_in_two_tabs(server: Any, context: Any) -> None:
    with tracked_run("deploy", "deploy:web", summary="deploy the web tier",
                     project_root=server.repo) as wanted:
        pass
    old = Run.new("test:other", run_id=new_run_id(datetime(2019, 5, 1, tzinfo=UTC).timestamp()),
                  summary="an old run")
    old.finish(RunStatus.OK)
    Ledger.open(server.repo).record(old, [])
    writer, reader = open_page(context, "/"), open_page(context, "/")
    for page in (writer, reader):
        page.get_by_role("button", name="Chat").click()
    box = writer.get_by_role("combobox", name="Message")
    box.fill("look at @run:")
    options = writer.get_by_role("listbox", name="Runs to mention").get_by_role("option")
    expect(options).to_have_count(2)
    box.press_sequentially(wanted.run_id[:4])  # by id prefix (ids start with the date)
    expect(options).to_have_count(1)
    expect(options.first).to_contain_text(wanted.run_id)
    box.press("Backspace")
    box.press("Backspace")
    box.press("Backspace")
    box.press("Backspace")
    expect(options).to_have_count(2)
    box.press_sequentially("deploy")  # by subtype
    expect(options).to_have_count(1)
    box.press("ArrowDown")
    box.press("Enter")
    expect(box).to_have_value(f"look at @run:{wanted.run_id} ")
    expect(writer.get_by_role("listbox")).to_be_hidden()
    box.press_sequentially("please")
    box.press("Enter")
    for page in (writer, reader):
        message = page.locator(".chatmsg").filter(has_text="please")
        link = message.get_by_role("link")
        expect(link).to_have_attribute("href", f"/runs/{wanted.run_id}")
        expect(link).to_contain_text("ok")
        expect(link).to_contain_text("deploy the web tier")


def test_message_text_is_never_html(server: Any, context: Any) -> None:
    page = open_page(context, "/")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Chat").click()
    box = page.get_by_role("combobox", name="Message")
    box.fill("<img src=x onerror=alert(1)> @run:20200101T000000000Z-00000000")
    box.press("Enter")
    message = page.locator(".chatmsg").last
    expect(message).to_contain_text("<img src=x onerror=alert(1)>")
    expect(message.locator("img")).to_have_count(0)
    expect(message.get_by_role("link")).to_have_count(0)  # an unknown id is shown plain
    assert dialogs == []


def test_a_run_page_lists_the_messages_that_mention_it(server: Any, context: Any) -> None:
    with tracked_run("build", "build:wheel", project_root=server.repo) as run:
        pass
    page = open_page(context, f"/runs/{run.run_id}")
    mentions = page.locator("[data-run-mentions]")
    expect(page.locator("[data-run-mentions-empty]")).to_be_visible()
    from controlplane.core.chat import post_message
    from controlplane.core.events import default_bus

    post_message(Ledger.open(server.repo), default_bus(), f"built @run:{run.run_id}",
                 {"kind": "script", "name": "test"})
    expect(mentions.locator(".chatmsg")).to_have_count(1)
    expect(mentions).to_contain_text("built")
    expect(page.locator("[data-run-mentions-empty]")).to_be_hidden()


def test_the_panel_says_what_it_is_when_empty_and_closes_with_escape(server: Any,
                                                                      context: Any) -> None:
    page = open_page(context, "/")
    toggle = page.get_by_role("button", name="Chat")
    toggle.click()
    panel = page.get_by_role("complementary", name="Chat")
    expect(panel.get_by_role("heading", name="Chat")).to_be_visible()
    empty = panel.get_by_text("No messages yet.")
    expect(empty).to_be_visible()
    box = panel.get_by_role("combobox", name="Message")
    expect(box).to_be_focused()

    box.fill("@run:")  # Escape closes the suggestions first, the panel stays
    expect(page.get_by_role("listbox", name="Runs to mention")).to_be_visible()
    box.press("Escape")
    expect(page.get_by_role("listbox", name="Runs to mention")).to_be_hidden()
    expect(box).to_be_visible()
    box.press("Escape")  # then the panel, and focus goes back to its button
    expect(box).to_be_hidden()
    expect(toggle).to_be_focused()
    expect(toggle).to_have_attribute("aria-expanded", "false")

    toggle.click()
    box.fill("first words")
    box.press("Enter")
    expect(panel.locator(".chatmsg").filter(has_text="first words")).to_be_visible()
    expect(empty).to_be_hidden()
    panel.get_by_role("button", name="Close", exact=True).click()
    expect(box).to_be_hidden()
    expect(toggle).to_be_focused()
