"""Per integration, one action tried from its page: the form, "Run now", and the run ending."""

from __future__ import annotations

import re
from typing import Any

import pytest

from controlplane.core.actions import by_integration, load_integrations
from tests.browser.test_dashboard import action_card, open_page, start_from_form

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api").expect

load_integrations()

# integration -> (action, {field label: value}, the status it must end with)
TRIED = {
    "audit": ("/audit/install-tool", {"Tool": "jq"}, "ok"),  # a dry run by default
    "backup": ("/backup/create", {"Paths": "README.md"}, "ok"),
    "content": ("/content/encrypt", {"Input": "README.md"}, "failed"),  # the vault is locked
    "docker": ("/docker/generate/dockerignore", {}, "ok"),
    "docs": ("/docs/generate/readme", {}, "ok"),
    "git": ("/git/ledger/pull", {}, "failed"),  # this project has no remote
    "infra": ("/infra/env/generate-example", {}, "ok"),
    "k8s": ("/k8s/generate/manifests", {}, "failed"),  # a library: it serves nothing
    "packages": ("/packages/install", {}, "failed"),  # no virtual environment here
    "pages": ("/pages/ci", {}, "failed"),  # no docs system to build
    "quality": ("/quality/generate/config", {}, "ok"),
    "security": ("/security/generate/gitignore", {}, "ok"),
    "terraform": ("/terraform/generate", {}, "ok"),
    "testing": ("/testing/generate/template", {"Module": "tests/test_demo.py"}, "ok"),
    "vault": ("/vault/lock", {}, "ok"),
}


def test_every_integration_has_a_tried_action() -> None:
    assert set(TRIED) == set(by_integration())


@pytest.mark.parametrize("integration", sorted(TRIED))
def test_an_action_from_its_page(integration: str, server: Any, context: Any) -> None:
    path, fields, status = TRIED[integration]
    page = open_page(context, f"/integrations/{integration}")
    card = action_card(page, path)
    for label, value in fields.items():
        field = card.get_by_label(re.compile(rf"^{label}\b"))
        if field.evaluate("node => node.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    run_id = start_from_form(page, path)
    run_page = open_page(context, f"/runs/{run_id}")
    expect(run_page.locator("[data-run-status]")).to_have_text(status)
