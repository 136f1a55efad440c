"""A token per person: the runs and messages they post record who they are; removal locks out.

And the TLS proxy: its ``X-Forwarded-Proto`` counts only from a trusted address.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from controlplane.core.users import Users, UsersError
from tests.conftest import TOKEN
from tests.test_cli import cli

GITIGNORE = "/security/generate/gitignore"


def users_of(repo: Path) -> Users:
    return Users(repo / ".git" / "scp" / "users.json")


def log_in(client, token: str) -> str:
    """Log *client* in with *token*; returns the session's CSRF token."""
    answer = client.get(f"/login?token={token}")
    assert answer.status_code == 303, answer.data
    session_id = answer.headers["Set-Cookie"].partition("=")[2].partition(";")[0]
    plane = client.application.extensions["controlplane"]
    return plane.extra["sessions"].get(session_id).csrf


def test_cli_adds_lists_and_removes_users_keeping_only_a_digest(repo: Path) -> None:
    added = cli("users", "add", "alice", cwd=repo)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert len(token) >= 40 and "not stored" in added.stderr
    path = repo / ".git" / "scp" / "users.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token not in path.read_text()
    assert users_of(repo).user_for(token) == "alice"
    again = cli("users", "add", "alice", cwd=repo)
    assert again.returncode == 2 and "exists" in again.stderr
    bad = cli("users", "add", "--", "-rf", cwd=repo)
    assert bad.returncode == 2 and "user name" in bad.stderr
    assert cli("users", "list", cwd=repo).stdout.split() == ["alice"]
    assert cli("users", "remove", "alice", cwd=repo).returncode == 0
    assert cli("users", "list", cwd=repo).stdout.split() == []
    assert users_of(repo).user_for(token) is None
    missing = cli("users", "remove", "bob", cwd=repo)
    assert missing.returncode == 2 and "no user 'bob'" in missing.stderr


def test_a_users_token_records_them_as_the_actor(app, repo: Path) -> None:
    token = users_of(repo).add("alice")
    client = app.test_client()
    answer = client.post(GITIGNORE, json={}, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.json
    run = client.get(f"/api/runs/{answer.json['run_id']}",
                     headers={"Authorization": f"Bearer {TOKEN}"}).json["run"]
    assert run["actor"] == {"kind": "api", "name": "alice"}
    said = client.post("/api/chat", json={"text": "deployed"},
                       headers={"Authorization": f"Bearer {token}"})
    assert said.status_code == 201 and said.json["author"]["name"] == "alice"


def test_the_servers_token_records_the_server_user_not_a_person(app, repo: Path) -> None:
    users_of(repo).add("alice")
    answer = app.test_client().post(GITIGNORE, json={},
                                    headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.json["status"] == "ok"
    run = app.extensions["controlplane"].ledger.get(answer.json["run_id"])
    assert run["actor"]["kind"] == "api" and run["actor"]["name"] != "alice"


def test_a_users_login_records_them_from_the_browser(app, repo: Path) -> None:
    token = users_of(repo).add("bob")
    client = app.test_client()
    csrf = log_in(client, token)
    answer = client.post(GITIGNORE, json={},
                         headers={"X-CSRF-Token": csrf, "Origin": "http://localhost"})
    assert answer.status_code == 200, answer.json
    run = app.extensions["controlplane"].ledger.get(answer.json["run_id"])
    assert run["actor"] == {"kind": "web", "name": "bob"}


def test_removing_a_user_refuses_their_token_and_their_login(app, repo: Path) -> None:
    users = users_of(repo)
    token = users.add("carol")
    browser, script = app.test_client(), app.test_client()
    log_in(browser, token)
    bearer = {"Authorization": f"Bearer {token}"}
    assert script.get("/api/runs/recent", headers=bearer).status_code == 200
    assert browser.get("/api/runs/recent").status_code == 200
    users.remove("carol")
    assert script.get("/api/runs/recent", headers=bearer).status_code == 401
    assert browser.get("/api/runs/recent").status_code == 401
    assert browser.get(f"/login?token={token}").status_code == 401


def test_a_broken_users_file_keeps_the_server_token_working(app, repo: Path) -> None:
    path = repo / ".git" / "scp" / "users.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    client = app.test_client()
    assert client.get("/api/runs/recent", headers={"Authorization": "Bearer x" * 3}
                      ).status_code == 401
    assert client.get("/api/runs/recent",
                      headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    with pytest.raises(UsersError, match="cannot read"):
        users_of(repo).names()


def test_the_users_file_setting_points_elsewhere(make_app, tmp_path: Path) -> None:
    shared = Users(tmp_path / "team" / "users.json")
    token = shared.add("dave")
    app = make_app(SETTINGS={"users_file": str(shared.path)})
    answer = app.test_client().get("/api/runs/recent",
                                   headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200


# -- behind a TLS proxy ---------------------------------------------------------

HTTPS_ORIGIN = "https://cp.example.com"


def proxied_post(client, csrf: str, **environ: str):
    return client.post("/api/chat", data=json.dumps({"text": "hi"}),
                       content_type="application/json", base_url="http://cp.example.com",
                       headers={"X-CSRF-Token": csrf, "Origin": HTTPS_ORIGIN,
                                "X-Forwarded-Proto": "https"},
                       environ_overrides=environ)


@pytest.mark.parametrize(("proxies", "peer", "expected"), [
    ("127.0.0.1", "127.0.0.1", 201),  # the proxy on this machine says https: believed
    ("", "127.0.0.1", 403),  # no proxy configured: the header is anyone's claim
    ("10.0.0.5", "127.0.0.1", 403),  # a proxy is configured, but this is not it
])
def test_cookie_posts_through_a_tls_proxy(make_app, proxies: str, peer: str,
                                          expected: int) -> None:
    app = make_app(SETTINGS={"allowed_hosts": "cp.example.com", "trusted_proxies": proxies})
    client = app.test_client()
    login = client.get(f"/login?token={TOKEN}", base_url="http://cp.example.com",
                       headers={"X-Forwarded-Proto": "https"},
                       environ_overrides={"REMOTE_ADDR": peer})
    cookie = login.headers["Set-Cookie"]
    assert ("; Secure" in cookie) == (expected == 201)
    session_id = cookie.partition("=")[2].partition(";")[0]
    csrf = app.extensions["controlplane"].extra["sessions"].get(session_id).csrf
    answer = proxied_post(client, csrf, REMOTE_ADDR=peer)
    assert answer.status_code == expected, answer.json
