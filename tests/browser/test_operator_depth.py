"""Issue 17's operator depth in Chromium: the runs list's search and filters kept in the
address with KPIs that follow them, and what fits above the fold at 1920x1080."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM_TESTS
from tests.browser.test_dashboard import action_card, open_page
from tests.conftest import TOKEN

pytestmark = CHROMIUM_TESTS
expect = pytest.importorskip("playwright.sync_api").expect

FOLD = {"width": 1920, "height": 1080}


def ingest_many(url: str, count: int) -> None:
    """*count* CI runs (two actors, two branches) through the real ingest endpoint."""
    import json
    import urllib.request

    for number in range(count):
        body = {"pipeline": "nightly" if number % 2 else "lint", "status": "ok" if number % 3
                else "failed", "branch": "main" if number % 2 else "release/2.1",
                "commit": f"{number:040x}", "actor": "carol" if number % 2 else "dave",
                "duration_ms": 1000 + number, "summary": f"run number {number}",
                "ci_run_id": str(1000 + number), "url": f"https://ci.example.com/jobs/{number}"}
        request = urllib.request.Request(f"{url}/api/runs/ingest", data=json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {TOKEN}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request) as answer:
            assert answer.status in (200, 201)


def post(url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST JSON with the bearer token (a script's way in), asking for 202 on actions."""
    import json
    import urllib.request

    request = urllib.request.Request(f"{url}{path}", data=json.dumps(body or {}).encode(),
                                     headers={"Authorization": f"Bearer {TOKEN}",
                                              "Content-Type": "application/json",
                                              "Prefer": "respond-async"})
    with urllib.request.urlopen(request) as answer:
        return json.loads(answer.read() or b"{}")


def test_kpis_operations_and_25_runs_above_the_fold(server, open_context) -> None:
    ingest_many(server.url, 40)
    page = open_context(server, viewport=FOLD).new_page()
    page.goto("/")
    page.locator("[data-runs-body] tr").nth(39).wait_for()
    boxes: list[dict[str, Any]] = page.evaluate("""() => ({
        kpis: document.querySelector('[data-kpis]').getBoundingClientRect().bottom,
        ops: document.querySelector('[data-operations]').getBoundingClientRect().bottom,
        rows: [...document.querySelectorAll('[data-runs-body] tr')]
            .map((tr) => tr.getBoundingClientRect().bottom)})""")
    assert boxes["kpis"] <= FOLD["height"] and boxes["ops"] <= FOLD["height"], boxes  # help shown
    above = sum(1 for bottom in boxes["rows"] if bottom <= FOLD["height"])
    assert above >= 25, f"{above} runs above the fold at 1920x1080"


def test_search_and_filters_live_in_the_address_and_the_kpis_follow(server, open_context) -> None:
    ingest_many(server.url, 6)
    page = open_context(server, viewport=FOLD).new_page()
    page.goto("/")
    rows = page.locator("[data-runs-body] tr")
    rows.nth(5).wait_for()
    page.fill("[data-filter-text]", "number 3")
    page.wait_for_url("**/?q=number+3")
    expect(rows).to_have_count(1)
    expect(page.locator('[data-kpi="total"]')).to_have_text("1")
    page.fill("[data-filter-text]", "")
    page.fill("input[name=actor]", "carol")
    page.locator("input[name=actor]").press("Enter")
    page.wait_for_url("**/?actor=carol")
    expect(rows).to_have_count(3)
    expect(page.locator('[data-kpi="total"]')).to_have_text("3")
    first = rows.first
    assert first.locator("[data-cell=job]").get_attribute("href").startswith(
        "https://ci.example.com/jobs/")
    page.reload()  # the address holds the filters: the server renders the same list
    assert page.locator("input[name=actor]").input_value() == "carol"
    assert rows.count() == 3


def test_kpis_follow_metrics_update_and_pipelines_read_at_390px(server, open_context) -> None:
    ingest_many(server.url, 2)
    page = open_context(server, viewport={"width": 390, "height": 844}).new_page()
    page.goto("/metrics?window=24h")
    expect(page.locator('[data-kpi="total"]')).to_have_text("2")
    ingest_many(server.url, 3)  # ci_run_id 1000..1002: 1000 and 1001 update, 1002 is new
    expect(page.locator('[data-kpi="total"]')).to_have_text("3")
    rows = page.locator("[data-pipelines-body] tr")
    assert rows.count() == 2
    layout = page.evaluate("""() => ({
        scroll: document.documentElement.scrollWidth,
        cells: [...document.querySelectorAll('[data-pipelines-body] th, [data-pipelines-body] td')]
            .map((c) => c.getBoundingClientRect()).map((r) => [r.left, r.right])})""")
    assert layout["scroll"] <= 390, "the metrics page scrolls sideways at 390 px"
    assert all(left >= 0 and right <= 390 for left, right in layout["cells"]), layout["cells"]
    labels = page.evaluate("""() => [...document.querySelectorAll('[data-pipelines-body] td')]
        .slice(0, 7).map((td) => getComputedStyle(td, '::before').content)""")
    assert labels[-1] == '"Last finished: "', labels  # each figure says what it is


def test_failed_test_run_and_cancelled_queued_run_pages(server, open_context) -> None:
    (server.repo / "tests" / "test_broken.py").write_text(
        "def test_broken():\n    assert 1 == 2\n")
    failed = post(server.url, "/testing/run", {"path": "tests/test_broken.py"})["run_id"]
    page = open_context(server, viewport=FOLD).new_page()
    page.goto(f"/runs/{failed}")
    expect(page.locator("[data-run-status]")).to_have_text("failed")
    failures = page.locator("[data-run-failures]")
    expect(failures).to_contain_text("tests/test_broken.py::test_broken")
    tops = page.evaluate("""() => ['[data-run-failures]', '[data-run-error]', '[data-output]']
        .map((s) => document.querySelector(s).getBoundingClientRect().top)""")
    assert tops == sorted(tops), f"not failing tests, then error, then output: {tops}"
    page.get_by_role("button", name="Retry failed (1)").click()
    expect(page).not_to_have_url(re.compile(f"/runs/{failed}$"))
    expect(page.locator("[data-run-status]")).to_have_text("failed")
    expect(page.locator("[data-run-params]")).to_contain_text("tests/test_broken.py::test_broken")
    expect(page.locator("[data-run-result]")).to_contain_text("total")
    post(server.url, "/api/executor/pause")
    queued = post(server.url, "/testing/run")
    page.goto(f"/runs/{queued['run_id']}")
    expect(page.locator("[data-run-started]")).to_have_text("not yet (queued)")
    expect(page.locator("[data-output]")).to_be_hidden()
    page.click("[data-run-cancel]")
    expect(page.locator("[data-run-cancelled]")).to_contain_text("cancelled before it started")
    expect(page.locator("[data-run-error]")).to_be_hidden()
    expect(page.locator("[data-output]")).to_be_hidden()
    expect(page.locator("[data-output-empty]")).to_have_text("This run printed nothing.")
    post(server.url, "/api/executor/resume")


def test_run_button_stays_running_on_every_tab_and_operations_ask_first(server, context) -> None:
    first = open_page(context, "/integrations/testing")
    second = open_page(context, "/integrations/testing")
    runs = open_page(context, "/")
    expect(first.locator("[data-refresh-now]")).to_be_visible()
    action_card(first, "/testing/run").get_by_role("button", name="Run now").click()
    for tab in (first, second):  # the other tab learns it from the live events
        button = action_card(tab, "/testing/run").locator("button[type=submit]")
        expect(button).to_have_text("Running…")
        expect(button).to_be_disabled()
    reloaded = open_page(context, "/integrations/testing")  # and a page loaded meanwhile
    expect(action_card(reloaded, "/testing/run").locator("button[type=submit]")).to_be_disabled()
    server.open_gate()
    for tab in (first, second, reloaded):
        card = action_card(tab, "/testing/run")
        expect(card.locator("button[type=submit]")).to_have_text("Run now")
        expect(card.locator("button[type=submit]")).to_be_enabled()
        expect(card.locator("[data-last=status]")).to_have_text("ok")
        expect(card.locator("[data-last=actor]")).not_to_have_text("—")
        expect(card.locator("[data-last=duration]")).to_have_text(re.compile(r"\d"))

    pause = runs.locator('[data-ops-command="pause"]')
    pause.click()
    dialog = runs.locator("[data-confirm]")
    expect(dialog).to_be_visible()
    dialog.locator("[data-confirm-cancel]").click()
    expect(runs.locator("[data-ops-mode]")).to_have_text("accepting runs")  # no: nothing
    pause.click()
    dialog.locator("[data-confirm-ok]").click()
    expect(runs.locator("[data-ops-mode]")).to_have_text("paused")
    post(server.url, "/testing/run", {"path": "tests/test_demo.py"})  # waits in the queue
    expect(runs.locator('[data-ops="queued"]')).to_have_text("1")
    runs.locator('[data-ops-command="drain"]').click()
    expect(dialog.locator("[data-drain-timeout]")).to_have_value("300")
    dialog.locator("[data-drain-timeout]").fill("0")
    dialog.locator("[data-confirm-ok]").click()
    expect(runs.locator("[data-toasts]")).to_contain_text("0 run(s) still running, 1 still queued")
    runs.locator('[data-ops-command="cancel-queued"]').click()
    expect(dialog.locator("[data-drain-field]")).to_be_hidden()
    dialog.locator("[data-confirm-ok]").click()
    expect(runs.locator("[data-toasts]")).to_contain_text("Cancelled 1 queued run(s).")
    expect(runs.locator('[data-ops="queued"]')).to_have_text("0")
