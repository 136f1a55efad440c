"""``ControlPlane`` embedded in a host Flask app, tried as a new user would.

The host app is ``examples/host_app/`` copied to a directory outside any git
repository and pointed at the project with ``PROJECT_ROOT``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask, jsonify
from werkzeug.security import generate_password_hash

from controlplane import run_tracked
from controlplane.core.ledger import Ledger
from controlplane.ui.web import ControlPlane, shutdown
from tests.conftest import TOKEN, make_repo

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "host_app"
USERS = {"ana": {"password_hash": generate_password_hash("ana-pw"), "ops": True},
         "bob": {"password_hash": generate_password_hash("bob-pw"), "ops": False}}
ORIGIN = "http://localhost"


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The host app's own directory (a copy of the example), outside any git repository."""
    outside = tmp_path / "host-app"
    shutil.copytree(EXAMPLE, outside, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(outside)
    return outside


@pytest.fixture
def host_module(elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("host_app_example", elsewhere / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    for name in ("host_admin", "host_auth", "routes_k8s"):
        sys.modules.pop(name, None)
    while str(elsewhere) in sys.path:
        sys.path.remove(str(elsewhere))


@pytest.fixture
def host(host_module: ModuleType, repo: Path) -> Iterator[Flask]:
    app = host_module.create_host_app(str(repo), USERS, TESTING=True, SSE_HEARTBEAT=0.2)
    yield app
    shutdown(app)


def log_in(client: Any, name: str) -> None:
    answer = client.post("/login", data={"username": name, "password": f"{name}-pw"})
    assert answer.status_code == 303, answer.data


def csrf_of_page(client: Any, page: str = "/ops/") -> str:
    html = client.get(page, headers={"Accept": "text/html"}).get_data(as_text=True)
    found = re.search(r'<meta name="csrf-token" content="([^"]*)">', html)
    assert found and found.group(1), html[:500]
    return found.group(1)


def read_until(stream: Any, wanted: Any, limit: int = 200) -> list[dict]:
    """Envelopes from an SSE response until *wanted(envelope)* (heartbeats bound the wait)."""
    seen: list[dict] = []
    chunks = iter(stream.response)
    for _ in range(limit):
        chunk = next(chunks)
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        for line in text.splitlines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
                if wanted(seen[-1]):
                    return seen
    raise AssertionError(f"not announced; saw {[e['type'] for e in seen]}")


def test_decorated_host_route_run_is_listed_and_announced(host: Flask, repo: Path,
                                                          elsewhere: Path) -> None:
    client = host.test_client()
    log_in(client, "ana")
    stream = client.get("/ops/api/events", buffered=False)
    assert stream.status_code == 200
    try:
        answer = client.post("/k8s/apply", data={"manifest": ["a.yaml", "b.yaml", "c.yaml"]})
        assert answer.status_code == 200, answer.data
        run_id = answer.json["run_id"]
        events = read_until(stream, lambda e: e["type"] == "run:completed"
                            and e["run_id"] == run_id)
    finally:
        stream.close()
    assert events[-1]["data"]["summary"] == "applied 3 manifests"
    recorded = Ledger.open(repo).get(run_id)
    assert recorded["status"] == "ok" and recorded["summary"] == "applied 3 manifests"
    assert recorded["actor"]["name"] == "ana"  # the host's logged-in user, from authorize()
    listed = client.get("/ops/api/runs/recent").json["runs"]
    assert [r["run_id"] for r in listed] == [run_id]
    assert not (elsewhere / ".git").exists()


def test_a_failed_host_route_is_recorded_failed(host: Flask, repo: Path) -> None:
    client = host.test_client()
    log_in(client, "ana")
    body = client.post("/k8s/rollback").json
    assert body["status"] == "failed"
    assert Ledger.open(repo).get(body["run_id"])["summary"] == "rollback refused: no previous " \
                                                                "release"


def test_without_the_host_login_401_and_without_the_right_403(host: Flask) -> None:
    client = host.test_client()
    for path in ("/ops/api/runs/recent", "/ops/api/events", "/ops/", "/ops/static/js/api.js"):
        answer = client.get(path)
        assert answer.status_code == 401, path
    assert client.get("/ops/api/runs/recent").json["error"] == "unauthorized"
    assert client.post("/ops/api/chat", json={"text": "hi"}).status_code == 401
    log_in(client, "bob")  # logged in to the host, but not an ops user
    refused = client.get("/ops/api/runs/recent")
    assert refused.status_code == 403 and refused.json["error"] == "forbidden"


def test_our_token_still_works_for_scripts(host: Flask, repo: Path) -> None:
    token = (Ledger.open(repo).scp_dir / "token").read_text().strip()
    client = host.test_client()
    assert client.get("/ops/api/runs/recent",
                      headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/ops/api/runs/recent",
                      headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_host_routes_are_not_gated_by_us(host: Flask) -> None:
    client = host.test_client()
    assert client.get("/status").json == {"ok": True}  # no token, no login
    assert client.get("/").status_code == 200
    assert client.post("/k8s/apply").status_code == 401  # the host's own login_required
    missing = client.get("/no/such/host/page")
    assert missing.status_code == 404 and not missing.is_json  # the host's 404, not ours
    assert "Content-Security-Policy" not in client.get("/status").headers
    log_in(client, "ana")
    # A host POST needs no control plane CSRF token: that is the host's business.
    assert client.post("/k8s/apply").status_code == 200


def test_cookie_requests_need_csrf_and_same_origin_and_record_the_host_actor(
        host: Flask) -> None:
    client = host.test_client()
    log_in(client, "ana")
    token = csrf_of_page(client)
    no_token = client.post("/ops/api/chat", json={"text": "hi"}, headers={"Origin": ORIGIN})
    assert no_token.status_code == 403 and no_token.json["error"] == "csrf"
    other_site = client.post("/ops/api/chat", json={"text": "hi"},
                             headers={"Origin": "http://evil.example", "X-CSRF-Token": token})
    assert other_site.status_code == 403
    posted = client.post("/ops/api/chat", json={"text": "deploying"},
                         headers={"Origin": ORIGIN, "X-CSRF-Token": token})
    assert posted.status_code == 201, posted.data
    assert posted.json["author"] == {"kind": "web", "name": "ana"}
    other_login = host.test_client()
    log_in(other_login, "ana")  # another session: its own token, ours is refused there
    assert other_login.post("/ops/api/chat", json={"text": "x"},
                            headers={"Origin": ORIGIN, "X-CSRF-Token": token}).status_code == 403


def test_pages_and_static_live_under_the_prefix(host: Flask) -> None:
    client = host.test_client()
    log_in(client, "ana")
    html = client.get("/ops/", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert '<meta name="controlplane-base" content="/ops">' in html
    assert 'src="/ops/static/js/pages/runs.js"' in html
    assert client.get("/ops/static/js/base.js").status_code == 200
    assert client.get("/ops/integrations/testing").status_code == 200
    assert client.get("/ops/integrations/deploy").status_code == 404  # not chosen: not served
    actions = {a["path"] for a in client.get("/ops/api/actions").json["actions"]}
    assert actions and all(a.startswith(("/testing/", "/quality/")) for a in actions)
    document = client.get("/ops/api/openapi.json").json
    assert document["servers"] == [{"url": "/ops"}]
    assert "/api/runs/recent" in document["paths"] and "/k8s/apply" not in document["paths"]


def test_a_late_register_is_refused(host: Flask) -> None:
    from controlplane.core.actions import REGISTRY

    with pytest.raises(RuntimeError, match="after setup"):
        host.extensions["controlplane"].register(next(iter(REGISTRY.values())))


def plain_app(repo: Path, **options: Any) -> Flask:
    """A minimal host: one decorated route, the control plane at the root with our token."""
    app = Flask(f"host_{repo.name}")
    app.config.update(PROJECT_ROOT=str(repo), SSE_HEARTBEAT=0.2)

    @app.post("/work")
    @run_tracked("deploy", "deploy:work", summary_fn=lambda r: r["summary"])
    def work():
        return jsonify(ok=True, summary=f"work on {repo.name}")

    cp = ControlPlane(token=TOKEN, actions=None, feed=False, **options)
    cp.init_app(app)  # the factory pattern: PROJECT_ROOT read at init_app
    return app


def test_two_apps_on_two_repos_in_one_process(tmp_path: Path) -> None:
    repo_a, repo_b = make_repo(tmp_path / "a"), make_repo(tmp_path / "b")
    app_a, app_b = plain_app(repo_a), plain_app(repo_b)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    try:
        client_a, client_b = app_a.test_client(), app_b.test_client()
        stream_b = client_b.get("/api/events", headers=bearer, buffered=False)
        try:
            run_a = client_a.post("/work").json["run_id"]
            run_b = client_b.post("/work").json["run_id"]
            seen_b = read_until(stream_b, lambda e: e["type"] == "run:completed"
                                and e["run_id"] == run_b)
        finally:
            stream_b.close()
        assert run_a not in {e["run_id"] for e in seen_b}  # A's run is not announced on B
        ledger_a = [r["run_id"] for r in Ledger.open(repo_a).recent(limit=10)]
        ledger_b = [r["run_id"] for r in Ledger.open(repo_b).recent(limit=10)]
        assert ledger_a == [run_a] and ledger_b == [run_b]
        assert app_a.extensions["controlplane"].bus is not app_b.extensions["controlplane"].bus
        recent_a = client_a.get("/api/runs/recent", headers=bearer).json["runs"]
        assert recent_a[0]["summary"] == "work on a"
    finally:
        shutdown(app_a)
        shutdown(app_b)


def test_url_prefix_must_be_a_path() -> None:
    for bad in ("ops", "/ops/"):
        with pytest.raises(ValueError, match="url_prefix"):
            ControlPlane(url_prefix=bad)


def test_the_example_serves_from_outside_the_repo(repo: Path, elsewhere: Path) -> None:
    """The example as its docstring says to run it: a real server process, real HTTP."""
    env = {**os.environ, "PROJECT_ROOT": str(repo), "HOST_ADMIN_PASSWORD": "admin-pw",
           "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, "app.py", "--port", "0"], cwd=elsewhere, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line.startswith("serving on "), line + server.stderr.read()
        port = int(line.strip().rstrip("/").rsplit(":", 1)[1])
        login = HTTPConnection("127.0.0.1", port, timeout=10)
        login.request("POST", "/login", body="username=admin&password=admin-pw",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        answer = login.getresponse()
        assert answer.status == 303
        cookie = answer.getheader("Set-Cookie").split(";")[0]
        events = HTTPConnection("127.0.0.1", port, timeout=10)
        events.request("GET", "/ops/api/events", headers={"Cookie": cookie})
        stream = events.getresponse()
        assert stream.status == 200
        assert stream.readline().startswith(b"retry:")  # subscribed before the run starts
        apply = HTTPConnection("127.0.0.1", port, timeout=10)
        apply.request("POST", "/k8s/apply", body="manifest=a.yaml&manifest=b.yaml",
                      headers={"Cookie": cookie,
                               "Content-Type": "application/x-www-form-urlencoded"})
        run_id = json.loads(apply.getresponse().read())["run_id"]
        completed = None
        while completed is None:
            line = stream.readline()
            assert line, "the stream ended"
            if line.startswith(b"data: "):
                envelope = json.loads(line[6:])
                if envelope["type"] == "run:completed" and envelope["run_id"] == run_id:
                    completed = envelope
        assert completed["data"]["summary"] == "applied 2 manifests"
        events.close()
        assert Ledger.open(repo).get(run_id)["summary"] == "applied 2 manifests"
    finally:
        server.terminate()
        server.communicate(timeout=30)
