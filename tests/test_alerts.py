"""A failed run sends an e-mail and a webhook; an unreachable target never fails the run."""

from __future__ import annotations

import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from controlplane import tracked_run
from controlplane.core.alerts import AlertConfig, Alerter
from controlplane.core.events import default_bus


class SMTPSink(socketserver.StreamRequestHandler):
    """Just enough SMTP (no TLS) to receive one message."""

    def handle(self) -> None:
        self.wfile.write(b"220 sink ready\r\n")
        data, in_data = [], False
        for raw in self.rfile:
            line = raw.decode().rstrip("\r\n")
            if in_data:
                if line == ".":
                    in_data = False
                    self.server.messages.append("\n".join(data))  # type: ignore[attr-defined]
                    self.server.received.set()  # type: ignore[attr-defined]
                    self.wfile.write(b"250 queued\r\n")
                else:
                    data.append(line)
                continue
            verb = line.split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                self.wfile.write(b"250 sink\r\n")
            elif verb == "DATA":
                in_data = True
                self.wfile.write(b"354 go\r\n")
            elif verb == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def smtp_sink():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SMTPSink)
    server.daemon_threads = True
    server.messages, server.received = [], threading.Event()
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def webhook_sink():
    received: list[dict] = []
    arrived = threading.Event()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            arrived.set()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received, arrived
    server.shutdown()
    server.server_close()
    thread.join()


def test_failed_run_alerts_by_email_and_webhook(repo: Path, smtp_sink, webhook_sink,
                                                make_app, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    url, hooks, arrived = webhook_sink
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    user_file = tmp_path / "config" / "controlplane" / "config.yaml"  # targets: not committed
    user_file.parent.mkdir(parents=True)
    (repo / ".controlplane.yaml").write_text("alerts: {types: [deploy]}\n")  # a project fact
    user_file.write_text(yaml.safe_dump({"alerts": {
        "email": {"host": "127.0.0.1", "port": smtp_sink.server_address[1], "starttls": False,
                  "from": "cp@example.com", "to": ["team@example.com"]},
        "webhook": {"url": url}}}))
    make_app()
    with tracked_run("test", "test:ignored", project_root=repo) as ignored:
        ignored.fail("exit_status", "tests failed")  # not a chosen type: no alert
    with pytest.raises(RuntimeError), \
            tracked_run("deploy", "deploy:web", summary="deploy web", project_root=repo) as run:
        raise RuntimeError("cluster said no")
    assert smtp_sink.received.wait(10) and arrived.wait(10)
    assert len(smtp_sink.messages) == 1 and len(hooks) == 1
    mail = smtp_sink.messages[0]
    assert "Subject: [controlplane] deploy:web failed: deploy web" in mail
    assert run.run_id in mail and "cluster said no" in mail
    assert hooks[0]["run"]["run_id"] == run.run_id and hooks[0]["event"] == "run:failed"


def test_unreachable_target_is_retried_then_logged(repo: Path) -> None:
    config = AlertConfig.model_validate({"webhook": {"url": "http://127.0.0.1:9/none"},
                                         "retries": 2, "backoff_seconds": 0})
    alerter = Alerter(config, default_bus())
    done = threading.Event()
    original = alerter._deliver

    def deliver(*args):
        original(*args)
        done.set()

    alerter._deliver = deliver
    try:
        with tracked_run("build", "build:x", project_root=repo) as run:
            run.fail("exit_status", "broken")
        assert done.wait(30)
    finally:
        alerter.close()
    assert alerter.failed and alerter.failed[0][:2] == ("webhook", run.run_id)
    assert alerter.sent == []
