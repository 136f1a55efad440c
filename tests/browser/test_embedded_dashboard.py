"""The dashboard mounted under /ops of the example host app, in a real browser."""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.security import generate_password_hash

from tests.browser.conftest import CHROMIUM_TESTS, TIMEOUT_MS

pytestmark = CHROMIUM_TESTS
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "host_app"


@pytest.fixture
def host_url(project: Path) -> Iterator[str]:
    """The example host app served over real HTTP in a thread."""
    from werkzeug.serving import make_server

    from controlplane.ui.web import shutdown

    spec = importlib.util.spec_from_file_location("host_app_example", EXAMPLE / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    users = {"ana": {"password_hash": generate_password_hash("ana-pw"), "ops": True}}
    app = module.create_host_app(str(project), users, SSE_HEARTBEAT=0.5)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="host-app-server", daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
        shutdown(app)
        for name in ("host_admin", "host_auth", "routes_k8s"):
            sys.modules.pop(name, None)


def test_a_host_route_run_appears_live_on_the_embedded_dashboard(browser: Any,
                                                                  host_url: str) -> None:
    context = browser.new_context(base_url=host_url)
    context.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    context.on("page", lambda p: p.on("pageerror", lambda error: errors.append(str(error))))
    try:
        page = context.new_page()
        page.goto("/login")
        page.fill("input[name=username]", "ana")
        page.fill("input[name=password]", "ana-pw")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{host_url}/")
        page.goto("/ops/")
        expect(page.locator("[data-conn]")).to_have_attribute("data-state", "connected")

        answer = context.request.post("/k8s/apply", form={"manifest": "a.yaml"})
        assert answer.ok, answer.text()
        run_id = answer.json()["run_id"]

        row = page.locator(f'tr[data-run-id="{run_id}"]')
        expect(row).to_be_visible()  # announced on /ops/api/events, no reload
        expect(row).to_contain_text("applied 1 manifests")
        link = row.locator(f'a[href="/ops/runs/{run_id}"]')
        expect(link).to_have_count(1)
        link.first.click()
        page.wait_for_url(f"{host_url}/ops/runs/{run_id}")
        expect(page.locator("[data-run-summary]")).to_have_text("applied 1 manifests")
        assert not errors, errors
    finally:
        context.close()
