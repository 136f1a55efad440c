"""The page shells (no browser needed): escaped, no inline script or style, 404 pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import TOKEN

WEB = Path(__file__).resolve().parents[2] / "src" / "ui" / "web"


@pytest.fixture
def browser_client(app):
    """A client logged in with the login cookie, as a browser would be."""
    client = app.test_client()
    assert client.get(f"/login?token={TOKEN}").status_code == 303
    return client


def get_html(client, path: str):
    return client.get(path, headers={"Accept": "text/html"})


@pytest.mark.parametrize("path", ["/", "/metrics", "/integrations", "/integrations/testing"])
def test_each_page_renders_with_the_csrf_token_and_the_integrations(browser_client, path):
    answer = get_html(browser_client, path)
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert re.search(r'<meta name="csrf-token" content="[^"]{20,}">', page)
    assert 'href="/integrations/testing"' in page
    assert '<script type="module" src="/static/js/pages/' in page


def test_an_unknown_run_or_integration_is_a_404_page(browser_client):
    for path in ["/runs/20260101T000000000Z-00000000", "/runs/<script>", "/integrations/nope"]:
        answer = get_html(browser_client, path)
        assert answer.status_code == 404
        assert "Not found" in answer.get_data(as_text=True)
        assert "<script>" not in answer.get_data(as_text=True)


def test_pages_need_a_login(app):
    assert get_html(app.test_client(), "/").status_code == 401


# what each browser sends when a person opens a URL (Chromium 120+, Firefox 128 ESR, WebKitGTK)
NAVIGATION_ACCEPT = {
    "chromium": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
                "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
    "firefox": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
               "image/png,image/svg+xml,*/*;q=0.8",
    "webkit": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
}


@pytest.mark.parametrize("browser", sorted(NAVIGATION_ACCEPT))
def test_a_browser_opening_a_url_gets_error_pages_not_json(app, browser_client, browser):
    accept = {"Accept": NAVIGATION_ACCEPT[browser]}
    answers = {
        "not logged in": app.test_client().get("/", headers=accept),
        "wrong token": app.test_client().get("/login?token=wrong", headers=accept),
        "unknown run": browser_client.get("/runs/20260101T000000000Z-00000000", headers=accept),
        "unknown page": browser_client.get("/nosuchpage", headers=accept),
    }
    for name, answer in answers.items():
        assert answer.status_code in (401, 404), name
        assert answer.mimetype == "text/html", (name, answer.get_data(as_text=True)[:200])
        assert "<h1" in answer.get_data(as_text=True), name


@pytest.mark.parametrize("accept", [None, "*/*", "application/json",
                                    "application/json, text/plain, */*"])
def test_scripts_and_fetch_still_get_json_errors(app, accept):
    headers = {"Accept": accept} if accept else {}
    answer = app.test_client().get("/", headers=headers)
    assert answer.status_code == 401 and answer.json["error"] == "unauthorized"


def test_a_runs_parameters_read_as_the_json_the_script_shows(app, browser_client, repo):
    """An exec's argv with quotes, markup and accents: the page without JS shows the text
    JSON.stringify writes (run-details.js), escaped once, not tojson's ``\\u0027``."""
    import html
    import json

    from controlplane import tracked_run

    argv = ["python3", "-c", "print('hi') if 1 < 2 else \"x\" & 'é'"]
    with tracked_run("test", "test:quotes", project_root=repo, params={"argv": argv}) as run:
        pass
    page = get_html(browser_client, f"/runs/{run.run_id}").get_data(as_text=True)
    shown = re.search(r'<pre class="json">(.*?)</pre>', page, re.S)
    assert shown is not None
    assert html.unescape(shown.group(1)) == json.dumps(argv, indent=2, ensure_ascii=False)
    assert "\\u0027" not in page and "<2" not in page


def test_templates_have_no_inline_script_style_or_unescaped_output():
    templates = list((WEB / "templates").rglob("*.html"))
    assert templates  # they live under templates/controlplane/
    for template in templates:
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert not re.search(r"\sstyle=", text), template.name
        assert not re.search(r"\son[a-z]+=", text), template.name
        assert "|safe" not in text.replace(" ", ""), template.name


def test_modules_never_parse_html_from_strings():
    for module in (WEB / "static" / "js").rglob("*.js"):
        text = module.read_text()
        for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                       "eval(", "new Function"):
            assert banned not in text, f"{module.name} uses {banned}"
        assert not re.search(r"setAttribute\(\s*['\"]style", text), module.name
