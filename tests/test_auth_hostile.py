"""Logins, reruns and chat as an attacker or an unlucky user meets them (issue 12, items 6, 7).

Logins end when the token they were made from is rotated, survive a restart, and one
token holder cannot evict the others; a page elsewhere cannot log the browser in; a
rerun of a destructive action asks for the same confirmation as the action.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from controlplane.core.ledger import Ledger
from controlplane.core.users import Users
from controlplane.ui.web.logins import LOGINS_DIR
from controlplane.ui.web.security import MAX_SESSIONS
from tests.conftest import TOKEN
from tests.test_cli import cli

OWN_ORIGIN = "http://localhost"
BACKUPS = ".controlplane/backups"


def users_of(repo: Path) -> Users:
    return Users(repo / ".git" / "scp" / "users.json")


def logins_dir(repo: Path) -> Path:
    return repo / ".git" / "scp" / LOGINS_DIR


class Browser:
    """A browser's view of one app: its login cookie and CSRF token, sent by hand."""

    def __init__(self, app, cookie: str = "", csrf: str = "") -> None:
        self.client = app.test_client(use_cookies=False)
        self.cookie, self.csrf = cookie, csrf

    def log_in(self, token: str, **headers: str) -> Browser:
        answer = self.client.get(f"/login?token={token}", headers=headers)
        assert answer.status_code == 303, answer.data
        self.cookie = answer.headers["Set-Cookie"].partition(";")[0]
        session_id = self.cookie.partition("=")[2]
        plane = self.client.application.extensions["controlplane"]
        self.csrf = plane.extra["sessions"].get(session_id).csrf
        return self

    def on(self, app) -> Browser:
        """The same cookie sent to another app (a restarted server)."""
        return Browser(app, self.cookie, self.csrf)

    def get(self, path: str = "/api/runs/recent"):
        return self.client.get(path, headers={"Cookie": self.cookie})

    def post(self, path: str, body: dict | None = None):
        return self.client.post(path, json=body or {}, headers={
            "Cookie": self.cookie, "X-CSRF-Token": self.csrf, "Origin": OWN_ORIGIN})


# -- item 7: a login is bound to its token ---------------------------------------------


def test_rotating_a_users_token_ends_their_login(app, repo: Path) -> None:
    added = cli("users", "add", "bob", cwd=repo)
    assert added.returncode == 0, added.stderr
    bob = Browser(app).log_in(added.stdout.strip())
    assert bob.get().status_code == 200
    assert cli("users", "remove", "bob", cwd=repo).returncode == 0
    again = cli("users", "add", "bob", cwd=repo)
    assert again.returncode == 0, again.stderr
    assert bob.get().status_code == 401  # same name, new token: the old login is over
    assert bob.post("/api/chat", {"text": "still here?"}).status_code == 401
    assert Browser(app).log_in(again.stdout.strip()).get().status_code == 200


def test_rotating_within_one_clock_tick_still_ends_the_login(app, repo: Path) -> None:
    users = users_of(repo)
    bob = Browser(app).log_in(users.add("bob"))
    assert bob.get().status_code == 200
    before = users.path.stat()
    users.remove("bob")
    new_token = users.add("bob")
    # the file's size never changes and a coarse clock gives both writes one mtime
    os.utime(users.path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert users.path.stat().st_size == before.st_size
    assert bob.get().status_code == 401
    assert Browser(app).log_in(new_token).get().status_code == 200


def test_a_rotation_long_after_the_last_change_is_seen_at_once(repo: Path) -> None:
    users = users_of(repo)
    old_token = users.add("bob")
    settled = users.path.stat().st_mtime_ns - 10**10  # last changed ten seconds ago
    os.utime(users.path, ns=(settled, settled))
    server_view = users_of(repo)
    assert server_view.user_for(old_token) == "bob" == server_view.user_for(old_token)
    users.remove("bob")
    new_token = users.add("bob")
    assert server_view.user_for(old_token) is None
    assert server_view.user_for(new_token) == "bob"


def test_a_login_survives_a_restart_and_logout_ends_it_everywhere(make_app, repo: Path) -> None:
    first = make_app()
    browser = Browser(first).log_in(TOKEN)
    restarted = make_app()  # a new server process on the same repository
    again = browser.on(restarted)
    assert again.get().status_code == 200
    said = again.post("/api/chat", {"text": "after the restart"})
    assert said.status_code == 201, said.json
    assert again.post("/logout").status_code == 204
    assert again.get().status_code == 401
    assert browser.get().status_code == 401  # the first server learns it too


def test_a_new_server_token_ends_the_logins_made_with_the_old_one(make_app) -> None:
    browser = Browser(make_app()).log_in(TOKEN)
    rotated = make_app(TOKEN="a-brand-new-server-token")
    assert browser.on(rotated).get().status_code == 401


def test_logins_are_private_files_without_the_cookie_or_the_token(app, repo: Path) -> None:
    users = users_of(repo)
    token = users.add("bob")
    bob = Browser(app).log_in(token)
    server = Browser(app).log_in(TOKEN)
    directory = logins_dir(repo)
    files = sorted(directory.iterdir())
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert len(files) == 2 and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    stored = "".join(f.read_text() for f in files)
    for secret in (token, TOKEN, bob.cookie.partition("=")[2], server.cookie.partition("=")[2]):
        assert secret not in stored
    assert {json.loads(f.read_text())["user"] for f in files} == {"bob", None}


def test_one_token_holder_logging_in_100_times_evicts_only_their_own(app, repo: Path) -> None:
    alice = Browser(app).log_in(TOKEN)
    token = users_of(repo).add("bob")
    bobs = [Browser(app).log_in(token) for _ in range(100)]
    assert alice.get().status_code == 200
    assert bobs[-1].get().status_code == 200
    assert bobs[0].get().status_code == 401
    assert sum(b.get().status_code == 200 for b in bobs) == MAX_SESSIONS < 100
    assert len(list(logins_dir(repo).iterdir())) == MAX_SESSIONS + 1


def test_a_removed_users_logins_are_swept_at_the_next_login(app, repo: Path) -> None:
    users = users_of(repo)
    Browser(app).log_in(users.add("carol"))
    users.remove("carol")
    Browser(app).log_in(TOKEN)
    stored = [json.loads(f.read_text()) for f in logins_dir(repo).iterdir()]
    assert [login["user"] for login in stored] == [None]


# -- weaker point: login CSRF --------------------------------------------------------------


@pytest.mark.parametrize("site", [None, "none", "same-origin"])
def test_login_works_from_the_address_bar_scripts_and_own_pages(app, site: str | None) -> None:
    headers = {"Sec-Fetch-Site": site} if site else {}
    assert Browser(app).log_in(TOKEN, **headers).get().status_code == 200


@pytest.mark.parametrize("site", ["same-site", "cross-site", "Cross-Site"])
def test_a_login_link_on_another_site_or_port_is_refused(app, repo: Path, site: str) -> None:
    client = app.test_client(use_cookies=False)
    answer = client.get(f"/login?token={TOKEN}", headers={"Sec-Fetch-Site": site})
    assert answer.status_code == 403 and "Set-Cookie" not in answer.headers
    assert answer.json["error"] == "cross_site_login"
    page = client.get(f"/login?token={TOKEN}", headers={"Sec-Fetch-Site": site,
                                                        "Accept": "text/html"})
    assert page.status_code == 403 and b"Login refused" in page.data
    assert not logins_dir(repo).exists() or not any(logins_dir(repo).iterdir())


# -- weaker point: a lone surrogate in chat -----------------------------------------------


@pytest.mark.parametrize("text", ['"\\ud800"', '"hi \\udfff there"'])
def test_a_lone_surrogate_in_chat_is_422_naming_the_field(client, repo: Path, text: str) -> None:
    answer = client.post("/api/chat", data=f'{{"text": {text}}}',
                         headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.data
    assert "text" in answer.json["fields"]
    assert client.get("/api/chat").json["messages"] == []


# -- item 6: a rerun of a destructive action is confirmed like the action --------------------


def archives(repo: Path) -> list[str]:
    return sorted(p.name for p in (repo / BACKUPS).glob("*.tar.gz"))


def test_rerunning_a_wipe_needs_confirm_like_the_wipe(app, client, repo: Path) -> None:
    wiped = client.post("/backup/wipe", json={"confirm": True})
    assert wiped.status_code == 200 and wiped.json["status"] == "ok", wiped.json
    created = client.post("/backup/create", json={"paths": ["README.md"], "name": "fresh"})
    assert created.json["status"] == "ok" and archives(repo) == ["fresh.tar.gz"]
    runs_before = len(Ledger.open(repo).recent(limit=100))
    action_refusal = client.post("/backup/wipe", json={})
    for body in (None, {}, {"confirm": False}, {"confirm": "yes"}):
        refused = client.post(f"/api/runs/{wiped.json['run_id']}/rerun", json=body)
        assert refused.status_code == 428, refused.json
        assert refused.json["error"] == action_refusal.json["error"] == "confirmation_required"
        assert refused.json.keys() == action_refusal.json.keys()  # the action's answer shape
    assert archives(repo) == ["fresh.tar.gz"]
    assert len(Ledger.open(repo).recent(limit=100)) == runs_before
    started = client.post(f"/api/runs/{wiped.json['run_id']}/rerun", json={"confirm": True},
                          headers={"Prefer": "respond-async"})
    assert started.status_code == 202, started.json
    app.extensions["controlplane"].executor.wait(started.json["run_id"])
    rerun = Ledger.open(repo).get(started.json["run_id"])
    assert rerun["status"] == "ok" and rerun["rerun_of"] == wiped.json["run_id"]
    assert archives(repo) == []


def test_the_dashboards_rerun_is_refused_without_confirm_too(app, client, repo: Path) -> None:
    wiped = client.post("/backup/wipe", json={"confirm": True}).json
    browser = Browser(app).log_in(TOKEN)
    assert browser.post(f"/api/runs/{wiped['run_id']}/rerun").status_code == 428
    done = browser.post(f"/api/runs/{wiped['run_id']}/rerun", {"confirm": True})
    assert done.status_code == 200 and done.json["status"] == "ok"


def test_a_rerun_runs_the_actions_precheck(client, repo: Path) -> None:
    assert client.post("/backup/create", json={"paths": ["README.md"], "name": "old"}
                       ).json["status"] == "ok"
    deleted = client.post("/backup/delete", json={"name": "old", "confirm": True}).json
    assert deleted["status"] == "ok"
    runs_before = len(Ledger.open(repo).recent(limit=100))
    again = client.post(f"/api/runs/{deleted['run_id']}/rerun", json={"confirm": True})
    assert again.status_code == 404 and again.json["error"] == "not_found", again.json
    assert len(Ledger.open(repo).recent(limit=100)) == runs_before


def test_a_rerun_records_who_asked(app, repo: Path) -> None:
    token = users_of(repo).add("bob")
    script = app.test_client()
    bearer = {"Authorization": f"Bearer {token}"}
    first = script.post("/security/generate/gitignore", json={},
                        headers={"Authorization": f"Bearer {TOKEN}"}).json
    again = script.post(f"/api/runs/{first['run_id']}/rerun", headers=bearer).json
    assert again["status"] == "ok", again
    assert Ledger.open(repo).get(again["run_id"])["actor"] == {"kind": "api", "name": "bob"}
