"""The main flows in Firefox ESR and WebKitGTK from Debian, driven over WebDriver.

Log in, Run now, live output, cancel, chat mention: what tests/browser/test_dashboard.py and
test_chat.py do in chromium, here in the two other engines (tests/browser/engines.py says how
each is driven). Under CI=true a missing browser is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from controlplane import tracked_run
from tests.browser.engines import Driver, launch, text_of, wait_for, which_missing
from tests.conftest import TOKEN

pytestmark = pytest.mark.browser
ENGINES = ("firefox", "webkit")
CARD = 'section[data-action="/testing/run"]'


@pytest.fixture(params=ENGINES, scope="module")
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    reason = which_missing(request.param)
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{request.param}: {reason}")
        pytest.skip(f"{request.param}: {reason}")
    with launch(request.param) as browser:  # one per engine: Firefox takes seconds to start
        yield browser


def log_in(driver: Driver, url: str, path: str) -> None:
    """The login exchange a person follows from the printed link, landing on *path*."""
    driver.goto(f"{url}/login?token={TOKEN}&next={path}")
    wait_for(driver, f"location.pathname === {json.dumps(path)}", f"landed on {path}")
    connected(driver)


def connected(driver: Driver) -> None:
    wait_for(driver, "(document.querySelector('[data-conn]') || {}).dataset?.state"
                     " === 'connected'", "the live connection opened")


def contains(driver: Driver, css: str, text: str, what: str) -> None:
    wait_for(driver, f"{text_of(css)}.includes({json.dumps(text)})", what)


def has_text(driver: Driver, css: str, text: str, what: str) -> None:
    wait_for(driver, f"{text_of(css)}.trim() === {json.dumps(text)}", what)


def start_run(driver: Driver, keyword: str) -> str:
    """Type *keyword* in the testing card and press Run now; returns the run's id."""
    driver.click(f"{CARD} [data-field='keyword'] input")
    driver.type(keyword)
    driver.click(f"{CARD} button[type='submit']")
    return str(wait_for(driver, f"document.querySelector('{CARD} [data-run-link]')"
                                "?.getAttribute('data-run-link')", "Run now gave a run link"))


def test_run_now_streams_live_output_and_ends(driver: Driver, server: Any) -> None:
    log_in(driver, server.url, "/integrations/testing")
    run_id = start_run(driver, "streams_then_waits")

    driver.goto(f"{server.url}/runs/{run_id}")
    connected(driver)
    driver.js("window.__stillTheSamePage = true")
    contains(driver, "[data-output]", "demo line 2", "the output streamed in")
    has_text(driver, "[data-run-status]", "running", "the run is running")

    server.open_gate()

    contains(driver, "[data-output]", "gate opened", "the last line arrived live")
    has_text(driver, "[data-run-status]", "ok", "the run ended ok")
    contains(driver, "[data-run-result]", "passed", "the result shows")
    assert driver.js("window.__stillTheSamePage === true"), "the page reloaded"


def test_a_running_run_is_cancelled_from_its_page(driver: Driver, server: Any) -> None:
    log_in(driver, server.url, "/integrations/testing")
    run_id = start_run(driver, "streams_then_waits")
    driver.goto(f"{server.url}/runs/{run_id}")
    connected(driver)
    contains(driver, "[data-output]", "demo line 0", "the output streamed in")
    wait_for(driver, "!document.querySelector('[data-run-cancel]').hidden", "Cancel run shows")

    driver.click("[data-run-cancel]")

    has_text(driver, "[data-run-status]", "cancelled", "the run was cancelled")
    contains(driver, "[data-run-error]", "cancelled", "the error says cancelled")
    wait_for(driver, "document.querySelector('[data-run-cancel]').hidden", "Cancel run hides")
    server.open_gate()  # nothing waits on it any more; leave the project tidy


def test_a_chat_message_mentions_a_run_by_autocomplete(driver: Driver, server: Any) -> None:
    with tracked_run("deploy", "deploy:web", summary="deploy the web tier",
                     project_root=server.repo) as wanted:
        pass
    log_in(driver, server.url, "/")
    driver.click(".chatpanel__toggle")
    driver.click("#chat-input")
    driver.type("look at @run:deploy")
    wait_for(driver, "document.querySelectorAll('#chat-suggestions [role=option]').length === 1"
                     " && !document.querySelector('#chat-suggestions').hidden",
             "the autocomplete narrowed to the deploy run")
    driver.press("ArrowDown")
    driver.press("Enter")
    wait_for(driver, f"document.querySelector('#chat-input').value === "
                     f"{json.dumps(f'look at @run:{wanted.run_id} ')}", "the mention was inserted")
    driver.type("please")
    driver.press("Enter")

    link = ".chatlog .chatmsg a[href]"
    wait_for(driver, f"document.querySelector({json.dumps(link)})?.getAttribute('href') === "
                     f"{json.dumps(f'/runs/{wanted.run_id}')}", "the message links the run")
    contains(driver, link, "deploy the web tier", "the link names the run")
