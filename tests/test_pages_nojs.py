"""The pages hold their data as HTML (JavaScript off), and action forms post without JS.

A logged-in browser (the login cookie) reads the pages and posts forms the way a browser
with JavaScript disabled does: ``application/x-www-form-urlencoded`` with the page's
``csrf_token`` field and a same-origin ``Origin``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel, Field, SecretStr

from controlplane import tracked_run
from controlplane.core.actions import REGISTRY, Action, ActionContext, register
from controlplane.core.ledger import Ledger
from tests.conftest import TOKEN

ORIGIN = "http://localhost"


class WipeParams(BaseModel):
    target: str = Field("scratch", pattern=r"^[a-z]+$")
    areas: list[str] = Field(default_factory=list)
    password: SecretStr | None = None


def wipe(ctx: ActionContext, params: WipeParams) -> dict:
    ctx.run.output(f"wiping {params.target} {params.areas}")
    return {"ok": True, "wiped": params.target}


@pytest.fixture
def wipe_action():
    action = Action(path="/demo/wipe", subtype="destroy:demo", title="Wipe the scratch area",
                    params=WipeParams, service=wipe, destructive=True)
    register(action)
    yield action
    REGISTRY.pop(action.path, None)


def logged_in(app):
    client = app.test_client()
    assert client.get(f"/login?token={TOKEN}").status_code == 303
    return client


def page(client, path: str) -> str:
    answer = client.get(path, headers={"Accept": "text/html"})
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    return answer.get_data(as_text=True)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def post_form(client, path: str, fields: dict, csrf: str | None, origin: str = ORIGIN):
    data = dict(fields) if csrf is None else {**fields, "csrf_token": csrf}
    return client.post(path, data=data, headers={"Origin": origin, "Accept": "text/html"})


def wait_final(app, repo: Path, run_id: str) -> dict:
    """The run once its job is done (the executor's own wait), as the ledger holds it."""
    app.extensions["controlplane"].executor.wait(run_id, timeout=60)
    return Ledger.open(repo).get(run_id)


def test_runs_list_metrics_and_run_page_hold_their_data(app, repo: Path) -> None:
    with app.extensions["controlplane"].activated(), \
            tracked_run("test", "test:nojs", project_root=repo, summary="<b>sum</b>") as run:
        run.output("line \x1b[31mone\x1b[0m <i>")
        run.result = {"passed": 3}
    client = logged_in(app)
    runs = page(client, "/")
    assert f'<tr data-run-id="{run.run_id}" data-status="ok">' in runs
    assert "&lt;b&gt;sum&lt;/b&gt;" in runs and "<b>sum</b>" not in runs
    assert 'href="/?status=failed"' in runs and 'method="get"' in runs
    assert 'data-kpi="total">1<' in runs
    assert f'data-run-id="{run.run_id}"' not in page(client, "/?status=failed")
    run_html = page(client, f"/runs/{run.run_id}")
    assert 'data-run-status data-status="ok">ok<' in run_html
    assert '<div class="line line--stdout">line one &lt;i&gt;</div>' in run_html
    assert "<dt>passed</dt><dd>3</dd>" in run_html
    metrics = page(client, "/metrics")
    assert re.search(r'<th scope="row">test</th><td class="num">1</td>', metrics)


def test_load_more_is_a_link_to_the_next_page(app, repo: Path) -> None:
    with app.extensions["controlplane"].activated():
        for _ in range(51):
            with tracked_run("test", "test:many", project_root=repo):
                pass
    html = page(logged_in(app), "/")
    assert html.count('<tr data-run-id="2') == 50
    link = re.search(r'<a class="btn" href="(/\?before=[^"]+)" data-load-more>', html)
    assert link, "no Load more link"
    older = page(logged_in(app), link.group(1).replace("&amp;", "&"))
    assert older.count('<tr data-run-id="2') == 1


def test_an_action_form_is_rendered_with_its_fields(app) -> None:
    html = page(logged_in(app), "/integrations/testing")
    form = html[html.index('data-action="/testing/run"'):]
    assert '<form class="action-form" method="post" action="/testing/run"' in form
    assert 'name="csrf_token"' in form and 'name="maxfail"' in form
    assert ">Run now</button>" in form


def test_a_form_post_starts_the_run_and_answers_303_to_its_page(app, repo: Path) -> None:
    client = logged_in(app)
    csrf = csrf_of(page(client, "/integrations/testing"))
    answer = post_form(client, "/testing/generate/template", {"module": "x.py"}, csrf)
    assert answer.status_code == 303, answer.get_data(as_text=True)[:300]
    run_id = answer.headers["Location"].rsplit("/", 1)[-1]
    assert answer.headers["Location"] == f"/runs/{run_id}"
    run = wait_final(app, repo, run_id)
    assert run["actor"]["kind"] == "web"
    assert page(client, f"/runs/{run_id}").count("data-run-status") == 1


def test_a_form_post_without_the_token_or_from_another_origin_is_refused(app, repo) -> None:
    client = logged_in(app)
    csrf = csrf_of(page(client, "/integrations/testing"))
    for token, origin in ((None, ORIGIN), ("wrong" * 8, ORIGIN), (csrf, "http://evil.test")):
        answer = post_form(client, "/testing/generate/template", {}, token, origin)
        assert answer.status_code == 403 and answer.json["error"] == "csrf"
    assert Ledger.open(repo).recent(limit=5) == []


def test_bad_input_comes_back_as_the_form_with_the_message(app, repo) -> None:
    client = logged_in(app)
    csrf = csrf_of(page(client, "/integrations/testing"))
    answer = post_form(client, "/testing/run", {"maxfail": "0", "keyword": "<x>"}, csrf)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert re.search(r'id="f-testing-run-maxfail-error">[^<]*greater than or equal to 1', html)
    assert 'value="&lt;x&gt;"' in html  # what was typed stays, escaped
    assert Ledger.open(repo).recent(limit=5) == []


def test_a_destructive_form_asks_on_a_page_then_runs(wipe_action, make_app, repo) -> None:
    app = make_app()
    client = logged_in(app)
    csrf = csrf_of(page(client, "/integrations/demo"))
    fields = {"target": "cache", "areas": '["a", "b"]', "password": "hunter2-secret"}
    answer = post_form(client, "/demo/wipe", fields, csrf)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "Run a destructive action?" in html
    assert 'name="confirm" value="yes"' in html and 'value="cache"' in html
    assert "hunter2-secret" not in html  # a secret is entered again, never sent back
    assert Ledger.open(repo).recent(limit=5) == []
    confirmed = post_form(client, "/demo/wipe", {"target": "cache", "areas": "a\nb",
                                                 "confirm": "yes"}, csrf)
    assert confirmed.status_code == 303
    run = wait_final(app, repo, confirmed.headers["Location"].rsplit("/", 1)[-1])
    assert run["status"] == "ok" and run["params"]["areas"] == ["a", "b"]


def test_json_answers_are_unchanged(client) -> None:
    answer = client.post("/testing/run", json={"maxfail": 0})
    assert answer.status_code == 422 and answer.json["fields"]["maxfail"]


def test_origin_null_counts_only_with_a_same_origin_fetch_site(app, repo) -> None:
    """Chromium posts a form as ``Origin: null`` under ``Referrer-Policy: no-referrer``."""
    client = logged_in(app)
    csrf = csrf_of(page(client, "/integrations/testing"))
    for site, status in (("cross-site", 403), (None, 403), ("same-origin", 303)):
        headers = {"Origin": "null", **({"Sec-Fetch-Site": site} if site else {})}
        answer = client.post("/testing/generate/template", headers=headers,
                             data={"csrf_token": csrf, "module": "y.py"})
        assert answer.status_code == status, (site, answer.get_data(as_text=True)[:200])
    wait_final(app, repo, answer.headers["Location"].rsplit("/", 1)[-1])
