"""The dashboard as an installable web app, in Debian chromium: worker, offline shell, manifest."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane import tracked_run
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, CHROMIUM_TESTS, TIMEOUT_MS, LiveServer
from tests.conftest import TOKEN

pytestmark = CHROMIUM_TESTS
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

CONTROLLED = "() => navigator.serviceWorker.controller !== null"


def controlled_page(context: Any, path: str) -> Any:
    """A page of *path* once the service worker is installed and controls it."""
    page = context.new_page()
    page.goto(path)
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.wait_for_function(CONTROLLED)  # clients.claim() at activation
    return page


def last_seen(page: Any) -> dict[str, Any] | None:
    stored = page.evaluate("""() => {
        const key = Object.keys(localStorage).find((k) => k.startsWith('controlplane.lastSeen:'));
        return key ? localStorage.getItem(key) : null;
    }""")
    return json.loads(stored) if stored else None


def test_the_worker_registers_and_controls_the_pages(server: LiveServer, context: Any) -> None:
    page = controlled_page(context, "/")
    worker = page.evaluate("""async () => {
        const registration = await navigator.serviceWorker.getRegistration();
        return { scope: registration.scope, script: navigator.serviceWorker.controller.scriptURL };
    }""")
    assert worker == {"scope": f"{server.url}/", "script": f"{server.url}/sw.js"}
    expect(page.locator('link[rel="manifest"]')).to_have_attribute("href", "/manifest.webmanifest")
    manifest = context.new_cdp_session(page).send("Page.getAppManifest")
    assert manifest["errors"] == [], manifest["errors"]
    assert manifest["url"] == f"{server.url}/manifest.webmanifest"
    assert json.loads(manifest["data"])["scope"] == "/"


def test_chromium_finds_the_dashboard_installable(browser: Any, server: LiveServer,
                                                  tmp_path: Path) -> None:
    """In a profile on disk: Playwright's usual contexts are incognito, never installable."""
    context = browser.browser_type.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
        args=CHROMIUM_ARGS, base_url=server.url)
    try:
        context.set_default_timeout(TIMEOUT_MS)
        page = context.pages[0] if context.pages else context.new_page()
        page.goto(f"/login?token={TOKEN}")
        page.wait_for_function(CONTROLLED)
        cdp = context.new_cdp_session(page)
        errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
        assert errors == [], errors
    finally:
        context.close()


def test_offline_the_shell_says_offline_and_shows_what_it_last_saw(server: LiveServer,
                                                                     context: Any) -> None:
    with tracked_run("test", "test:seen-before", project_root=server.repo,
                     summary="seen before going offline") as seen:
        pass
    page = controlled_page(context, "/")
    expect(page.locator(f'tr[data-run-id="{seen.run_id}"]')).to_be_visible()
    page.wait_for_function("""(id) => Object.keys(localStorage).some(
        (k) => k.startsWith('controlplane.lastSeen:') && localStorage.getItem(k).includes(id))""",
                           arg=seen.run_id)
    assert last_seen(page) is not None

    offline_at = page.evaluate("new Date().toISOString()")
    context.set_offline(True)
    with tracked_run("test", "test:while-offline", project_root=server.repo):
        pass  # a run the browser never saw: the shell must not pretend to know it
    page.reload()
    shell = page.locator("[data-offline-shell]")
    expect(shell).to_be_visible()
    expect(shell.locator("[data-last-seen-text]")).to_contain_text("Offline — last seen ")
    expect(shell.locator("[data-last-seen-text]")).to_contain_text("Runs, ")
    kept = last_seen(page)  # the shell only reads it
    assert kept is not None and kept["savedAt"] <= offline_at
    expect(shell.locator("[data-last-seen-time]")).to_have_attribute("datetime", kept["savedAt"])
    expect(shell.locator("[data-last-seen-time]")).to_contain_text("Last seen data, as of ")
    expect(shell.locator("[data-last-seen-runs]")).to_contain_text("seen before going offline")
    expect(shell).not_to_contain_text("test:while-offline")
    expect(page.locator("[data-conn]")).to_have_attribute("data-state", "offline")
    assert page.evaluate("document.querySelector('meta[name=\"csrf-token\"]')") is None

    answer = page.evaluate("""() => fetch('/api/runs/recent', { credentials: 'same-origin' })
        .then((r) => `answered ${r.status}`, (e) => `failed: ${e.name}`)""")
    assert answer == "failed: TypeError"  # never a cached copy presented as current

    context.set_offline(False)  # the shell reloads the page that was asked for
    expect(page.locator('tr[data-run-id]').first).to_be_visible()
    expect(page.locator("[data-offline-shell]")).to_have_count(0)


def test_a_run_page_offline_shows_the_shell_with_its_last_status(server: LiveServer,
                                                                   context: Any) -> None:
    with tracked_run("test", "test:one", project_root=server.repo) as run:
        pass
    page = controlled_page(context, f"/runs/{run.run_id}")
    page.wait_for_function("""() => Object.keys(localStorage).some(
        (k) => k.startsWith('controlplane.lastSeen:') && localStorage.getItem(k).includes('ok'))""")
    context.set_offline(True)
    page.reload()
    expect(page.locator("[data-last-seen-text]")).to_contain_text("status ok")


@pytest.fixture
def ops_server(project: Path) -> Iterator[str]:
    """The dashboard mounted under /ops of a bare host app, served over real HTTP."""
    from flask import Flask
    from werkzeug.serving import make_server

    from controlplane.ui.web import ControlPlane, shutdown

    app = Flask(__name__)
    ControlPlane(app, repo=project, url_prefix="/ops", token=TOKEN, feed=False)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="pwa-ops-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
        shutdown(app)


def test_under_a_prefix_the_scope_is_the_prefix(browser: Any, ops_server: str,
                                                 project: Path) -> None:
    context = browser.new_context(base_url=ops_server)
    context.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    context.on("page", lambda p: p.on("pageerror", lambda error: errors.append(str(error))))
    try:
        page = context.new_page()
        page.goto(f"/ops/login?token={TOKEN}")
        page.wait_for_function(CONTROLLED)
        registration = page.evaluate(
            "navigator.serviceWorker.getRegistration().then((r) => r.scope)")
        assert registration == f"{ops_server}/ops/"
        cdp = context.new_cdp_session(page)
        found = cdp.send("Page.getAppManifest")
        assert found["errors"] == [], found["errors"]
        manifest = json.loads(found["data"])
        assert (manifest["start_url"], manifest["scope"]) == ("/ops/", "/ops/")
        context.set_offline(True)
        page.reload()
        expect(page.locator("[data-last-seen-text]")).to_contain_text("Offline — last seen ")
        assert page.evaluate("""() => fetch('/ops/api/runs/recent').then(
            () => 'answered', () => 'failed')""") == "failed"
    finally:
        context.close()
    assert not errors, errors
