"""Issue 16 item 3 in a real browser against a real ``controlplane serve``: the dashboard
uses the WebSocket where it can, SSE when the WebSocket is blocked, polling when both are,
each resuming; a burst of 300 events repaints an element at most once or twice a frame."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.conftest import TIMEOUT_MS
from tests.browser.test_operator import (  # noqa: F401 (fixture)
    Serve,
    call,
    connected,
    expect,
    free_port,
    log_in,
    serve_process,
)

BLOCK_WEBSOCKET = "window.WebSocket = function () { throw new Error('blocked by a proxy'); };"


def start_run(base: str) -> str:
    status, started = call(base, "POST", "/testing/run", headers={"Prefer": "respond-async"},
                           body={"keyword": "streams_then_waits"})
    assert status == 202, started
    return started["run_id"]


def transport_of(page: Any) -> Any:
    return expect(page.locator("[data-conn]"))


@pytest.mark.parametrize(("blocked", "transport"), [
    ("", "ws"),  # the default: a new run appears over the WebSocket
    (BLOCK_WEBSOCKET, "sse"),  # a blocked WebSocket falls back to SSE
], ids=["websocket-by-default", "sse-when-the-websocket-is-blocked"])
def test_the_first_transport_that_opens_shows_a_new_run(
        browser: Any, serve_process: Callable[..., Serve], blocked: str,  # noqa: F811
        transport: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve_process(port)
    context = log_in(browser, base)
    if blocked:
        context.add_init_script(blocked)
    try:
        page = context.new_page()
        page.goto("/")
        connected(page)
        transport_of(page).to_have_attribute("data-transport", transport)
        if transport == "ws":
            transport_of(page).to_have_attribute("title", "Live updates over WebSocket")
        run_id = start_run(base)
        expect(page.locator(f'tr[data-run-id="{run_id}"]')).to_be_visible()
    finally:
        context.close()


def test_websocket_and_sse_blocked_poll_and_resume_across_a_restart(
        browser: Any, serve_process: Callable[..., Serve]) -> None:  # noqa: F811
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    first = serve_process(port)
    context = log_in(browser, base)
    context.add_init_script(BLOCK_WEBSOCKET)
    context.route("**/api/events*", lambda route: route.abort())  # not /api/events/poll
    try:
        page = context.new_page()
        page.goto("/")
        connected(page)
        transport_of(page).to_have_attribute("data-transport", "poll")
        transport_of(page).to_have_attribute("title", "Live updates over polling")
        page.evaluate("window.__stillTheSamePage = true")
        run_id = start_run(base)
        expect(page.locator(f'tr[data-run-id="{run_id}"]')).to_be_visible()
        first.kill()
        page.wait_for_event("requestfailed", predicate=lambda r: "/api/events/poll" in r.url,
                            timeout=TIMEOUT_MS)  # a poll met the server down
        serve_process(port)
        missed = start_run(base)  # before the page's next poll: it resumes (a resync here)
        expect(page.locator(f'tr[data-run-id="{missed}"]')).to_be_visible()
        connected(page)
        transport_of(page).to_have_attribute("data-transport", "poll")
        assert page.evaluate("window.__stillTheSamePage === true")  # no reload, no new login
        expect(page.locator("[data-banner]")).to_be_hidden()
    finally:
        context.close()


BURST = """
([runId, count]) => new Promise((resolve) => {
  // 300 run:progress envelopes arriving as separate messages on the page's live WebSocket,
  // faster than frames; the progress text's DOM writes are counted per animation frame.
  const text = document.querySelector('[data-run-progress-text]');
  let writes = 0, frames = 0, worst = 0, inFrame = 0, longest = 0;
  new MutationObserver((records) => { writes += records.length; inFrame += records.length; })
    .observe(text, { childList: true, characterData: true, subtree: true });
  const tick = () => {
    frames += 1; worst = Math.max(worst, inFrame); inFrame = 0;
    if (text.textContent !== `${count} of ${count}`) requestAnimationFrame(tick);
    else resolve({ writes, frames, worst, longest, text: text.textContent });
  };
  requestAnimationFrame(tick);
  const socket = window.__liveSockets[window.__liveSockets.length - 1];
  let n = 0;
  const channel = new MessageChannel();
  channel.port1.onmessage = () => {
    const started = performance.now();
    n += 1;
    socket.dispatchEvent(new MessageEvent('message', { data: JSON.stringify({
      id: `burst-${n}`, type: 'run:progress', run_id: runId, at: '',
      data: { done: n, total: count } }) }));
    longest = Math.max(longest, performance.now() - started);
    if (n < count) channel.port2.postMessage(null);
  };
  channel.port2.postMessage(null);
})
"""

KEEP_SOCKETS = """
window.__liveSockets = [];
const Original = window.WebSocket;
window.WebSocket = class extends Original {
  constructor(...args) { super(...args); window.__liveSockets.push(this); }
};
"""


def test_a_burst_of_300_events_repaints_the_progress_at_most_twice_a_frame(
        browser: Any, serve_process: Callable[..., Serve]) -> None:  # noqa: F811
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve_process(port)
    context = log_in(browser, base)
    context.add_init_script(KEEP_SOCKETS)
    try:
        run_id = start_run(base)
        page = context.new_page()
        page.goto(f"/runs/{run_id}")
        connected(page)
        transport_of(page).to_have_attribute("data-transport", "ws")
        figures = page.evaluate(BURST, [run_id, 300])
        assert figures["text"] == "300 of 300"
        # at once for the first of a frame, then the newest at the frame's end: never 300
        assert figures["worst"] <= 2, figures
        assert figures["writes"] <= figures["frames"] + 2, figures
        assert figures["writes"] < 300 / 3, figures
        print(f"FIGURE burst: {json.dumps(figures)}")
    finally:
        context.close()
