"""Small input holes: ingest dates, webhook redirects, the worker header, ``$`` before ``\\n``."""

from __future__ import annotations

import threading
import urllib.error
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from controlplane.core.alerts import WebhookTarget, send_webhook
from controlplane.core.ledger import Ledger
from controlplane.core.ledger.sync import check_remote
from controlplane.core.runs import check_subtype, is_run_id, new_run_id
from controlplane.core.users import Users, UsersError
from tests.conftest import TOKEN
from tests.test_cli import cli

INGEST = "ci-only-token-123456"


# -- ingest dates -----------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("started_at", "9999-12-31T00:00:00Z"),  # would pin itself on top of every list for ever
    ("finished_at", "9999-12-31T00:00:00Z"),
    ("started_at", "0999-01-01T00:00:00Z"),  # was a 500
    ("finished_at", "0001-01-01T00:00:00+05:00"),
    ("started_at", "1999-12-31T23:59:59Z"),
])
def test_ingest_refuses_dates_outside_a_sane_window(repo: Path, make_app, field: str,
                                                    value: str) -> None:
    client = make_app(SETTINGS={"ingest_token": INGEST}).test_client()
    answer = client.post("/api/runs/ingest", json={"pipeline": "build", "status": "ok",
                                                   field: value},
                         headers={"Authorization": f"Bearer {INGEST}"})
    assert answer.status_code == 422, answer.get_json()
    assert field in answer.get_json()["fields"]
    assert Ledger.open(repo).recent() == []


def test_ingest_accepts_yesterday_and_a_little_clock_drift(repo: Path, make_app) -> None:
    from datetime import UTC, datetime, timedelta

    client = make_app(SETTINGS={"ingest_token": INGEST}).test_client()
    now = datetime.now(UTC)
    answer = client.post("/api/runs/ingest", json={
        "pipeline": "build", "status": "ok",
        "started_at": (now - timedelta(days=1)).isoformat(),
        "finished_at": (now + timedelta(minutes=5)).isoformat()},
        headers={"Authorization": f"Bearer {INGEST}"})
    assert answer.status_code == 201, answer.get_json()


# -- webhook redirects ----------------------------------------------------------------------


class Recorder(BaseHTTPRequestHandler):
    """Answers every request with the server's ``answer`` (status, headers); records paths."""

    def _answer(self) -> None:
        self.server.seen.append(self.path)  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        status, headers = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator:
    """Start real local HTTP servers; each has ``answer`` and ``seen``."""
    started = []

    def start(status: int, headers: dict[str, str] | None = None) -> HTTPServer:
        server = HTTPServer(("127.0.0.1", 0), Recorder)
        server.answer, server.seen = (status, headers or {}), []  # type: ignore[attr-defined]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_webhook_never_follows_a_redirect_to_loopback(http_server) -> None:
    internal = http_server(200)  # e.g. an admin endpoint on the operator's machine
    hook = http_server(302, {"Location": f"http://127.0.0.1:{internal.server_port}/admin"})
    target = WebhookTarget(url=f"http://127.0.0.1:{hook.server_port}/hook", timeout=5)
    run = {"run_id": new_run_id(), "subtype": "test:x", "status": "failed"}
    with pytest.raises(urllib.error.HTTPError, match=r"redirect .* refused"):
        send_webhook(target, run)
    assert hook.seen == ["/hook"] and internal.seen == []


# -- the worker header --------------------------------------------------------------------


def test_the_worker_header_only_answers_authenticated_callers(make_app) -> None:
    client = make_app().test_client()
    for path in ("/healthz", "/api/runs/recent", "/login?token=wrong"):
        assert "X-Controlplane-Worker" not in client.get(path).headers, path
    for path in ("/healthz", "/api/runs/recent"):
        answer = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.headers["X-Controlplane-Worker"].isdigit(), path


# -- "$" matches before a trailing newline ----------------------------------------------------


def test_validators_refuse_a_trailing_newline(repo: Path) -> None:
    run_id = new_run_id()
    assert is_run_id(run_id) and not is_run_id(run_id + "\n")
    assert check_remote("origin") == "origin"
    with pytest.raises(ValueError, match="invalid remote name"):
        check_remote("origin\n")
    with pytest.raises(ValueError, match="malformed subtype"):
        check_subtype("test", "test:nightly\n")
    with pytest.raises(UsersError):
        Users(repo / "users.json").add("alice\n")


def test_the_cli_refuses_a_user_name_with_a_newline(repo: Path) -> None:
    done = cli("users", "add", "alice\n", cwd=repo)
    assert done.returncode == 2 and "user name" in done.stderr
    assert cli("users", "list", cwd=repo).stdout == ""
