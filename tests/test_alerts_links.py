"""Alert mails and webhooks link to the run page, and that page answers with a login."""

from __future__ import annotations

import http.cookiejar
import threading
import urllib.request
from pathlib import Path

import pytest
import yaml
from flask import Flask
from werkzeug.serving import make_server

from controlplane import tracked_run
from controlplane.ui.web.extension import ControlPlane, shutdown
from tests.conftest import TOKEN
from tests.test_alerts import smtp_sink, webhook_sink  # noqa: F401  (fixtures)


def alert_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp_port: int,
                  hook_url: str) -> None:
    """Mail and webhook targets in the user file (where targets come from)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    user_file = tmp_path / "config" / "controlplane" / "config.yaml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text(yaml.safe_dump({"alerts": {
        "email": {"host": "127.0.0.1", "port": smtp_port, "starttls": False,
                  "from": "cp@example.com", "to": ["team@example.com"]},
        "webhook": {"url": hook_url}, "backoff_seconds": 0}}))


@pytest.fixture
def host_app_server():
    """A real server on a free port; the app is built once the port is known."""
    holder: dict[str, Flask] = {}
    server = make_server("127.0.0.1", 0, lambda env, start: holder["app"](env, start),
                         threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="alerts-links-server")
    thread.start()
    yield server.server_port, holder
    server.shutdown()
    thread.join(timeout=10)
    if "app" in holder:
        shutdown(holder["app"])


def failed_run(repo: Path) -> str:
    with pytest.raises(RuntimeError), \
            tracked_run("deploy", "deploy:web", summary="deploy web", project_root=repo) as run:
        raise RuntimeError("cluster said no")
    return run.run_id


def test_mail_and_webhook_link_to_the_run_page_under_the_prefix(
        repo: Path, smtp_sink, webhook_sink, host_app_server, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    hook_url, hooks, arrived = webhook_sink
    alert_targets(tmp_path, monkeypatch, smtp_sink.server_address[1], hook_url)
    port, holder = host_app_server
    app = Flask("host")
    ControlPlane(app, repo=repo, url_prefix="/ops", token=TOKEN, feed=False,
                 settings={"host": "127.0.0.1", "port": port})
    holder["app"] = app
    run_id = failed_run(repo)
    assert smtp_sink.received.wait(10) and arrived.wait(10)
    link = f"http://127.0.0.1:{port}/ops/runs/{run_id}"
    assert f"Open it: {link}" in smtp_sink.messages[0]
    assert hooks[0]["run_url"] == link and link in hooks[0]["text"]
    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    browser.open(f"http://127.0.0.1:{port}/ops/login?token={TOKEN}", timeout=10).read()
    with browser.open(link, timeout=10) as page:
        assert page.status == 200 and run_id in page.read().decode()


def test_public_url_from_the_environment_wins(repo: Path, smtp_sink, webhook_sink,  # noqa: F811
                                              make_app, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    hook_url, hooks, arrived = webhook_sink
    alert_targets(tmp_path, monkeypatch, smtp_sink.server_address[1], hook_url)
    monkeypatch.setenv("CONTROLPLANE_PUBLIC_URL", "https://ops.example.com/cp/")
    make_app()
    run_id = failed_run(repo)
    assert arrived.wait(10)
    assert hooks[0]["run_url"] == f"https://ops.example.com/cp/runs/{run_id}"


def test_public_url_is_refused_from_the_project_file(
        repo: Path, smtp_sink, webhook_sink, make_app, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    hook_url, hooks, arrived = webhook_sink
    alert_targets(tmp_path, monkeypatch, smtp_sink.server_address[1], hook_url)
    (repo / ".controlplane.yaml").write_text("public_url: https://evil.example.com\n")
    make_app()
    run_id = failed_run(repo)
    assert arrived.wait(10)
    assert hooks[0]["run_url"] == f"http://127.0.0.1:8000/runs/{run_id}"
