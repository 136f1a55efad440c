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
