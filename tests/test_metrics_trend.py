"""Issue 17's duration trend: ``/api/metrics/durations`` answers per day (UTC) the runs started
and the exact p50/p95 of their durations (nearest rank), from a real ledger of ingested runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controlplane.core.ledger.totals import nearest_rank

DAY_A = [5, 1, 9, 3, 7, 2, 8]  # seconds, on 2026-03-02: sorted 1 2 3 5 7 8 9
DAY_B = list(range(1, 21))  # seconds, on 2026-03-03: 1 .. 20, lint the odd, nightly the even


def ingest(client: Any, number: int, pipeline: str, started: str, seconds: int) -> None:
    answer = client.post("/api/runs/ingest", json={
        "pipeline": pipeline, "status": "ok" if number % 4 else "failed", "started_at": started,
        "duration_ms": seconds * 1000, "ci_run_id": f"trend-{number}"})
    assert answer.status_code == 201, answer.get_json()


@pytest.fixture
def known_durations(client: Any) -> None:
    number = 0
    for seconds in DAY_A:
        number += 1
        ingest(client, number, "deploy", f"2026-03-02T{number:02d}:15:00Z", seconds)
    for seconds in DAY_B:
        number += 1
        ingest(client, number, "lint" if seconds % 2 else "nightly",
               f"2026-03-03T{seconds:02d}:30:00Z", seconds)


def trend(client: Any, query: str) -> list[dict[str, Any]]:
    answer = client.get(f"/api/metrics/durations?{query}")
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["duration_trend"]


def test_nearest_rank_by_hand() -> None:
    assert nearest_rank([4], 50) == 4 and nearest_rank([4], 95) == 4
    assert nearest_rank(list(range(1, 21)), 95) == 19  # rank ceil(19.0) = 19, not the maximum
    assert nearest_rank(list(range(1, 21)), 50) == 10
    assert nearest_rank(list(range(1, 101)), 95) == 95
    assert nearest_rank([1, 2, 3, 5, 7, 8, 9], 95) == 9  # rank ceil(6.65) = 7


def test_trend_per_day_is_exact(client: Any, known_durations: None) -> None:
    days = trend(client, "since=2026-03-01&until=2026-03-31")
    assert days == [{"day": "2026-03-02", "runs": 7, "p50_s": 5.0, "p95_s": 9.0},
                    {"day": "2026-03-03", "runs": 20, "p50_s": 10.0, "p95_s": 19.0}]


def test_trend_of_one_pipeline_and_status(client: Any, known_durations: None) -> None:
    lint = trend(client, "subtype=ci:lint&since=2026-03-03&until=2026-03-03")
    # 1 3 5 .. 19: p50 at rank 5, p95 at rank ceil(9.5) = 10
    assert lint == [{"day": "2026-03-03", "runs": 10, "p50_s": 9.0, "p95_s": 19.0}]
    failed = trend(client, "status=failed&since=2026-03-02&until=2026-03-02")
    assert failed == [{"day": "2026-03-02", "runs": 1, "p50_s": 3.0, "p95_s": 3.0}]  # run 4


def test_trend_over_a_window_and_bad_input(client: Any, known_durations: None) -> None:
    now = datetime.now(UTC)
    ingest(client, 99, "deploy", (now - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"), 42)
    answer = client.get("/api/metrics/durations?minutes=60").get_json()
    started = (now - timedelta(minutes=30)).strftime("%Y-%m-%d")
    assert answer == {"window_minutes": 60, "duration_trend": [
        {"day": started, "runs": 1, "p50_s": 42.0, "p95_s": 42.0}]}
    assert len(trend(client, "")) == 3  # no window: every day
    bad = client.get("/api/metrics/durations?minutes=0")
    assert bad.status_code == 422 and "minutes" in bad.get_json()["fields"]
    assert client.get("/api/metrics/durations?since=nope").status_code == 422


def test_metrics_page_without_javascript_links_days_and_shows_durations(app: Any,
                                                                       client: Any) -> None:
    from tests.test_pages_nojs import logged_in, page

    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    for number, (pipeline, seconds) in enumerate([("lint", 3), ("lint", 1), ("deploy", 8)]):
        ingest(client, number, pipeline, f"{yesterday}T0{number}:00:00Z", seconds)
    browser = logged_in(app)
    html = page(browser, "/metrics")
    # run 0 is failed (number % 4 == 0): 1 3 8 s, p50 at rank 2, p95 at rank 3
    assert (f'<a href="/?since={yesterday}&amp;until={yesterday}" aria-label="3 runs on '
            f'{yesterday}">3</a>') in html
    assert (f'<a href="/?since={yesterday}&amp;until={yesterday}&amp;status=failed" '
            f'aria-label="1 failed run on {yesterday}">1</a>') in html
    assert '<td class="num">3.0 s</td><td class="num">8.0 s</td>' in html
    lint = page(browser, "/metrics?window=30d&subtype=ci:lint")
    assert '<option value="ci:lint" selected>ci:lint</option>' in lint
    assert f'since={yesterday}&amp;until={yesterday}&amp;subtype=ci:lint"' in lint
    assert '<td class="num">1.0 s</td><td class="num">3.0 s</td>' in lint


def sqlite_steps(index: Any, query: Any) -> int:
    """How many hundreds of SQLite VM instructions *query* (a call) costs on *index*."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    conn = index._db().conn
    conn.set_progress_handler(count, 100)
    try:
        query()
    finally:
        conn.set_progress_handler(None, 100)
    return steps[0]


def test_a_window_reads_only_its_runs(tmp_path: Any) -> None:
    """The trend and the windowed summary (the metrics page's) read the window's rows through
    the runs_started index, not every run in id order (200 ms at 100k runs before)."""
    from bench.metrics_bench import filled
    from controlplane.core.ledger.run_query import RunFilter

    index = filled(tmp_path / "index.sqlite", 3_000)  # a year of runs: ~8 a day
    everything = RunFilter.of({})
    try:
        whole = sqlite_steps(index, lambda: index.duration_trend(everything))
        day_trend = sqlite_steps(index, lambda: index.duration_trend(everything, 24 * 60))
        day_summary = sqlite_steps(index, lambda: index.filtered_metrics(everything, 24 * 60))
    finally:
        index.close()
    assert day_trend * 20 < whole, (day_trend, whole)
    assert day_summary * 20 < whole, (day_summary, whole)
