"""HTTP attacks on a really served control plane: CSRF, DNS rebinding, tokens, WebSocket, headers.

Every route of the app's URL map is attacked over a real socket (http.client,
so the headers are exactly what a browser or a hostile page could send), with a
valid login cookie where the attack needs one. Each refusal must leave the
project unchanged: no run, no chat message, the executor not paused, the
session still alive. A positive control per attack family proves the same
client gets in when it asks properly, so a refusal is the check's doing.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

from controlplane.core.actions import REGISTRY, load_integrations
from controlplane.core.ledger import Ledger
from controlplane.ui.web import security
from tests.conftest import TOKEN
from tests.test_action_walk import url_of

load_integrations()

EVIL = "http://evil.example"
WS_UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
COUNTS: dict[str, int] = {}  # attack family -> requests checked (printed last, with -s)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Browser:
    """A raw HTTP client on the served app, holding one login cookie and its CSRF token."""

    base: str
    cookie: str = ""
    csrf: str = ""
    host: str = field(init=False)
    port: int = field(init=False)

    def __post_init__(self) -> None:
        url = urlparse(self.base)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def send(self, method: str, path: str, headers: dict[str, str] | None = None,
             body: bytes | None = None, cookie: bool = True) -> Answer:
        """One request on a fresh connection; an event stream is closed after its headers."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        sent = dict(headers or {})
        if cookie and self.cookie:
            sent.setdefault("Cookie", self.cookie)
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            streaming = (response.getheader("Content-Type") or "").startswith("text/event-stream")
            data = b"" if streaming else response.read()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        finally:
            conn.close()

    def log_in(self) -> None:
        answer = self.send("GET", f"/login?token={TOKEN}&next=/", cookie=False)
        assert answer.status == 303, answer
        self.cookie = answer.headers["set-cookie"].partition(";")[0]
        page = self.send("GET", "/", {"Accept": "text/html"})
        found = re.search(rb'<meta name="csrf-token" content="([^"]+)">', page.body)
        assert page.status == 200 and found, page.status
        self.csrf = found.group(1).decode()

    def own(self, **extra: str) -> dict[str, str]:
        """Headers of a legitimate fetch from a page of this server."""
        return {"Origin": self.origin, "X-CSRF-Token": self.csrf,
                "Content-Type": "application/json", **extra}


def websocket_status(browser: Browser, headers: dict[str, str], host: str | None = None) -> int:
    """The status of a real WebSocket handshake on ``/ws/events`` (101 = accepted)."""
    lines = ["GET /ws/events HTTP/1.1", f"Host: {host or f'{browser.host}:{browser.port}'}"]
    lines += [f"{k}: {v}" for k, v in {**WS_UPGRADE, **headers}.items()]
    with socket.create_connection((browser.host, browser.port), timeout=30) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        reply = b""
        while b"\r\n" not in reply:
            chunk = conn.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1])


# -- the routes ------------------------------------------------------------------


def first_run(repo: Path) -> str:
    return Ledger.open(repo).recent()[0]["run_id"]


SITE_BACKUP = "site"  # the backup the site fixture makes (a real download target)


def concrete(rule: str, run_id: str) -> str:
    """A URL for *rule*: action URL params from the example, a real run id, a real command."""
    action = REGISTRY.get(rule)
    if action is not None:
        return url_of(action, action.example.params)
    return (rule.replace("<run_id>", run_id).replace("<command>", "pause")
            .replace("<path:filename>", "css/app.css").replace("<name>", "git")
            .replace("<path:name>", SITE_BACKUP))


def routes(app, method: str, run_id: str) -> list[str]:
    """Every route of the URL map answering *method*, as a concrete URL."""
    found = [concrete(rule.rule, run_id) for rule in app.url_map.iter_rules()
             if method in (rule.methods or ())]
    assert found
    return sorted(set(found))


@pytest.fixture
def site(app, served: str, repo: Path) -> Iterator[tuple[Browser, str]]:
    """A logged-in browser on the served app, with one recorded run (a rerun target)."""
    browser = Browser(served)
    seed = browser.send("POST", "/security/scan", {"Authorization": f"Bearer {TOKEN}",
                                                   "Content-Type": "application/json"}, b"{}",
                        cookie=False)
    assert seed.status == 200 and seed.json()["status"] == "ok", seed
    made = browser.send("POST", "/backup/create", {"Authorization": f"Bearer {TOKEN}",
                                                   "Content-Type": "application/json"},
                        json.dumps({"paths": ["README.md"], "name": "site"}).encode(),
                        cookie=False)
    assert made.status == 200 and made.json()["status"] == "ok", made.json()
    browser.log_in()
    yield browser, first_run(repo)


def untouched(browser: Browser, repo: Path, runs_before: int) -> None:
    """Nothing the attacks aimed at happened: no run, no message, no pause, still logged in."""
    ledger = Ledger.open(repo)
    assert len(ledger.recent(limit=500)) == runs_before
    assert ledger.journal.entries() == []
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert browser.send("GET", "/api/chat", bearer, cookie=False).json()["messages"] == []
    assert browser.send("GET", "/api/executor", bearer, cookie=False).json()["paused"] is False
    assert browser.send("GET", "/api/runs/recent").status == 200  # the session survived


# -- CSRF ------------------------------------------------------------------------


def csrf_attacks(browser: Browser) -> dict[str, tuple[dict[str, str], bytes, bool]]:
    """name -> (headers, body, with the cookie). All come from a page that is not ours."""
    json_body = b'{"text": "pwned", "confirm": true}'
    return {
        "form urlencoded from a foreign page": (
            {"Origin": EVIL, "Content-Type": "application/x-www-form-urlencoded",
             "Sec-Fetch-Site": "cross-site"}, b"text=pwned&confirm=true", True),
        "form text/plain from a foreign page": (
            {"Origin": EVIL, "Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site"},
            b'{"text": "pwned", "confirm": true, "x": "="}', True),
        "fetch JSON with credentials, foreign Origin, stolen token": (
            {**browser.own(), "Origin": EVIL, "Sec-Fetch-Site": "cross-site"}, json_body, True),
        "fetch JSON without credentials": (
            {"Origin": EVIL, "Content-Type": "application/json"}, json_body, False),
        "own Origin, no X-CSRF-Token": (
            {k: v for k, v in browser.own().items() if k != "X-CSRF-Token"}, json_body, True),
        "own Origin, wrong X-CSRF-Token": (browser.own(**{"X-CSRF-Token": "x" * 43}),
                                           json_body, True),
        "own Origin, empty X-CSRF-Token": (browser.own(**{"X-CSRF-Token": ""}), json_body, True),
        "Origin null (sandboxed frame, data: URL)": (browser.own(Origin="null"), json_body, True),
        "Origin of another port of this host": (
            browser.own(Origin=f"http://{browser.host}:{browser.port + 1}"), json_body, True),
        "Origin https of this host": (browser.own(Origin=f"https://{browser.host}:{browser.port}"),
                                      json_body, True),
        "no Origin, Sec-Fetch-Site cross-site": (
            {**_without_origin(browser), "Sec-Fetch-Site": "cross-site"}, json_body, True),
        "no Origin, Sec-Fetch-Site same-site": (
            {**_without_origin(browser), "Sec-Fetch-Site": "same-site"}, json_body, True),
        "no Origin, no Sec-Fetch-Site": (_without_origin(browser), json_body, True),
    }


def _without_origin(browser: Browser) -> dict[str, str]:
    return {k: v for k, v in browser.own().items() if k != "Origin"}


def test_csrf_on_every_unsafe_route_is_refused_and_changes_nothing(app, site, repo) -> None:
    browser, run_id = site
    runs_before = len(Ledger.open(repo).recent(limit=500))
    targets = routes(app, "POST", run_id)
    assert len(targets) >= len(REGISTRY) + 6  # every action, logout, chat, cancel, rerun…
    checked = 0
    for name, (headers, body, with_cookie) in csrf_attacks(browser).items():
        for path in targets:
            answer = browser.send("POST", path, headers, body, cookie=with_cookie)
            expected = (403, "csrf") if with_cookie else (401, "unauthorized")
            assert (answer.status, answer.json().get("error")) == expected, (name, path, answer)
            checked += 1
    for method in ("PUT", "PATCH", "DELETE"):  # no such routes, but never past the gate
        answer = browser.send(method, "/api/chat", {"Origin": EVIL}, b"{}")
        assert answer.status == 403, (method, answer)
        checked += 1
    untouched(browser, repo, runs_before)
    COUNTS["csrf"] = checked
    # The same browser, asking properly, gets in: the refusals above were the checks' doing.
    posted = browser.send("POST", "/api/chat", browser.own(), b'{"text": "from our page"}')
    assert posted.status == 201, posted
    fetch_site = browser.send("POST", "/api/chat", {**_without_origin(browser),
                                                    "Sec-Fetch-Site": "same-origin"},
                              b'{"text": "same-origin fetch"}')
    assert fetch_site.status == 201, fetch_site
    print(f"\nCSRF: {len(targets)} POST routes x {len(csrf_attacks(browser))} attacks "
          f"+ 3 methods = {checked} refusals")


# -- DNS rebinding ---------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example",
                                  "localhost.:{port}", "0.0.0.0:{port}"])
def test_a_foreign_host_is_refused_on_every_route(app, site, repo, host: str) -> None:
    browser, run_id = site
    runs_before = len(Ledger.open(repo).recent(limit=500))
    host = host.format(port=browser.port)
    credentials = [{"Authorization": f"Bearer {TOKEN}"}, {"Cookie": browser.cookie}]
    checked = 0
    for method in ("GET", "POST"):
        for path in routes(app, method, run_id):
            for auth in credentials:
                headers = {**auth, "Host": host, "Origin": f"http://{host}",
                           "X-CSRF-Token": browser.csrf, "Content-Type": "application/json",
                           "Accept": "text/event-stream" if path == "/api/events" else "*/*"}
                answer = browser.send(method, path, headers, b"{}" if method == "POST" else None,
                                      cookie=False)
                assert answer.status == 403, (host, method, path, answer)
                assert answer.json()["error"] == "forbidden_host"
                assert "set-cookie" not in answer.headers
                checked += 1
    for auth in credentials:
        assert websocket_status(browser, {**auth, "Origin": f"http://{host}"}, host=host) == 403
        checked += 1
    login = browser.send("GET", f"/login?token={TOKEN}", {"Host": host}, cookie=False)
    assert login.status == 403 and "set-cookie" not in login.headers
    untouched(browser, repo, runs_before)
    COUNTS[f"host {host}"] = checked + 1


# -- tokens and cookies ----------------------------------------------------------


def test_every_closed_route_wants_a_valid_token(app, site, repo) -> None:
    browser, run_id = site
    runs_before = len(Ledger.open(repo).recent(limit=500))
    wrong = [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN}x"},
             {"Authorization": f"Bearer {TOKEN[:-1]}"}, {"Authorization": f"Basic {TOKEN}"},
             {"Authorization": f"Token {TOKEN}"}, {"Authorization": "Bearer "},
             {"Cookie": f"{browser.cookie.partition('=')[0]}=forged"},
             {"Cookie": f"{browser.cookie.partition('=')[0]}={TOKEN}"},
             {"Authorization": "Bearer wrong", "Cookie": browser.cookie}]
    checked = 0
    for method in ("GET", "POST"):
        for path in routes(app, method, run_id):
            if method == "GET" and path in security.OPEN_PATHS:
                continue
            for headers in wrong:
                answer = browser.send(method, path, {**headers, "Origin": browser.origin,
                                                     "X-CSRF-Token": browser.csrf},
                                      b"{}" if method == "POST" else None, cookie=False)
                assert answer.status == 401, (method, path, headers, answer)
                assert answer.headers["www-authenticate"].startswith("Bearer")
                checked += 1
    for headers in wrong:
        assert websocket_status(browser, {**headers, "Origin": browser.origin}) == 401
        checked += 1
    untouched(browser, repo, runs_before)
    COUNTS["token"] = checked


def test_a_cookie_used_after_logout_is_401_everywhere(app, site, repo) -> None:
    browser, run_id = site
    stolen = browser.cookie
    done = browser.send("POST", "/logout", browser.own(), b"")
    assert done.status == 204
    runs_before = len(Ledger.open(repo).recent(limit=500))
    checked = 0
    for method in ("GET", "POST"):
        for path in routes(app, method, run_id):
            if method == "GET" and path in security.OPEN_PATHS:
                continue
            answer = browser.send(method, path, {"Cookie": stolen, **browser.own()},
                                  b"{}" if method == "POST" else None, cookie=False)
            assert answer.status == 401, (method, path, answer)
            checked += 1
    assert websocket_status(browser, {"Cookie": stolen, "Origin": browser.origin}) == 401
    ledger = Ledger.open(repo)
    assert len(ledger.recent(limit=500)) == runs_before and ledger.journal.entries() == []
    COUNTS["after logout"] = checked + 1


# -- WebSocket -------------------------------------------------------------------


def test_a_websocket_from_a_foreign_origin_is_refused(site) -> None:
    browser, _ = site
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    cookie = {"Cookie": browser.cookie}
    foreign = [EVIL, "null", f"http://{browser.host}:{browser.port + 1}",
               f"https://{browser.host}:{browser.port}", f"http://localhost:{browser.port}",
               f"{browser.origin}.evil.example"]
    for origin in foreign:
        for auth in (bearer, cookie):
            assert websocket_status(browser, {**auth, "Origin": origin}) == 403, (origin, auth)
    assert websocket_status(browser, cookie) == 403  # a browser always sends an Origin
    # The same handshakes from our own page (or a script without Origin) are accepted.
    assert websocket_status(browser, {**cookie, "Origin": browser.origin}) == 101
    assert websocket_status(browser, bearer) == 101
    COUNTS["websocket"] = len(foreign) * 2 + 1


# -- security headers ------------------------------------------------------------


def assert_security_headers(answer: Answer, what: object) -> None:
    headers = answer.headers
    policy = {d.strip().split(" ", 1)[0]: d.strip().partition(" ")[2]
              for d in headers.get("content-security-policy", "").split(";") if d.strip()}
    script_src = policy.get("script-src", policy.get("default-src", ""))
    assert script_src, what
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src, what
    assert "*" not in script_src.split() and "data:" not in script_src, what
    assert policy.get("frame-ancestors") == "'none'", what
    assert policy.get("object-src") == "'none'", what
    assert headers.get("x-content-type-options") == "nosniff", what
    assert headers.get("referrer-policy") == "no-referrer", what
    assert headers.get("x-frame-options") == "DENY", what
    assert not [k for k in headers if k.startswith("access-control-")], what


def test_security_headers_on_every_answer_including_errors(app, site) -> None:
    browser, run_id = site
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    html = {"Accept": "text/html"}
    seen_statuses: set[int] = set()
    checked = 0

    def check(method: str, path: str, headers: dict[str, str], body: bytes | None = None,
              cookie: bool = False) -> Answer:
        nonlocal checked
        answer = browser.send(method, path, {**headers, "Origin": EVIL}, body, cookie=cookie)
        assert_security_headers(answer, (method, path, headers, answer.status))
        seen_statuses.add(answer.status)
        checked += 1
        return answer

    for path in routes(app, "GET", run_id):
        accept = {"Accept": "text/event-stream"} if path == "/api/events" else html
        answer = check("GET", path, {**bearer, **accept})  # a page or API answer
        assert answer.status < 400 or path in ("/login", "/ws/events", "/api/simulate"), (
            path, answer.status)  # the simulator is off unless enabled: 404 saying how
        check("GET", path, html, cookie=True)  # the logged-in browser's view
        check("GET", path, accept)  # 401 (or open)
        check("GET", path, {**bearer, "Host": "evil.example"})  # 403
    for path in routes(app, "POST", run_id):
        check("POST", path, {**bearer, "Content-Type": "application/json"}, b"{not json")  # 400
        check("POST", path, {"Content-Type": "application/json"}, b"{}")  # 401
        check("POST", path, {"Content-Type": "application/json"}, b"{}", cookie=True)  # 403
    for path in REGISTRY:  # 422 and 428 answers of every action
        action = REGISTRY[path]
        invalid = {**action.example.params, **(action.example.invalid or {})}
        answer = check("POST", url_of(action, {**action.example.params, **{
            k: v for k, v in invalid.items()
            if k in action.url_params and re.fullmatch(r"[\w.-]+", str(v))}}),
                       {**bearer, "Content-Type": "application/json"},
                       json.dumps({**invalid, "confirm": True}).encode())
        assert answer.status in (404, 422), (path, answer)
        if action.destructive:
            answer = check("POST", url_of(action, action.example.params),
                           {**bearer, "Content-Type": "application/json"},
                           json.dumps(action.example.params).encode())
            assert answer.status == 428, (path, answer)
    for path in ("/no/such/page", "/runs/0000000000000-nosuchrun", "/integrations/nope",
                 "/api/runs/not-an-id", "/static/nope.js", "/api/executor/explode"):
        check("GET", path, {**bearer, **html})  # 404 page
        check("GET", path, bearer)  # 404 JSON
    check("GET", f"/login?token={TOKEN}&next=/metrics", {})  # 303 with the cookie
    check("GET", "/static/js/api.js", {})  # static files (401 without login)
    check("GET", "/logout", bearer)
    check("DELETE", "/api/runs/recent", bearer)
    check("GET", "/api/runs/recent?limit=nope", bearer)
    assert {400, 401, 403, 404, 405, 422, 428} <= seen_statuses, seen_statuses
    COUNTS["headers"] = checked
    print(f"\nheaders: {checked} answers, statuses {sorted(seen_statuses)}")


def test_the_event_stream_answers_carry_the_headers(site) -> None:
    browser, _ = site
    answer = browser.send("GET", "/api/events", {"Accept": "text/event-stream"})
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert_security_headers(answer, "SSE")
    assert answer.headers["cache-control"] == "no-store"


def test_the_campaign_counts(capsys) -> None:
    """Not a check: prints how many requests each attack family sent (run with -s)."""
    with capsys.disabled():
        for family, number in COUNTS.items():
            print(f"\n{family}: {number} requests checked", end="")
        print(f"\ntotal: {sum(COUNTS.values())}")
