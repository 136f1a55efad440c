"""Cancel and rerun from the runs list (issue 17) and a run's page with JavaScript off:
each is a small same-origin form posting ``csrf_token`` that answers 303 to the run's
page, or a page saying why not; a destructive action's rerun asks on a page first."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.core.ledger import Ledger
from tests.processes import read_line
from tests.test_operator_depth import python_project
from tests.test_pages_nojs import csrf_of, logged_in, page, post_form, wait_final, wipe_action

WAIT = 30  # seconds: a bound for a hang, never a synchronisation
__all__ = ["wipe_action"]  # the fixture, used by name


def row_of(html: str, run_id: str) -> str:
    """The runs list's row of *run_id*."""
    found = re.search(rf'<tr data-run-id="{run_id}".*?</tr>', html, re.S)
    assert found, f"no row for {run_id}"
    return found.group(0)


def run_page_buttons(html: str) -> dict[str, str]:
    """A run page's shown Cancel run / Rerun / Retry failed buttons: kind -> form action."""
    found = {}
    for form in re.finditer(r'<form method="post" action="([^"]+)">(.*?)</form>', html, re.S):
        button = re.search(r'<button [^>]*data-run-([a-z-]+)[^>]*>', form.group(2))
        if button and " hidden" not in button.group(0):
            found[button.group(1)] = form.group(1)
    return found


def shown_forms(row: str) -> set[str]:
    """Which of the row's forms (cancel, rerun) are not hidden."""
    return {m.group(1) for m in re.finditer(r'<form [^>]*data-row-form="(\w+)"[^>]*>', row)
            if " hidden" not in m.group(0)}


@pytest.fixture
def sleeper(repo: Path) -> Iterator[subprocess.Popen[str]]:
    """A ``controlplane exec`` run of another process, in flight until it is stopped."""
    process = subprocess.Popen(
        [sys.executable, "-m", "controlplane", "exec", "test:sleep", "--",
         "sh", "-c", "echo $$; exec sleep 30"],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    read_line(process, WAIT)  # it runs (its run is in the journal)
    yield process
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=WAIT)


def test_cancel_form_stops_an_in_flight_run_of_another_process(
        app, repo: Path, sleeper: subprocess.Popen[str]) -> None:
    run_id = Ledger.open(repo).active()[0]["run_id"]
    client = logged_in(app)
    html = page(client, "/")
    row = row_of(html, run_id)
    assert shown_forms(row) == {"cancel"}
    assert 'aria-label="Cancel run sh -c &#39;echo $$; exec sleep 30&#39;"' in row  # its summary
    assert f'action="/runs/{run_id}/cancel"' in row

    refused = post_form(client, f"/runs/{run_id}/cancel", {}, None)  # no CSRF token
    assert refused.status_code == 403 and sleeper.poll() is None

    answer = post_form(client, f"/runs/{run_id}/cancel", {}, csrf_of(html))
    assert answer.status_code == 303 and answer.headers["Location"] == f"/runs/{run_id}"
    sleeper.wait(WAIT)
    assert Ledger.open(repo).get(run_id)["status"] == "cancelled"
    row = row_of(page(client, "/"), run_id)
    assert shown_forms(row) == set()  # ended, and no action of ours to rerun

    again = post_form(client, f"/runs/{run_id}/cancel", {}, csrf_of(html))
    assert again.status_code == 409 and "already ended" in again.get_data(as_text=True)


def test_rerun_form_starts_a_new_run_naming_the_old(app, repo: Path) -> None:
    client = logged_in(app)
    csrf = csrf_of(page(client, "/integrations/testing"))
    started = post_form(client, "/testing/generate/template", {"module": "x.py"}, csrf)
    first = wait_final(app, repo, started.headers["Location"].rsplit("/", 1)[-1])
    row = row_of(page(client, "/"), first["run_id"])
    assert shown_forms(row) == {"rerun"}
    assert re.search(r'aria-label="Rerun [^"]+"', row)

    answer = post_form(client, f"/runs/{first['run_id']}/rerun", {}, csrf)
    assert answer.status_code == 303
    second = wait_final(app, repo, answer.headers["Location"].rsplit("/", 1)[-1])
    assert second["rerun_of"] == first["run_id"] and second["params"] == first["params"]
    assert second["actor"]["kind"] == "web"


def test_rerun_form_of_a_destructive_action_asks_on_a_page(wipe_action, make_app,
                                                           repo: Path) -> None:
    app = make_app()
    client = logged_in(app)
    csrf = csrf_of(page(client, "/"))
    first = client.post("/demo/wipe", json={"target": "cache", "confirm": True},
                        headers={"X-CSRF-Token": csrf, "Origin": "http://localhost"}).json
    assert first["status"] == "ok", first

    asked = post_form(client, f"/runs/{first['run_id']}/rerun", {}, csrf)
    html = asked.get_data(as_text=True)
    assert asked.status_code == 200 and "Rerun a destructive action?" in html
    assert 'name="confirm" value="yes"' in html and "cache" in html
    assert len(Ledger.open(repo).recent(limit=10)) == 1  # nothing started

    confirmed = post_form(client, f"/runs/{first['run_id']}/rerun", {"confirm": "yes"}, csrf)
    assert confirmed.status_code == 303
    second = wait_final(app, repo, confirmed.headers["Location"].rsplit("/", 1)[-1])
    assert second["status"] == "ok" and second["rerun_of"] == first["run_id"]


def test_rerun_form_of_a_run_no_action_started_says_why(app, repo: Path) -> None:
    from controlplane import tracked_run

    with tracked_run("build", "build:wheel", project_root=repo) as run:
        pass
    client = logged_in(app)
    answer = post_form(client, f"/runs/{run.run_id}/rerun", {}, csrf_of(page(client, "/")))
    assert answer.status_code == 409
    assert "not started by an action of this server" in answer.get_data(as_text=True)


def test_run_page_cancel_is_a_form_without_js(app, repo: Path,
                                              sleeper: subprocess.Popen[str]) -> None:
    run_id = Ledger.open(repo).active()[0]["run_id"]
    client = logged_in(app)
    html = page(client, f"/runs/{run_id}")
    assert run_page_buttons(html) == {"cancel": f"/runs/{run_id}/cancel"}

    answer = post_form(client, f"/runs/{run_id}/cancel", {}, csrf_of(html))
    assert answer.status_code == 303 and answer.headers["Location"] == f"/runs/{run_id}"
    sleeper.wait(WAIT)
    html = page(client, f"/runs/{run_id}")
    assert Ledger.open(repo).get(run_id)["status"] == "cancelled"
    assert run_page_buttons(html) == {}  # ended; no action of ours started it


def test_run_page_rerun_and_retry_failed_are_forms_without_js(app, repo: Path) -> None:
    python_project(repo)
    client = logged_in(app)
    csrf = csrf_of(page(client, "/integrations/testing"))
    started = post_form(client, "/testing/run", {}, csrf)
    first = wait_final(app, repo, started.headers["Location"].rsplit("/", 1)[-1])
    assert first["status"] == "failed", first
    html = page(client, f"/runs/{first['run_id']}")
    assert run_page_buttons(html) == {"rerun": f"/runs/{first['run_id']}/rerun",
                                      "retry-failed": f"/runs/{first['run_id']}/retry-failed"}
    assert ">Retry failed (1)</button>" in html

    answer = post_form(client, f"/runs/{first['run_id']}/retry-failed", {}, csrf_of(html))
    assert answer.status_code == 303
    retry = wait_final(app, repo, answer.headers["Location"].rsplit("/", 1)[-1])
    assert retry["params"]["node_ids"] == ["tests/test_demo.py::test_broken"]
    assert retry["rerun_of"] == first["run_id"] and retry["actor"]["kind"] == "web"

    answer = post_form(client, f"/runs/{first['run_id']}/rerun", {}, csrf_of(html))
    assert answer.status_code == 303
    rerun = wait_final(app, repo, answer.headers["Location"].rsplit("/", 1)[-1])
    assert rerun["params"] == first["params"] and rerun["rerun_of"] == first["run_id"]


def test_retry_failed_form_of_a_run_without_failures_says_why(app, repo: Path) -> None:
    from controlplane import tracked_run

    with tracked_run("test", "test:pytest", project_root=repo) as run:
        pass
    client = logged_in(app)
    html = page(client, f"/runs/{run.run_id}")
    assert run_page_buttons(html) == {}
    answer = post_form(client, f"/runs/{run.run_id}/retry-failed", {}, csrf_of(html))
    text = answer.get_data(as_text=True)
    assert answer.status_code == 409 and "Not retried" in text and "use Rerun" in text
