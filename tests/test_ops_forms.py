"""The operations card with JavaScript off: its figures are in the page, and each command
is a form post that asks on a page first (pause, drain, cancel-queued), then answers 303
to the runs page saying what was done."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from controlplane.core.ledger import Ledger
from tests.test_operator_depth import python_project
from tests.test_pages_nojs import csrf_of, logged_in, page, post_form
from tests.test_runs_inline import sleeper

__all__ = ["sleeper"]  # the fixture, used by name


def card(html: str) -> str:
    found = re.search(r'<section class="card ops".*?</section>', html, re.S)
    assert found, "no operations card"
    return found.group(0)


def figure(html: str, name: str) -> str:
    return re.search(rf'data-ops="{name}"[^>]*>([^<]*)<', card(html)).group(1)


def disabled(html: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r'<button [^>]*data-ops-command="([a-z-]+)"[^>]*>',
                                            card(html)) if " disabled" in m.group(0)}


def paused(app) -> bool:
    return app.extensions["controlplane"].executor.state()["paused"]


def test_the_card_holds_the_executor_state_without_js(app, repo: Path,
                                                      sleeper: subprocess.Popen[str]) -> None:
    html = page(logged_in(app), "/")
    assert 'data-ops-mode>accepting runs</span>' in card(html)
    assert figure(html, "running") == "1" and figure(html, "queued") == "0"
    assert 'title="1 in other processes (controlplane exec, scripts)"' in card(html)
    assert figure(html, "limit").isdigit()
    assert disabled(html) == {"resume", "cancel-queued"}
    assert 'action="/operations/pause"' in card(html)


def test_pause_asks_on_a_page_then_pauses_and_says_so(app, repo: Path) -> None:
    client = logged_in(app)
    csrf = csrf_of(page(client, "/"))
    assert post_form(client, "/operations/pause", {"confirm": "yes"}, None).status_code == 403
    asked = post_form(client, "/operations/pause", {}, csrf)
    text = asked.get_data(as_text=True)
    assert asked.status_code == 200 and "Pause the queue?" in text
    assert 'name="confirm" value="yes"' in text and not paused(app)

    done = post_form(client, "/operations/pause", {"confirm": "yes"}, csrf)
    assert done.status_code == 303 and done.headers["Location"] == "/?done=pause"
    assert paused(app)
    html = page(client, done.headers["Location"])
    assert 'data-ops-mode>paused</span>' in html and "Queue paused." in html
    assert disabled(html) == {"pause", "cancel-queued"}

    resumed = post_form(client, "/operations/resume", {}, csrf)  # resume asks nothing
    assert resumed.status_code == 303 and not paused(app)


def test_drain_takes_its_timeout_from_the_page(app, repo: Path) -> None:
    client = logged_in(app)
    csrf = csrf_of(page(client, "/"))
    asked = post_form(client, "/operations/drain", {}, csrf).get_data(as_text=True)
    assert 'name="timeout"' in asked and 'value="300"' in asked

    for bad in ("soon", "-1", "3601", "nan"):
        refused = post_form(client, "/operations/drain", {"confirm": "yes", "timeout": bad}, csrf)
        text = refused.get_data(as_text=True)
        assert refused.status_code == 422 and "timeout: must be a number of seconds" in text
        assert not paused(app)

    done = post_form(client, "/operations/drain", {"confirm": "yes", "timeout": "0"}, csrf)
    assert done.status_code == 303
    assert done.headers["Location"] == "/?done=drain&running=0&queued=0"
    assert paused(app)
    assert "Queue drained: nothing is running or queued." in page(client, done.headers["Location"])
    post_form(client, "/operations/resume", {}, csrf)


def test_cancel_queued_asks_then_cancels_and_counts(app, client, repo: Path) -> None:
    python_project(repo)
    browser = logged_in(app)
    csrf = csrf_of(page(browser, "/"))
    client.post("/api/executor/pause", json={})
    run_id = client.post("/testing/run", json={},
                         headers={"Prefer": "respond-async"}).get_json()["run_id"]
    html = page(browser, "/")
    assert figure(html, "queued") == "1" and "cancel-queued" not in disabled(html)

    asked = post_form(browser, "/operations/cancel-queued", {}, csrf)
    assert "Cancel every queued run?" in asked.get_data(as_text=True)
    assert Ledger.open(repo).active()[0]["status"] == "queued"

    done = post_form(browser, "/operations/cancel-queued", {"confirm": "yes"}, csrf)
    assert done.headers["Location"] == "/?done=cancel-queued&cancelled=1"
    assert "Cancelled 1 queued run(s)." in page(browser, done.headers["Location"])
    assert Ledger.open(repo).get(run_id)["status"] == "cancelled"
    client.post("/api/executor/resume", json={})


def test_an_unknown_command_or_a_made_up_note_changes_nothing(app, repo: Path) -> None:
    client = logged_in(app)
    csrf = csrf_of(page(client, "/"))
    unknown = post_form(client, "/operations/explode", {"confirm": "yes"}, csrf)
    assert unknown.status_code == 404 and not paused(app)
    html = page(client, "/?done=<b>owned</b>&running=9")
    assert "owned" not in html and "data-ops-done" not in html
