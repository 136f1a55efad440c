"""Issue 17's metrics page in Chromium: a day's bar, a status part of it and a duration point
open the runs list filtered to exactly those runs (by mouse and by keyboard), the duration
trend's figures are on the page, and a 390x844 phone reads it without sideways scrolling."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM_TESTS
from tests.conftest import TOKEN

pytestmark = CHROMIUM_TESTS
sync_api = pytest.importorskip("playwright.sync_api")
axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")
expect = sync_api.expect

PHONE = {"width": 390, "height": 844}
TODAY = datetime.now(UTC).date()
DAY_1 = (TODAY - timedelta(days=1)).isoformat()  # 5 runs: 3 ok, 2 failed
DAY_2 = (TODAY - timedelta(days=2)).isoformat()  # 3 runs: 2 ok, 1 failed
PLAN = [(DAY_1, "ok", 4), (DAY_1, "failed", 1), (DAY_1, "ok", 9), (DAY_1, "failed", 2),
        (DAY_1, "ok", 30), (DAY_2, "ok", 6), (DAY_2, "failed", 7), (DAY_2, "ok", 8)]


def ingest_plan(url: str) -> None:
    """The runs of PLAN (day, status, seconds) through the real ingest endpoint."""
    for number, (day, status, seconds) in enumerate(PLAN):
        body = {"pipeline": "nightly" if number % 2 else "lint", "status": status,
                "started_at": f"{day}T{10 + number:02d}:00:00Z", "duration_ms": seconds * 1000,
                "ci_run_id": f"metrics-{number}", "summary": f"run number {number}"}
        request = urllib.request.Request(f"{url}/api/runs/ingest", data=json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {TOKEN}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request) as answer:
            assert answer.status == 201


def open_metrics(page: Any, path: str = "/metrics") -> None:
    page.goto(path)
    expect(page.locator('[data-chart="durations"] svg')).to_be_visible()


def wait_for_runs_list(page: Any, **filters: str) -> None:
    """Wait until the page is the runs list filtered by exactly `filters`. The query is compared
    decoded: the server's links write `ci:lint`, the scripts' `ci%3Alint`, for the same address."""
    def wanted(address: str) -> bool:
        parts = urllib.parse.urlsplit(address)
        return parts.path == "/" and dict(urllib.parse.parse_qsl(parts.query)) == filters
    page.wait_for_url(wanted)


def listed(page: Any, count: int) -> None:
    rows = page.locator("[data-runs-body] tr[data-run-id]")
    expect(rows).to_have_count(count)
    expect(page.locator('[data-kpi="total"]')).to_have_text(str(count))


def test_a_day_a_status_and_a_duration_point_open_exactly_their_runs(server, open_context):
    ingest_plan(server.url)
    page = open_context(server).new_page()
    open_metrics(page)
    day = page.locator(f'[data-chart="runs"] a[aria-label^="5 runs on {DAY_1}"]')
    day.focus()  # reached by the keyboard: a real link, opened with Enter
    assert page.evaluate("document.activeElement.getAttribute('aria-label')").startswith(
        f"5 runs on {DAY_1}: 3 ok, 2 failed")
    page.keyboard.press("Enter")
    wait_for_runs_list(page, since=DAY_1, until=DAY_1)
    listed(page, 5)

    open_metrics(page)
    page.get_by_role("link", name=f"2 failed runs on {DAY_1}").first.click()  # the bar's red part
    wait_for_runs_list(page, since=DAY_1, until=DAY_1, status="failed")
    listed(page, 2)
    assert page.locator("[data-runs-body] .badge--failed").count() == 2

    open_metrics(page)
    point = page.locator(f'[data-chart="durations"] a[aria-label^="3 runs on {DAY_2}"]')
    # 6 7 8 s: p50 at rank 2, p95 at rank 3
    assert point.get_attribute("aria-label") == f"3 runs on {DAY_2}: p50 7 s, p95 8 s"
    point.locator("circle").first.click()
    wait_for_runs_list(page, since=DAY_2, until=DAY_2)
    listed(page, 3)


def test_the_duration_trend_is_in_the_per_day_table_and_follows_the_pipeline(server,
                                                                            open_context):
    ingest_plan(server.url)
    page = open_context(server).new_page()
    open_metrics(page)
    row = page.locator("[data-per-day-body] tr", has=page.locator(f'th:text-is("{DAY_1}")'))
    # 1 2 4 9 30 s: p50 at rank 3 (4 s), p95 at rank 5 (30 s)
    expect(row.locator("td")).to_have_text(["5", "3", "2", "4.0 s", "30 s"])
    page.select_option("[data-pipeline-pick]", "ci:lint")  # runs 0 2 4 6: 4 9 30 s on day 1
    page.wait_for_url("**/metrics?window=7d&subtype=ci%3Alint")
    expect(row.locator("td")).to_have_text(["3", "3", "0", "9.0 s", "30 s"])
    page.get_by_role("link", name=f"3 ok runs on {DAY_1}").first.click()
    wait_for_runs_list(page, since=DAY_1, until=DAY_1, status="ok", subtype="ci:lint")
    listed(page, 3)


def test_a_phone_reads_the_metrics_page(server, open_context):
    ingest_plan(server.url)
    page = open_context(server, viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    open_metrics(page, "/metrics?window=30d")
    expect(page.locator('[data-chart="runs"] a.chart__link').first).to_be_visible()
    layout = page.evaluate("""() => {
        const root = document.scrollingElement;
        const shown = (el) => {
            const box = el.getBoundingClientRect();
            return box.width > 1 && box.height > 1 && getComputedStyle(el).visibility !== 'hidden'
                && !el.closest('[hidden], .visually-hidden, [aria-hidden="true"] .swatch');
        };
        const small = [];
        for (const el of document.querySelectorAll('main *')) {
            const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
            if (!own || !shown(el)) continue;
            let size = parseFloat(getComputedStyle(el).fontSize);
            const svg = el.closest('svg');
            if (svg) size *= svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
            if (size < 12) small.push(`${el.tagName} ${el.textContent.trim()}: ${size}`);
        }
        return {scroll: root.scrollWidth, client: root.clientWidth, small,
                charts: [...document.querySelectorAll('.chart__svg')].map(
                    (s) => s.getBoundingClientRect().right),
                table: document.querySelector('.table-scroll').getBoundingClientRect().right};
    }""")
    assert layout["scroll"] <= layout["client"], f"scrolls sideways: {layout}"
    assert layout["charts"] and all(right <= PHONE["width"] for right in layout["charts"]), layout
    assert layout["table"] <= PHONE["width"], layout
    assert layout["small"] == [], f"text under 12 px at 390 px: {layout['small']}"
    found = [v["id"] for v in axe_module.Axe().run(page).response["violations"]
             if v["impact"] in ("serious", "critical")]
    assert found == []


def test_without_javascript_the_per_day_counts_open_their_runs(server, open_context):
    """The server-rendered table links as the scripts' one does (its address spells the
    pipeline `ci:lint`, theirs `ci%3Alint`); a test that clicked before the scripts ran met it."""
    ingest_plan(server.url)
    page = open_context(server, java_script_enabled=False).new_page()
    page.goto("/metrics?window=7d&subtype=ci%3Alint")
    page.get_by_role("link", name=f"3 ok runs on {DAY_1}").first.click()
    wait_for_runs_list(page, since=DAY_1, until=DAY_1, status="ok", subtype="ci:lint")
