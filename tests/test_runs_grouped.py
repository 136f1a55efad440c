"""The runs list grouped by pipeline (``/?group=pipeline``), through the Flask client and
without JavaScript: one row per pipeline with its runs, failed count, last status and last
run, for the list's filters; the toggle, the filters and the status links keep the view."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.test_operator_depth import ingest
from tests.test_pages_nojs import logged_in, page

ROW = re.compile(r'<tr data-pipeline="([^"]*)">(.*?)</tr>', re.S)


def hours_ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def pipelines(client: Any) -> dict[str, list[str]]:
    """nightly: ok, failed, ok (carol, dave, carol); lint: ok, failed (dave); an old
    nightly failure 30 days ago (outside the list's 14 days). Run ids per pipeline, oldest
    first."""
    seeded = [("nightly", "ok", "carol", 50), ("lint", "ok", "dave", 40),
              ("nightly", "failed", "dave", 30), ("lint", "failed", "dave", 20),
              ("nightly", "ok", "carol", 10)]
    ids: dict[str, list[str]] = {"old": [ingest(
        client, pipeline="nightly", status="failed", actor="erin", started_at=hours_ago(720),
        duration_ms=1000, ci_run_id="old")["run_id"]]}
    for n, (pipeline, status, actor, hours) in enumerate(seeded):
        run = ingest(client, pipeline=pipeline, status=status, actor=actor, branch="main",
                     started_at=hours_ago(hours), duration_ms=2000, ci_run_id=str(n))
        ids.setdefault(pipeline, []).append(run["run_id"])
    return ids


def rows(text: str) -> dict[str, dict[str, Any]]:
    """Per pipeline row of the grouped table: its cells as the page shows them."""
    found = {}
    for name, cells in ROW.findall(text):
        last = re.search(r'href="/runs/([^"]+)"', cells)
        found[html.unescape(name).removeprefix("ci:")] = {
            "status": re.search(r'data-status="([^"]+)"', cells).group(1),
            "total": re.search(r'data-cell="total">([^<]*)<', cells).group(1),
            "failed": re.search(r'data-cell="failed">([^<]*)<', cells).group(1),
            "last_run": last.group(1) if last else None,
            "link": html.unescape(re.search(r'<a href="([^"]+)" data-pipeline-link', cells)
                                  .group(1)),
            "finished": re.search(r'<time datetime="([^"]*)"', cells).group(1)}
    return found


def test_each_pipeline_has_its_counts_last_status_and_last_run(app: Any, pipelines: Any) -> None:
    text = page(logged_in(app), "/?group=pipeline")

    found = rows(text)
    assert list(found) == ["nightly", "lint"]  # most runs first
    assert found["nightly"] | {"link": "", "finished": ""} == {
        "status": "ok", "total": "3", "failed": "1", "last_run": pipelines["nightly"][-1],
        "link": "", "finished": ""}
    assert found["lint"]["status"] == "failed" and found["lint"]["total"] == "2"
    assert found["lint"]["last_run"] == pipelines["lint"][-1]
    assert found["nightly"]["link"] == "/?subtype=ci:nightly"  # the list filtered to it
    assert found["nightly"]["finished"].startswith(hours_ago(10)[:13])
    assert '<table class="runs"' not in text  # the grouped view, not the list


def test_filters_apply_to_the_groups(app: Any, pipelines: Any) -> None:
    client = logged_in(app)

    by_carol = rows(page(client, "/?group=pipeline&actor=carol"))
    failed = rows(page(client, "/?group=pipeline&status=failed"))
    dated = rows(page(client, f"/?group=pipeline&since={hours_ago(800)[:10]}"))

    assert {k: (v["total"], v["status"]) for k, v in by_carol.items()} == {"nightly": ("2", "ok")}
    assert by_carol["nightly"]["last_run"] == pipelines["nightly"][-1]
    assert by_carol["nightly"]["link"] == "/?actor=carol&subtype=ci:nightly"
    assert {k: (v["total"], v["failed"]) for k, v in failed.items()} == {
        "nightly": ("1", "1"), "lint": ("1", "1")}
    assert failed["nightly"]["last_run"] == pipelines["nightly"][1]
    assert dated["nightly"]["total"] == "4"  # dates replace the 14 days: the old run counts
    assert "No runs match these filters." in page(client, "/?group=pipeline&actor=nobody")


def test_the_toggle_and_the_filters_keep_the_view_without_javascript(app: Any,
                                                                     pipelines: Any) -> None:
    client = logged_in(app)
    listed = page(client, "/?actor=dave")
    grouped = page(client, "/?group=pipeline&actor=dave")

    toggle = listed.split("data-runs-view", 1)[1].split("</nav>", 1)[0]
    assert 'href="/?actor=dave" aria-current="page">List' in toggle
    assert 'href="/?group=pipeline&amp;actor=dave" data-group-pipeline>By pipeline' in toggle
    assert "data-runs-grouped" not in listed and 'data-runs ' in listed
    form = grouped.split("data-filters", 1)[1].split("</form>", 1)[0]
    assert '<input type="hidden" name="group" value="pipeline">' in form
    assert 'href="/?group=pipeline"' in form  # Clear keeps the view
    assert 'href="/?status=failed&amp;actor=dave&amp;group=pipeline"' in grouped
    assert 'aria-current="page" data-group-pipeline' in grouped
    assert "Runs by pipeline" in grouped


def test_no_runs_yet_says_so(app: Any) -> None:
    text = page(logged_in(app), "/?group=pipeline")

    assert "No runs yet. Start one from an integration" in text
    assert rows(text) == {}
