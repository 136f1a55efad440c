"""Running totals in the index (issue 18 item 6): ``/api/metrics/summary`` without reading
every run, and the same answer as counting them, through records, a branch moved back, an
index from before the totals, and a rebuild."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from controlplane import tracked_run
from controlplane.core.ledger import Ledger
from controlplane.core.ledger.index import summarize
from controlplane.core.ledger.run_query import RunFilter, pipelines
from tests.conftest import git

PLAN = [("test", "test:unit", None), ("test", "test:unit", "boom"), ("build", "build:web", None),
        ("deploy", "deploy:web", None), ("test", "test:e2e", "flaky"), ("build", "build:web", None)]


def record(repo: Path, plan: list[tuple[str, str, str | None]]) -> None:
    for run_type, subtype, failure in plan:
        expected = pytest.raises(RuntimeError) if failure else contextlib.nullcontext()
        with expected, tracked_run(run_type, subtype, project_root=repo):
            if failure:
                raise RuntimeError(failure)


def counted(ledger: Ledger) -> dict[str, Any]:
    """The metrics counted from every indexed run, the way they were before the totals."""
    runs = sorted(ledger.index.recent(limit=10**6), key=lambda r: r["run_id"])
    rows = [(r["type"], r["subtype"], r["status"], r.get("duration_ms"), r.get("started_at"))
            for r in runs]
    ended = [r["ended_at"] for r in runs if r.get("ended_at")]
    return {**summarize(rows), "window_minutes": None,
            "last_finished_at": max(ended) if ended else None,
            "pipelines": pipelines([(r["subtype"], r["status"], r.get("duration_ms"),
                                     r.get("ended_at")) for r in runs])}


def totals_marker(repo: Path) -> str | None:
    with sqlite3.connect(repo / ".git" / "scp" / "index.sqlite") as db:
        row = db.execute("SELECT value FROM meta WHERE key='totals'").fetchone()
    return row[0] if row else None


def assert_from_totals(repo: Path, ledger: Ledger, client=None) -> None:
    ledger.catch_up()
    assert totals_marker(repo) == f"1:{ledger.index.head()}"  # the totals are current
    expected = counted(ledger)
    assert ledger.index.metrics() == {k: v for k, v in expected.items()
                                      if k not in ("window_minutes", "last_finished_at",
                                                   "pipelines")}
    if client is not None:
        assert client.get("/api/metrics/summary").get_json() == expected
    assert ledger.index.filtered_metrics(RunFilter.of({})) == expected


def test_totals_follow_records_and_answer_the_summary(repo: Path, client) -> None:
    record(repo, PLAN)
    ledger = Ledger.open(repo)
    assert ledger.index.count() == len(PLAN)
    assert_from_totals(repo, ledger, client)
    summary = client.get("/api/metrics/summary").get_json()
    assert summary["total"] == 6 and summary["failed"] == 2 and summary["ok"] == 4
    assert summary["per_subtype"]["build:web"] == {"total": 2, "ok": 2, "failed": 0}
    assert summary["pipelines"][0]["subtype"] == "build:web"
    narrowed = client.get("/api/metrics/summary?subtype=test:unit").get_json()
    assert narrowed["total"] == 2 and narrowed["failed"] == 1  # a filter still counts


def test_a_branch_moved_back_takes_runs_out_of_the_totals(repo: Path) -> None:
    record(repo, PLAN)
    ledger = Ledger.open(repo)
    ledger.catch_up()
    git(repo, "update-ref", "refs/heads/scp-ledger", "scp-ledger~2")  # by hand, like a reset
    assert_from_totals(repo, ledger)
    assert ledger.index.metrics()["total"] == len(PLAN) - 2
    record(repo, PLAN[:1])
    assert_from_totals(repo, ledger)


def test_an_index_without_totals_is_counted_then_brought_up_to_date(repo: Path) -> None:
    record(repo, PLAN)
    ledger = Ledger.open(repo)
    ledger.catch_up()
    with sqlite3.connect(repo / ".git" / "scp" / "index.sqlite") as db:  # an older version's
        db.execute("DELETE FROM totals")
        db.execute("DELETE FROM meta WHERE key='totals'")
    assert ledger.index.metrics()["total"] == len(PLAN)  # counted, not the empty totals
    record(repo, PLAN[2:3])
    assert_from_totals(repo, ledger)
    assert ledger.index.metrics()["total"] == len(PLAN) + 1
    assert ledger.rebuild_index() == len(PLAN) + 1
    assert_from_totals(repo, ledger)
