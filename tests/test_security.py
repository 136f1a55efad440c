"""The security layer as a browser and a script meet it: Host, token, cookie, CSRF, headers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from flask import render_template_string

from controlplane.ui.web import security

TOKEN = "t0k3n-for-tests"
INGEST = "ingest-only-t0k3n"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
SAME_ORIGIN = "http://localhost"
WS_UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


@pytest.fixture
def app(make_app):
    return make_app(TOKEN=TOKEN, SETTINGS={"ingest_token": INGEST, "allowed_hosts":
                                           "cp.example.internal, other.internal"})


def log_in(client) -> tuple[str, str]:
    """Exchange the token for a cookie; returns (cookie name, session id)."""
    answer = client.get(f"/login?token={TOKEN}&next=/runs")
    assert answer.status_code == 303
    name, _, rest = answer.headers["Set-Cookie"].partition("=")
    return name, rest.partition(";")[0]


def csrf_of(app, session_id: str) -> str:
    return app.extensions["controlplane"].extra["sessions"].get(session_id).csrf


def test_no_token_or_a_wrong_one_is_401_json(app) -> None:
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}):
        answer = client.get("/api/runs/recent", headers=headers)
        assert answer.status_code == 401, headers
        assert answer.json["error"] == "unauthorized"


def test_bearer_token_is_let_in(app) -> None:
    answer = app.test_client().get("/api/runs/recent", headers=BEARER)
    assert answer.status_code == 200 and answer.json["runs"] == []


def test_healthz_is_open(app) -> None:
    answer = app.test_client().get("/healthz")
    assert answer.status_code == 200 and answer.json == {"ok": True}


def test_a_browser_without_login_gets_a_page_saying_what_to_do(app) -> None:
    answer = app.test_client().get("/", headers={"Accept": "text/html"})
    assert answer.status_code == 401 and answer.mimetype == "text/html"
    assert b"login URL" in answer.data and b"<script" not in answer.data


def test_login_sets_a_strict_httponly_cookie_and_redirects(app) -> None:
    answer = app.test_client().get(f"/login?token={TOKEN}&next=/runs%3Ftype%3Dtest")
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/runs?type=test"
    cookie = answer.headers["Set-Cookie"]
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    assert TOKEN not in cookie


@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example", "/\\evil",
                                    "javascript:alert(1)", "evil", "/\r\nSet-Cookie: x=1",
                                    "///evil.example", ""])
def test_login_redirects_only_to_a_path_of_this_server(app, target: str) -> None:
    answer = app.test_client().get("/login", query_string={"token": TOKEN, "next": target})
    assert answer.status_code == 303 and answer.headers["Location"] == "/"


def test_a_wrong_token_does_not_log_in(app) -> None:
    client = app.test_client()
    answer = client.get("/login?token=wrong&next=/")
    assert answer.status_code == 401 and answer.json["error"] == "unauthorized"
    assert "Set-Cookie" not in answer.headers
    page = client.get("/login?token=wrong", headers={"Accept": "text/html"})
    assert page.status_code == 401 and page.mimetype == "text/html"
    assert client.get("/api/runs/recent").status_code == 401


def test_the_cookie_opens_get_requests(app) -> None:
    client = app.test_client()
    log_in(client)
    assert client.get("/api/runs/recent").status_code == 200


def test_a_cookie_post_needs_the_csrf_token_and_a_same_origin(app) -> None:
    client = app.test_client()
    _, session_id = log_in(client)
    csrf = csrf_of(app, session_id)
    missing = client.post("/logout", headers={"Origin": SAME_ORIGIN})
    assert missing.status_code == 403 and missing.json["error"] == "csrf"
    wrong = client.post("/logout", headers={"Origin": SAME_ORIGIN, "X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403 and wrong.json["error"] == "csrf"
    foreign = client.post("/logout", headers={"X-CSRF-Token": csrf,
                                              "Origin": "http://evil.example"})
    assert foreign.status_code == 403 and foreign.json["error"] == "csrf"
    no_origin = client.post("/logout", headers={"X-CSRF-Token": csrf})
    assert no_origin.status_code == 403
    cross_site = client.post("/logout", headers={"X-CSRF-Token": csrf,
                                                 "Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403
    assert client.get("/api/runs/recent").status_code == 200  # all refused: still logged in
    done = client.post("/logout", headers={"X-CSRF-Token": csrf, "Origin": SAME_ORIGIN})
    assert done.status_code == 204


def test_sec_fetch_site_same_origin_stands_in_for_origin(app) -> None:
    client = app.test_client()
    _, session_id = log_in(client)
    answer = client.post("/logout", headers={"X-CSRF-Token": csrf_of(app, session_id),
                                             "Sec-Fetch-Site": "same-origin"})
    assert answer.status_code == 204


def test_the_csrf_token_reaches_templates(app) -> None:
    client = app.test_client()
    name, session_id = log_in(client)
    with app.test_request_context("/", headers={"Cookie": f"{name}={session_id}"}):
        assert security.check_request() is None
        assert render_template_string("{{ csrf_token() }}") == csrf_of(app, session_id)
    with app.test_request_context("/", headers=BEARER):
        assert security.check_request() is None
        assert render_template_string("{{ csrf_token() }}") == ""


def test_bearer_requests_need_no_csrf(app) -> None:
    answer = app.test_client().post("/logout", headers={**BEARER,
                                                        "Origin": "http://evil.example"})
    assert answer.status_code == 204


def test_a_cookie_is_refused_after_logout(app) -> None:
    client = app.test_client()
    name, session_id = log_in(client)
    client.post("/logout", headers={"X-CSRF-Token": csrf_of(app, session_id),
                                    "Origin": SAME_ORIGIN})
    replay = app.test_client()
    replay.set_cookie(name, session_id)
    answer = replay.get("/api/runs/recent")
    assert answer.status_code == 401 and answer.json["error"] == "unauthorized"


@pytest.mark.parametrize("path", ["/healthz", "/api/runs/recent", f"/login?token={TOKEN}",
                                  "/api/events"])
def test_a_foreign_host_is_refused_first(app, path: str) -> None:
    answer = app.test_client().get(path, headers={**BEARER, "Host": "evil.example:8000"})
    assert answer.status_code == 403 and answer.json["error"] == "forbidden_host"
    assert "Set-Cookie" not in answer.headers


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1", "127.0.0.1:5000", "[::1]:8000",
                                  "LOCALHOST:1", "cp.example.internal:8443", "other.internal"])
def test_allowed_hosts_with_any_port(app, host: str) -> None:
    assert app.test_client().get("/healthz", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["localhost.evil.example", "127.0.0.1.nip.io", "",
                                  "cp.example.internal.evil", "[::2]:8000"])
def test_names_that_only_look_allowed_are_refused(app, host: str) -> None:
    assert app.test_client().get("/healthz", headers={"Host": host}).status_code == 403


def test_the_configured_bind_host_is_allowed(make_app) -> None:
    app = make_app(TOKEN=TOKEN, SETTINGS={"host": "192.0.2.7"})
    assert app.test_client().get("/healthz", headers={"Host": "192.0.2.7:8000"}).status_code \
        == 200


def test_security_headers_on_every_answer(app) -> None:
    client = app.test_client()
    answers = {
        "401 json": client.get("/api/runs/recent", headers={"Origin": "http://evil.example"}),
        "401 html": client.get("/", headers={"Accept": "text/html"}),
        "healthz": client.get("/healthz"),
        "404": client.get("/no/such/page", headers=BEARER),
        "403 host": client.get("/healthz", headers={"Host": "evil.example"}),
        "json": client.get("/api/runs/recent", headers={**BEARER,
                                                        "Origin": "http://evil.example"}),
        "login": client.get(f"/login?token={TOKEN}"),
    }
    assert answers["404"].status_code == 404
    for name, answer in answers.items():
        headers = answer.headers
        assert headers["Content-Security-Policy"] == security.CONTENT_SECURITY_POLICY, name
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff", name
        assert headers["Referrer-Policy"] == "no-referrer", name
        assert headers["X-Frame-Options"] == "DENY", name
        assert not [k for k, _ in headers.items() if k.lower().startswith("access-control")]
        if answer.mimetype == "application/json":
            assert headers["Cache-Control"] == "no-store", name


def test_the_ingest_token_may_only_ingest(app) -> None:
    client = app.test_client()
    ingest = {"Authorization": f"Bearer {INGEST}"}
    for method, path in [("GET", "/api/runs/recent"), ("POST", "/testing/run"),
                         ("GET", "/api/runs/ingest"), ("POST", "/logout")]:
        answer = client.open(path, method=method, headers=ingest, json={})
        assert answer.status_code == 403, (method, path)
        assert answer.json["error"] == "forbidden"
    assert client.post("/api/runs/ingest", headers=ingest, json={}).status_code not in (401, 403)


def test_without_an_ingest_token_setting_no_ingest_token_works(make_app) -> None:
    app = make_app(TOKEN=TOKEN)
    answer = app.test_client().post("/api/runs/ingest", headers={"Authorization": "Bearer "})
    assert answer.status_code == 401


def test_a_websocket_needs_a_same_origin(app) -> None:
    client = app.test_client()
    foreign = client.get("/ws/events", headers={**BEARER, **WS_UPGRADE,
                                                "Origin": "http://evil.example"})
    assert foreign.status_code == 403 and foreign.json["error"] == "forbidden_origin"
    log_in(client)
    foreign = client.get("/ws/events", headers={**WS_UPGRADE, "Origin": "http://evil.example"})
    assert foreign.status_code == 403
    no_origin = client.get("/ws/events", headers=WS_UPGRADE)  # a browser always sends Origin
    assert no_origin.status_code == 403


def test_the_token_file_is_private_and_reused(make_app, repo: Path, monkeypatch) -> None:
    monkeypatch.delenv("CONTROLPLANE_TOKEN", raising=False)
    first = make_app(TOKEN=None)
    path = repo / ".git" / "scp" / "token"
    token = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(token) >= 43
    assert first.extensions["controlplane"].token == token
    client = first.test_client()
    assert client.get("/api/runs/recent",
                      headers={"Authorization": f"Bearer {token}"}).status_code == 200
    again = make_app(TOKEN=None)
    assert again.extensions["controlplane"].token == token
    path.chmod(0o644)
    assert security.token_from_file(path) == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_token_setting_wins_over_the_file(make_app, repo: Path, monkeypatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_TOKEN", "from-the-environment-0123")
    app = make_app(TOKEN=None)
    assert app.extensions["controlplane"].token == "from-the-environment-0123"
    assert not (repo / ".git" / "scp" / "token").exists()


def test_an_empty_token_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("\n")
    token = security.token_from_file(path)
    assert token and path.read_text().strip() == token
    assert os.listdir(tmp_path) == ["token"]


def test_login_url() -> None:
    assert security.login_url("127.0.0.1", 8000, "a+b/c") == \
        "http://127.0.0.1:8000/login?token=a%2Bb%2Fc"
    assert security.login_url("0.0.0.0", 80, "t").startswith("http://127.0.0.1:80/")
    assert security.login_url("::1", 8000, "t").startswith("http://[::1]:8000/")
    assert security.login_url("::", 8000, "t").startswith("http://[::1]:8000/")


def test_old_sessions_are_dropped_beyond_the_limit() -> None:
    store = security.Sessions(limit=3)
    made = [store.create() for _ in range(5)]
    assert len(store) == 3 and store.get(made[0].session_id) is None
    assert store.get(made[-1].session_id) == made[-1]
    assert made[-1].csrf != made[-1].session_id
