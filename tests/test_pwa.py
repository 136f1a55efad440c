"""The PWA's files over the Flask client: manifest, service worker, offline shell, CSP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from controlplane.ui.web import ControlPlane, shutdown
from tests.conftest import TOKEN

STATIC = Path(__file__).resolve().parents[1] / "src" / "ui" / "web" / "static"
PAGES = ("/", "/metrics", "/integrations")


@pytest.fixture
def ops(repo: Path) -> Iterator[FlaskClient]:
    """The control plane under /ops of a bare host app, with the Bearer token."""
    app = Flask(__name__)
    ControlPlane(app, repo=repo, url_prefix="/ops", token=TOKEN, feed=False)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    yield client
    shutdown(app)


def directives(policy: str) -> dict[str, list[str]]:
    found = {}
    for part in policy.split(";"):
        name, *values = part.split()
        found[name] = values
    return found


def effective(policy: str, directive: str) -> list[str]:
    """The sources a CSP directive allows, following CSP 3's fallback chain."""
    chains = {"worker-src": ["worker-src", "child-src", "script-src", "default-src"],
              "manifest-src": ["manifest-src", "default-src"]}
    found = directives(policy)
    for name in chains[directive]:
        if name in found:
            return found[name]
    return ["*"]


def test_the_manifest_makes_the_dashboard_installable(client: FlaskClient) -> None:
    answer = client.get("/manifest.webmanifest")
    assert answer.status_code == 200
    assert answer.mimetype == "application/manifest+json"
    manifest = answer.get_json(force=True)
    assert manifest["name"] and manifest["short_name"]
    assert (manifest["start_url"], manifest["scope"], manifest["display"]) == ("/", "/",
                                                                              "standalone")
    assert manifest["theme_color"] and manifest["background_color"]
    sizes = {icon["sizes"]: icon for icon in manifest["icons"]}
    assert sizes["any"]["type"] == "image/svg+xml"
    assert {"192x192", "512x512"} <= sizes.keys()
    for icon in manifest["icons"]:
        fetched = client.get(icon["src"])
        assert fetched.status_code == 200 and fetched.mimetype == icon["type"], icon
    png = client.get(sizes["512x512"]["src"]).data
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (512, 512)


def test_under_a_prefix_the_manifest_and_worker_belong_to_the_prefix(ops: FlaskClient) -> None:
    manifest = ops.get("/ops/manifest.webmanifest").get_json(force=True)
    assert (manifest["id"], manifest["start_url"], manifest["scope"]) == ("/ops/",) * 3
    assert all(icon["src"].startswith("/ops/static/") for icon in manifest["icons"])
    worker = ops.get("/ops/sw.js")
    assert worker.status_code == 200 and worker.mimetype == "text/javascript"
    page = ops.get("/ops/").get_data(as_text=True)
    assert '<link rel="manifest" href="/ops/manifest.webmanifest"' in page
    assert ops.get("/sw.js").status_code == 404  # the host's root is not ours


def test_the_worker_is_served_from_the_scope_root(client: FlaskClient) -> None:
    answer = client.get("/sw.js")
    assert answer.status_code == 200
    assert answer.mimetype == "text/javascript"  # nosniff: a worker needs a JS type
    assert answer.headers["Cache-Control"] == "no-cache"  # a new version is seen at once
    assert "Service-Worker-Allowed" not in answer.headers  # /sw.js's own scope is "/"
    assert answer.get_data() == (STATIC / "sw.js").read_bytes()


def test_the_csp_allows_the_worker_and_the_manifest(client: FlaskClient) -> None:
    for path in ("/", "/sw.js", "/manifest.webmanifest", "/offline"):
        policy = client.get(path).headers["Content-Security-Policy"]
        assert "'self'" in effective(policy, "worker-src"), (path, policy)
        assert "'self'" in effective(policy, "manifest-src"), (path, policy)


def test_the_pwa_files_need_the_login(app: Flask) -> None:
    anonymous = app.test_client()
    for path in ("/sw.js", "/manifest.webmanifest", "/offline"):
        assert anonymous.get(path).status_code == 401, path


def test_every_page_links_the_manifest_and_registers_the_worker_once(client: FlaskClient) -> None:
    for path in PAGES:
        page = client.get(path).get_data(as_text=True)
        assert page.count('rel="manifest"') == 1, path
        assert 'crossorigin="use-credentials"' in page  # the manifest is behind the login
        assert page.count("/static/js/pwa.js") == 1, path
    assert len(re.findall(r"serviceWorker\.register\(", (STATIC / "js" / "pwa.js").read_text())) \
        == 1
    for script in (STATIC / "js").rglob("*.js"):
        if script.name != "pwa.js":
            assert "serviceWorker.register" not in script.read_text(), script


def test_the_offline_shell_holds_no_session_secret(client: FlaskClient) -> None:
    """It is kept in the browser's cache: no CSRF token in it."""
    page = client.get("/offline")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'name="csrf-token"' not in text
    assert "data-offline-shell" in text and 'data-state="offline"' in text


def shell_files() -> list[str]:
    source = (STATIC / "sw.js").read_text()
    block = re.search(r"const SHELL = \[(.*?)\]", source, re.S)
    assert block, "sw.js lists its SHELL"
    return re.findall(r"'([^']+)'", block.group(1))


def module_imports(path: Path) -> set[Path]:
    """*path* and every module it imports, transitively."""
    seen: set[Path] = set()
    todo = [path]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for name in re.findall(r"^import .*? from '(\./[^']+)';", current.read_text(), re.M):
            todo.append((current.parent / name).resolve())
    return seen


def test_the_cached_shell_is_complete(client: FlaskClient) -> None:
    """Every shell file exists (else the install fails), and the shell's JS is all in it."""
    shell = shell_files()
    for path in shell:
        assert client.get(f"/{path}").status_code == 200, path
    needed = {f"static/{p.relative_to(STATIC).as_posix()}"
              for p in module_imports(STATIC / "js" / "pwa.js")}
    assert needed <= set(shell), needed - set(shell)
    assert "offline" in shell and "static/css/app.css" in shell


def test_the_worker_never_answers_data_from_its_cache() -> None:
    """The worker's own list of what it leaves to the network: the API and the streams."""
    source = (STATIC / "sw.js").read_text()
    never = re.search(r"const NEVER = \[(.*?)\]", source, re.S)
    assert never, "sw.js lists what it never answers"
    assert {"api/", "ws/", "login", "logout"} <= set(re.findall(r"'([^']+)'", never.group(1)))
    assert not any(path.startswith(("api/", "ws/")) for path in shell_files())
