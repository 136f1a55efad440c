"""Issue 17's operator depth, through the Flask client: the runs list's search and filters,
the metrics shape, the run page's failure order, the operations card and "retry failed"."""

from __future__ import annotations

import itertools
import re
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from controlplane import tracked_run
from tests.conftest import git
from tests.test_pages_nojs import logged_in, page

SHA = "0123456789abcdef0123456789abcdef01234567"


def ingest(client: Any, **report: Any) -> dict[str, Any]:
    answer = client.post("/api/runs/ingest", json=report)
    assert answer.status_code in (200, 201), answer.get_json()
    return answer.get_json()


@pytest.fixture
def mixed_runs(app, client, repo: Path) -> dict[str, str]:
    """Runs of several actors, branches, pipelines and days; returns their ids by name."""
    ids = {}
    ids["nightly"] = ingest(client, pipeline="nightly", status="ok", branch="release/2.1",
                            commit=SHA, actor="carol", url="https://ci.example.com/jobs/77",
                            started_at="2026-01-10T08:00:00Z", duration_ms=60_000,
                            summary="nightly build", ci_run_id="77")["run_id"]
    ids["lint"] = ingest(client, pipeline="lint", status="failed", branch="main", commit=SHA,
                         actor="dave", started_at="2026-02-01T08:00:00Z", duration_ms=5_000,
                         summary="lint of everything", ci_run_id="78")["run_id"]
    with app.extensions["controlplane"].activated(), \
            tracked_run("deploy", "deploy:k8s", project_root=repo, summary="roll out",
                        params={"namespace": "shop-prod"}) as run:
        run.result = {"ok": True}
    ids["deploy"] = run.run_id
    return ids


def ids_of(answer: Any) -> list[str]:
    assert answer.status_code == 200, answer.get_json()
    return [r["run_id"] for r in answer.get_json()["runs"]]


def test_recent_searches_text_and_filters(client, mixed_runs) -> None:
    def recent(**query: str) -> list[str]:
        return ids_of(client.get("/api/runs/recent", query_string=query))

    assert set(recent()) == set(mixed_runs.values())
    assert recent(q="SHOP-PROD") == [mixed_runs["deploy"]]  # params, any case
    assert recent(q="carol") == [mixed_runs["nightly"]]  # actor
    assert recent(q="release/") == [mixed_runs["nightly"]]  # branch
    assert recent(q="everything") == [mixed_runs["lint"]]  # summary
    assert recent(q=mixed_runs["lint"][:20]) == [mixed_runs["lint"]]  # id
    assert recent(q="100%_") == []  # LIKE's wildcards are text
    assert recent(actor="dave") == [mixed_runs["lint"]]
    assert recent(branch="release/2.1") == [mixed_runs["nightly"]]
    assert mixed_runs["lint"] in recent(branch="main")
    assert recent(subtype="ci:nightly") == [mixed_runs["nightly"]]
    assert recent(since="2026-01-10", until="2026-01-10") == [mixed_runs["nightly"]]
    assert recent(since="2026-01-11", until="2026-02-01") == [mixed_runs["lint"]]
    assert recent(type="ci", status="failed") == [mixed_runs["lint"]]
    bad = client.get("/api/runs/recent?since=2026-13-01")
    assert bad.status_code == 422 and "since" in bad.get_json()["fields"]


def test_metrics_follow_the_filters(client, mixed_runs) -> None:
    summary = client.get("/api/metrics/summary?type=ci").get_json()
    assert (summary["total"], summary["ok"], summary["failed"]) == (2, 1, 1)
    only = client.get("/api/metrics/summary?actor=carol").get_json()
    assert only["total"] == 1 and only["last_status"] == "ok"
    assert client.get("/api/metrics/summary?until=nope").status_code == 422


def test_runs_page_filters_in_the_url_kpis_and_links(app, mixed_runs, repo: Path) -> None:
    git(repo, "remote", "add", "origin", "git@github.com:acme/shop.git")
    client = logged_in(app)
    html = page(client, "/?q=carol&since=2026-01-01")
    assert f'data-run-id="{mixed_runs["nightly"]}"' in html
    assert f'data-run-id="{mixed_runs["lint"]}"' not in html
    assert 'name="q" value="carol"' in html and 'name="since" value="2026-01-01"' in html
    assert '<p class="kpi__value" data-kpi="total">1</p>' in html  # the KPIs follow
    assert f'href="https://github.com/acme/shop/commit/{SHA}"' in html
    assert 'href="https://ci.example.com/jobs/77"' in html and ">release/2.1<" in html
    # The status quick filters keep the other filters.
    assert 'href="/?status=failed&amp;q=carol&amp;since=2026-01-01"' in html \
        or 'href="/?q=carol&amp;since=2026-01-01&amp;status=failed"' in html
    everything = page(client, "/?since=not-a-day")  # a bad day is ignored on the page
    assert all(f'data-run-id="{i}"' in everything for i in mixed_runs.values())


def test_metrics_shape_window_and_pipelines(client, mixed_runs) -> None:
    summary = client.get("/api/metrics/summary?minutes=60").get_json()
    assert summary["window_minutes"] == 60 and summary["total"] == 1  # only the deploy
    everything = client.get("/api/metrics/summary").get_json()
    assert everything["window_minutes"] is None
    assert everything["last_finished_at"] >= "2026-"
    lint = next(p for p in everything["pipelines"] if p["subtype"] == "ci:lint")
    assert lint == {"subtype": "ci:lint", "total": 1, "ok": 0, "failed": 1, "success_rate": 0.0,
                    "avg_duration_ms": 5000, "last_status": "failed",
                    "last_finished_at": lint["last_finished_at"]}
    assert lint["last_finished_at"].startswith("2026-02-01T08:00:05")


def test_metrics_update_is_published_coalesced_when_runs_end(app, client, repo: Path) -> None:
    from datetime import datetime

    bus = app.extensions["controlplane"].bus
    client.get("/healthz")  # the app follows its bus from its first request
    with bus.subscribe() as events:
        for number in range(12):  # a burst: runs ended and ingested within a moment
            last_started = datetime.now(UTC)
            ingest(client, pipeline="burst", status="ok", ci_run_id=f"b{number}")
        updates = []
        envelope = events.get(timeout=10)
        while envelope is not None:  # until 1.5 s without any event
            if envelope["type"] == "metrics:update":
                updates.append(datetime.fromisoformat(envelope["at"].replace("Z", "+00:00")))
            envelope = events.get(timeout=1.5)
    assert 1 <= len(updates) < 12, updates
    assert updates[-1] >= last_started, "the last run ended after the last update"
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(updates)]
    assert all(gap >= 0.95 for gap in gaps), gaps


def test_metrics_page_window_and_pipelines(app, mixed_runs) -> None:
    client = logged_in(app)
    html = page(client, "/metrics?window=30d")
    assert '<option value="30d" selected>' in html and 'data-minutes="43200"' in html
    assert 'data-cell="subtype">deploy:k8s</th>' in html  # today's run is in the window
    assert "ci:lint" not in html.split("data-pipelines-body")[1].split("</tbody>")[0]
    hour = page(client, "/metrics?window=1h")
    assert 'data-minutes="60"' in hour and '<option value="1h" selected>' in hour
    assert 'data-minutes="10080"' in page(client, "/metrics?window=bogus")  # 7 days


def visible(html: str, hook: str) -> bool:
    """Whether the element carrying *hook* is rendered without ``hidden``."""
    tag = re.search(rf"<[^>]*\s{hook}[\s>=][^>]*>", html)
    assert tag, f"no {hook} in the page"
    return " hidden" not in tag.group(0)


def test_failed_run_shows_failing_tests_then_error_then_output(app, repo: Path) -> None:
    with app.extensions["controlplane"].activated(), \
            tracked_run("test", "test:pytest", project_root=repo) as run:
        run.output("collected 3 items")
        run.result = {"failed_tests": ["tests/test_a.py::test_one", "tests/test_b.py::test_<two>"]}
        run.fail("exit_status", "pytest exited with 1")
    html = page(logged_in(app), f"/runs/{run.run_id}")
    failing = html.index("tests/<wbr>test_a.py::<wbr>test_one")  # breaks between, not inside
    assert "tests/<wbr>test_b.py::<wbr>test_&lt;two&gt;" in html
    assert visible(html, "data-run-failures")
    assert failing < html.index("pytest exited with 1") < html.index("collected 3 items")
    assert html.index("collected 3 items") < html.index('id="run-details-title"')


def python_project(repo: Path) -> None:
    """*repo* as a tiny Python project with one passing and one failing test."""
    (repo / "pyproject.toml").write_text("[project]\nname = 'demo'\nversion = '0'\n")
    (repo / "tests").mkdir(exist_ok=True)
    (repo / "tests" / "test_demo.py").write_text(
        "def test_ok():\n    assert True\n\n\ndef test_broken():\n    assert 1 == 2\n")


def test_queued_then_cancelled_run_page(app, client, repo: Path) -> None:
    python_project(repo)
    browser = logged_in(app)
    assert client.post("/api/executor/pause", json={}).status_code == 200
    queued = client.post("/testing/run", json={}, headers={"Prefer": "respond-async"})
    assert queued.status_code == 202, queued.get_json()
    run_id = queued.get_json()["run_id"]
    html = page(browser, f"/runs/{run_id}")
    assert "not yet (queued)" in html and 'data-run-started datetime=""' in html
    assert not visible(html, "data-output"), "an empty output box"
    assert "No output yet." in html
    assert client.post(f"/api/runs/{run_id}/cancel").get_json()["outcome"] == "cancelled"
    html = page(browser, f"/runs/{run_id}")
    assert visible(html, "data-run-cancelled") and not visible(html, "data-run-error")
    assert "This run was cancelled before it started." in html
    assert not visible(html, "data-output") and "This run printed nothing." in html
    client.post("/api/executor/resume", json={})


def test_drain_answers_what_remains_and_cancel_all_queued(app, client, repo: Path) -> None:
    python_project(repo)
    assert client.post("/api/executor/pause", json={}).status_code == 200
    run_id = client.post("/testing/run", json={},
                         headers={"Prefer": "respond-async"}).get_json()["run_id"]
    drained = client.post("/api/executor/drain", json={"timeout": 0}).get_json()
    assert drained["paused"] is True and drained["remaining"] == {"running": [],
                                                                  "queued": [run_id]}
    bad = client.post("/api/executor/drain", json={"timeout": "soon"})
    assert bad.status_code == 422 and "timeout" in bad.get_json()["fields"]
    answer = client.post("/api/executor/cancel-queued", json={}).get_json()
    assert answer["cancelled"] == [run_id] and answer["remaining"]["queued"] == []
    assert client.get(f"/api/runs/{run_id}").get_json()["run"]["status"] == "cancelled"
    assert client.post("/api/executor/cancel-queued", json={}).get_json()["cancelled"] == []
    client.post("/api/executor/resume", json={})


def test_drain_waits_300_seconds_by_default() -> None:
    import inspect

    from controlplane.core.executor import Executor

    assert inspect.signature(Executor.drain).parameters["timeout"].default == 300.0


def test_action_card_shows_its_latest_run_and_a_running_button(app, client, repo: Path) -> None:
    python_project(repo)
    browser = logged_in(app)
    card = page(browser, "/integrations/testing").split('data-action="/testing/run"')[1]
    card = card.split("</section>")[0]
    assert "data-last-run hidden" in card and ">Run now</button>" in card
    client.post("/api/executor/pause", json={})
    run_id = client.post("/testing/run", json={},
                         headers={"Prefer": "respond-async"}).get_json()["run_id"]
    card = page(browser, "/integrations/testing").split('data-action="/testing/run"')[1]
    card = card.split("</section>")[0]
    assert f'aria-disabled="true" data-running="{run_id}">Running…</button>' in card
    assert f'href="/runs/{run_id}"' in card and 'data-last="status">queued' in card
    client.post("/api/executor/cancel-queued", json={})
    card = page(browser, "/integrations/testing").split('data-action="/testing/run"')[1]
    assert 'data-last="status">cancelled' in card.split("</section>")[0]
    client.post("/api/executor/resume", json={})


def test_retry_failed_reruns_only_the_failing_tests(app, client, repo: Path) -> None:
    python_project(repo)
    executor = app.extensions["controlplane"].executor
    first = client.post("/testing/run", json={}, headers={"Prefer": "respond-async"})
    first_id = first.get_json()["run_id"]
    executor.wait(first_id, timeout=60)
    run = client.get(f"/api/runs/{first_id}").get_json()["run"]
    assert run["status"] == "failed" and run["result"]["total"] == 2
    assert run["result"]["failed_tests"] == ["tests/test_demo.py::test_broken"]
    html = page(logged_in(app), f"/runs/{first_id}")
    assert 'data-retry-supported="yes"' in html and "data-run-retry-failed" in html
    retry = client.post(f"/api/runs/{first_id}/retry-failed", json={},
                        headers={"Prefer": "respond-async"})
    assert retry.status_code == 202, retry.get_json()
    retry_id = retry.get_json()["run_id"]
    executor.wait(retry_id, timeout=60)
    again = client.get(f"/api/runs/{retry_id}").get_json()["run"]
    assert again["params"]["node_ids"] == ["tests/test_demo.py::test_broken"]
    assert again["rerun_of"] == first_id
    assert (again["result"]["total"], again["result"]["failed"]) == (1, 1)  # only that one
    with app.extensions["controlplane"].activated(), \
            tracked_run("test", "test:other", project_root=repo) as passed:
        passed.result = {"ok": True}
    refused = client.post(f"/api/runs/{passed.run_id}/retry-failed", json={})
    assert refused.status_code == 409 and "Rerun" in refused.get_json()["message"]


@pytest.mark.parametrize(("remote", "page_of_commit"), [
    ("git@github.com:acme/shop.git", "https://github.com/acme/shop/commit/"),
    ("https://gitlab.example.com/group/sub/app.git", "https://gitlab.example.com/group/sub/app/-/commit/"),
    ("ssh://git@github.com:22/acme/shop", "https://github.com/acme/shop/commit/"),
    ("https://user:secret@github.com/acme/shop.git", "https://github.com/acme/shop/commit/"),
    ("git@bitbucket.org:acme/shop.git", None),  # a host we cannot tell: no link
    ("/srv/git/shop.git", None),
    ("https://github.com/acme/<x>", None),
])
def test_commit_pages_of_remotes(remote: str, page_of_commit: str | None) -> None:
    from controlplane.ui.web.commit_links import web_base

    assert web_base(remote) == page_of_commit
