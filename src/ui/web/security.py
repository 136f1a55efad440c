"""Who may talk to the control plane: Host allow-list, token login, CSRF, security headers.

Every request passes, in this order:

1. the Host allow-list (DNS rebinding): loopback names, the ``host`` setting and
   ``allowed_hosts``, any port; else 403 ``forbidden_host``;
2. the open routes: ``GET /healthz`` and the login exchange ``GET /login``;
3. authentication: ``Authorization: Bearer <token>`` (the server's token or a
   user's, see :mod:`controlplane.core.users`) or a login cookie; else 401.
   A user's token records them as the actor of the runs they start.
   The ``ingest_token`` may only ``POST /api/runs/ingest`` (else 403); a GitHub
   webhook there is authenticated by its ``X-Hub-Signature-256`` alone (401 if wrong,
   403 without ``github_webhook_secret``);
4. WebSocket upgrades (``/ws/…``) need a same-origin ``Origin`` (a Bearer client
   may send none); cookie-authenticated unsafe methods need the session's
   ``X-CSRF-Token`` (a form post may carry it as its ``csrf_token`` field) and a
   same-origin ``Origin`` (or ``Sec-Fetch-Site: same-origin``); else 403.

Under ``ControlPlane(app, authorize=...)`` the host app's own login decides first:
``authorize(request)`` returns the actor dict (the request is then treated as cookie
auth: unsafe methods need our CSRF token and a same-origin Origin), None (401) or
False (403); our tokens still work for scripts. The gate is installed on the
extension's blueprint only: a host app's own routes are the host's business, and
paths here are those below the extension's ``url_prefix``.

Every response carries the security headers (CSP without inline script) and
never a CORS header. Behind a TLS proxy listed in ``trusted_proxies``, its
``X-Forwarded-Proto`` gives the scheme (so Origin checks and the cookie's
``Secure`` flag follow the browser's https). Logins are stored under
``<git dir>/scp/logins/`` (see :mod:`.logins`) with the SHA-256 of the token they
were made from: they survive a restart, and end on ``POST /logout`` or once that
token is removed or replaced (checked on every request). ``GET /login`` refuses
a browser another site or port sent there (``Sec-Fetch-Site``: login CSRF).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Blueprint, Flask, Response, current_app, g, redirect, request
from flask import session as flask_session
from werkzeug.wrappers import Response as BaseResponse

from controlplane.core.ingest import EVENT_HEADER, SIGNATURE_HEADER, ingest_signature
from controlplane.core.runtime import Runtime
from controlplane.core.users import Users, UsersError, token_digest, users_for
from controlplane.ui.web.errors import error_response, wants_html
from controlplane.ui.web.logins import LOGINS_DIR, MAX_LOGINS_PER_TOKEN, Session, Sessions
from controlplane.ui.web.state import base_url, local_path, state

TOKEN_FILE = "token"
COOKIE_PREFIX = "controlplane_session"
INGEST_PATH = "/api/runs/ingest"
OPEN_PATHS = frozenset({"/healthz", "/login"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_SESSIONS = MAX_LOGINS_PER_TOKEN  # per token: the token's oldest login is dropped beyond
LOGIN_SITES = frozenset({"none", "same-origin"})  # Sec-Fetch-Site values /login accepts
AUTHORIZE_KEY = "authorize"  # Runtime.extra key: the host app's authorize(request) callable
HOST_CSRF_KEY = "_controlplane_csrf"  # our CSRF token in the host app's Flask session

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

bp = Blueprint("security", __name__)
logger = logging.getLogger(__name__)


# -- the token -----------------------------------------------------------------


def load_or_create_token(ledger: Any, settings: dict[str, Any]) -> str:
    """The ``token`` setting if set, else the token kept in ``<git dir>/scp/token``."""
    return settings.get("token") or token_from_file(Path(ledger.scp_dir) / TOKEN_FILE)


def token_from_file(path: Path) -> str:
    """The token stored at *path*; creates it (random, mode 0600) if missing. Process-safe."""
    existing = _read_token(path)
    if existing:
        if path.stat().st_mode & 0o077:  # someone loosened it: the token is for us alone
            path.chmod(0o600)
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    spare = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, (secrets.token_urlsafe(32) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(spare, path)  # atomic and exclusive: of two racing processes, one token wins
    except FileExistsError:
        if not _read_token(path):  # an empty file left by a crash
            os.replace(spare, path)
    finally:
        spare.unlink(missing_ok=True)
    return _read_token(path)


def _read_token(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def matches(given: str, expected: str | None) -> bool:
    """Constant-time comparison of a presented secret with the expected one."""
    if not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def login_url(host: str, port: int, token: str) -> str:
    """The URL that logs a browser on this machine in (a wildcard bind is reached on loopback)."""
    name = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"
    return f"http://{name}:{port}/login?token={quote(token, safe='')}"


# -- login sessions ------------------------------------------------------------


def sessions(plane: Runtime | None = None) -> Sessions:
    """The app's login sessions (stored under ``<git dir>/scp/logins/``)."""
    plane = plane or state()
    found = plane.extra.get("sessions")
    if found is None:
        found = plane.extra["sessions"] = Sessions(Path(plane.ledger.scp_dir) / LOGINS_DIR)
    return found


def cookie_name() -> str:
    """The login cookie's name; cookies ignore ports, so two servers on one host keep theirs."""
    return f"{COOKIE_PREFIX}_{request.environ.get('SERVER_PORT', '')}"


def current_session() -> Session | None:
    """The login session of this request (None for Bearer or open requests)."""
    return g.get("controlplane_session")


def csrf_token() -> str:
    """This request's CSRF token, for ``<meta name="csrf-token">`` ('' without a login cookie).

    For a host app's login (``authorize``): a random token kept in the host's Flask
    session when the app has a ``secret_key``, else an HMAC of the actor under our token.
    """
    login = current_session()
    if login is not None:
        return login.csrf
    if g.get("controlplane_auth") == "host":
        return host_csrf_token(create=True)
    return ""


def host_csrf_token(create: bool = False) -> str:
    """The CSRF token of a host-app login ('' if the session holds none and *create* is False)."""
    if current_app.secret_key:
        token = flask_session.get(HOST_CSRF_KEY)
        if not isinstance(token, str) or len(token) < 32:
            if not create:
                return ""
            token = flask_session[HOST_CSRF_KEY] = secrets.token_urlsafe(32)
        return token
    actor = json.dumps(request.environ.get("controlplane.actor"), sort_keys=True)
    key = (state().token or "").encode()
    return hmac.new(key, b"csrf\0" + actor.encode(), hashlib.sha256).hexdigest()


def host_actor(plane: Runtime) -> dict[str, str] | bool | None:
    """What the host app's ``authorize(request)`` says: an actor dict, None (401), False (403).

    An actor needs a non-empty ``name``; ``kind`` defaults to ``web``; values become strings.
    """
    authorize: Callable[[Any], Any] | None = plane.extra.get(AUTHORIZE_KEY)
    if authorize is None:
        return None
    answer = authorize(request)
    if answer is False or answer is None:
        return answer
    if not isinstance(answer, dict) or not str(answer.get("name") or "").strip():
        raise TypeError(f"authorize() must return an actor dict with a name, None or False; "
                        f"got {type(answer).__name__}")
    actor = {str(k): str(v) for k, v in answer.items()}
    actor.setdefault("kind", "web")
    return actor


# -- the checks ----------------------------------------------------------------


def host_name(host: str) -> str:
    """The name part of a Host header: lower-case, without port or IPv6 brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host  # no port, or a bare IPv6 address such as ::1


def allowed_host_names(settings: dict[str, Any]) -> set[str]:
    """Loopback names, the ``host`` setting and the ``allowed_hosts`` names."""
    names = set(LOOPBACK_NAMES)
    extra = str(settings.get("allowed_hosts") or "").split(",")
    for name in [str(settings.get("host") or ""), *extra]:
        if name.strip():
            names.add(host_name(name))
    return names


def own_origin() -> str:
    """``scheme://host[:port]`` of this request, as a browser's Origin header spells it."""
    return f"{request.scheme}://{request.host}".lower()


def same_origin() -> bool:
    """True if the request comes from a page of this server (Origin, else Sec-Fetch-Site)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != "null":
        return origin.lower() == own_origin()
    # A form post from our page (JavaScript off) says "Origin: null" under our
    # Referrer-Policy no-referrer: the browser's own Sec-Fetch-Site decides then.
    return request.headers.get("Sec-Fetch-Site") == "same-origin"


def websocket_origin_ok(kind: str) -> bool:
    """A same-origin Origin; none at all only from a Bearer client (a script, not a browser)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return kind == "bearer"
    return origin.lower() == own_origin()


def _page(status: int, title: str, message: str) -> Response:
    """A minimal HTML answer (no script, no style: the CSP allows neither inline)."""
    body = (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title></head>\n<body><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(message)}</p></body></html>\n")
    return Response(body, status=status, mimetype="text/html")


LOGIN_HELP = ("Open the login URL that `controlplane serve` printed when it started "
              "(http://…/login?token=…); scripts send `Authorization: Bearer <token>`.")
HOST_LOGIN_HELP = ("Log in to this site first; scripts send `Authorization: Bearer <token>` "
                   "(the token in .git/scp/token).")
HOST_FORBIDDEN = "your login may not use the control plane (the site's authorize() refused it)"


def unauthorized() -> Response:
    """401: a short page for a browser asking for a page, JSON for everything else."""
    text = HOST_LOGIN_HELP if AUTHORIZE_KEY in state().extra else LOGIN_HELP
    if wants_html():
        response = _page(401, "Not logged in", text)
    else:
        response = error_response(401, "unauthorized", text)
    response.headers["WWW-Authenticate"] = 'Bearer realm="controlplane"'
    return response


def users(plane: Runtime | None = None) -> Users:
    """The app's users file (people's own tokens)."""
    plane = plane or state()
    found = plane.extra.get("users")
    if found is None:
        found = plane.extra["users"] = users_for(plane.ledger.scp_dir, plane.settings)
    return found


def token_owner(plane: Runtime, token: str) -> tuple[bool, str | None]:
    """(valid, user): the server's token (user None) or a user's own token."""
    if matches(token, plane.token):
        return True, None
    try:
        user = users(plane).user_for(token)
    except UsersError as exc:  # a broken users file locks its users out, not the server's token
        logger.warning("%s", exc)
        return False, None
    return user is not None, user


def authenticate(plane: Runtime) -> str | None:
    """``"host"``, ``"bearer"``, ``"ingest"`` or ``"cookie"`` (setting
    ``g.controlplane_session``), or None (``g.controlplane_refused`` when authorize said False).

    A user's token or login puts their name in ``environ["controlplane.user"]``; a host
    app's login puts the actor ``authorize`` returned in ``environ["controlplane.actor"]``.
    """
    actor = host_actor(plane)
    if isinstance(actor, dict):
        request.environ["controlplane.actor"] = actor
        request.environ["controlplane.user"] = actor["name"]
        return "host"
    g.controlplane_refused = actor is False
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        credential = credential.strip()
        valid, user = token_owner(plane, credential)
        if valid:
            if user:
                request.environ["controlplane.user"] = user
            return "bearer"
        if matches(credential, plane.settings.get("ingest_token")):
            return "ingest"
        return None  # a wrong token is refused even next to a valid cookie
    session_id = request.cookies.get(cookie_name())
    session = sessions(plane).get(session_id) if session_id else None
    if session is None:
        return None
    still_valid = login_still_valid(plane, session.user, session.token_sha256)
    if not still_valid:
        if still_valid is False:  # its token was removed or replaced: logged out for good
            sessions(plane).end(session.session_id)
        return None
    if session.user:
        request.environ["controlplane.user"] = session.user
    g.controlplane_session = session
    return "cookie"


def login_still_valid(plane: Runtime, user: str | None, digest: str | None) -> bool | None:
    """True if the token a login was made from still works; None if the users file is broken.

    The server's token for a login without a user; else the user's current token.
    """
    if not isinstance(digest, str):
        return False
    if user is None:
        return plane.token is not None and hmac.compare_digest(digest, token_digest(plane.token))
    try:
        entry = users(plane).entries().get(user)
    except UsersError as exc:  # locks this user out until the file is fixed, ends nothing
        logger.warning("%s", exc)
        return None
    return entry is not None and hmac.compare_digest(digest, entry["token_sha256"])


def check_request() -> Response | None:
    """The ``before_request`` gate (see the module docstring for the order); runs once."""
    if request.environ.get("controlplane.gated"):  # the app's and the blueprint's hook
        return None
    request.environ["controlplane.gated"] = True
    plane = state()
    path = local_path()
    g.controlplane_session = g.controlplane_auth = None
    if host_name(request.host) not in allowed_host_names(plane.settings):
        return error_response(403, "forbidden_host",
                              "this Host is not allowed (add it to allowed_hosts)")
    if request.method in ("GET", "HEAD") and path in OPEN_PATHS:
        return None
    if request.method == "POST" and path == INGEST_PATH and (
            SIGNATURE_HEADER in request.headers or EVENT_HEADER in request.headers):
        refused = ingest_signature(plane.settings.get("github_webhook_secret"),
                                   request.get_data(cache=True),
                                   request.headers.get(SIGNATURE_HEADER))
        if refused:
            return error_response(*refused)
        g.controlplane_auth = request.environ["controlplane.auth"] = "github"  # signed by GitHub
        return None
    kind = authenticate(plane)
    if kind is None:
        if g.get("controlplane_refused"):
            return error_response(403, "forbidden", HOST_FORBIDDEN)
        return unauthorized()
    g.controlplane_auth = kind
    request.environ["controlplane.auth"] = kind
    if kind == "ingest" and not (request.method == "POST" and path == INGEST_PATH):
        return error_response(403, "forbidden", f"the ingest token may only POST {INGEST_PATH}")
    if path.startswith("/ws/") and not websocket_origin_ok(kind):
        return error_response(403, "forbidden_origin",
                              "a WebSocket must be opened by a page of this server")
    if kind in ("cookie", "host") and request.method not in SAFE_METHODS:
        login = current_session()
        expected = login.csrf if login is not None else host_csrf_token()
        given = request.headers.get("X-CSRF-Token", "") or form_csrf_token()
        if not given or not matches(given, expected) or not same_origin():
            return error_response(403, "csrf", "send X-CSRF-Token from a page of this server")
    return None


def form_csrf_token() -> str:
    """The ``csrf_token`` field of a form post (a page with JavaScript off; multipart: the
    backup upload form, its body capped before this reads it), else ''."""
    if request.mimetype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return ""
    return request.form.get("csrf_token", "")


def add_security_headers(response: Response) -> Response:
    """The ``after_request`` hook: CSP and friends on every answer, no-store on JSON, no CORS."""
    for name in {k for k, _ in response.headers.items() if k.lower().startswith("access-control-")}:
        del response.headers[name]
    response.headers.update(SECURITY_HEADERS)
    if response.mimetype == "application/json" or local_path().startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


# -- login and logout ----------------------------------------------------------


def safe_next(target: str | None, home: str = "/") -> str:
    """*target* if it is a path on this server (not ``//x``, ``/\\x``, ``x:…``), else *home*."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return home
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in target):
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return home
    return target


LOGIN_REFUSED = ("a login link opened from another site or another port is refused (it could "
                 "log you in as someone else): open the URL `controlplane serve` printed yourself")


def login_refused() -> Response:
    """403 for a login another page sent the browser to (login CSRF)."""
    if wants_html():
        return _page(403, "Login refused", LOGIN_REFUSED)
    return error_response(403, "cross_site_login", LOGIN_REFUSED)


@bp.get("/login")
def login() -> BaseResponse:
    """Exchange the token for a login cookie and redirect (303) so it leaves the address bar.

    Refused (403) when ``Sec-Fetch-Site`` says another site or port sent the browser here.
    """
    plane = state()
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.strip().lower() not in LOGIN_SITES:
        return login_refused()
    token = request.args.get("token", "")
    valid, user = token_owner(plane, token)
    if not valid:
        return unauthorized()
    login = sessions(plane).create(
        user, token_digest(token),
        still_valid=lambda entry: login_still_valid(
            plane, entry.get("user"), entry.get("token_sha256")) is not False)
    response = redirect(safe_next(request.args.get("next"), base_url() + "/"), code=303)
    response.set_cookie(cookie_name(), login.session_id, path="/", httponly=True,
                        samesite="Strict", secure=request.is_secure)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/logout")
def logout() -> Response:
    """End this login session (a cookie holding it is refused from now on); 204."""
    login = current_session()
    if login is not None:
        sessions().end(login.session_id)
    response = Response(status=204)
    response.delete_cookie(cookie_name(), path="/", httponly=True, samesite="Strict",
                           secure=request.is_secure)
    return response


class TrustedProxy:
    """WSGI middleware: the scheme from ``X-Forwarded-Proto``, only from listed proxy addresses.

    Anyone else's header is ignored: a client could claim https and pass the
    Origin check of a plain-http page otherwise.
    """

    def __init__(self, app: Any, proxies: str) -> None:
        self.app = app
        self.proxies = frozenset(p.strip() for p in proxies.split(",") if p.strip())

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REMOTE_ADDR") in self.proxies:
            claimed = environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")[-1].strip().lower()
            if claimed in ("http", "https"):
                environ["wsgi.url_scheme"] = claimed
        return self.app(environ, start_response)


def install(app: Flask, blueprint: Blueprint, *, whole_app: bool = False) -> None:
    """Put the gate, the headers, ``csrf_token()`` and login/logout on *blueprint* (our
    routes only); *whole_app* (a standalone server, every route ours) puts them on *app*.
    """
    plane = app.extensions["controlplane"]
    sessions(plane)
    if plane.settings.get("trusted_proxies"):
        app.wsgi_app = TrustedProxy(app.wsgi_app, plane.settings["trusted_proxies"])  # type: ignore[method-assign]
    for target in ((app, blueprint) if whole_app else (blueprint,)):
        target.before_request(check_request)
        target.after_request(add_security_headers)
        target.context_processor(lambda: {"csrf_token": csrf_token})
    blueprint.register_blueprint(bp)
