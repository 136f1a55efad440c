"""``python -m bench.cookie_ports``: which local listeners a real chromium sends our cookie to.

Serves the control plane on one loopback port and two tiny listeners on others
(they record the Cookie header they get), logs a chromium in, and then:

1. the user opens ``http://127.0.0.1:<other port>/`` (another local service);
2. a page of another local service (same site, another port) loads an image from
   a third port;
3. a page on ``localhost`` (another site) loads an image from ``127.0.0.1:<other port>``;
4. the control plane answers ``Set-Cookie: __Host-…; Secure`` over plain http.

Prints what each listener received. Needs /usr/bin/chromium and playwright.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
TOKEN = "cookie-ports-bench-token"


class Recorder(BaseHTTPRequestHandler):
    """Answers a page (``/page?img=URL`` embeds that image) and records every Cookie header."""

    seen: list[tuple[int, str, str]] = []

    def do_GET(self) -> None:
        port = self.server.server_address[1]
        Recorder.seen.append((port, self.path, self.headers.get("Cookie", "")))
        body = b"ok"
        if self.path.startswith("/page?img="):
            body = f'<img src="{self.path.partition("=")[2]}">'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def listener() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def names(header: str) -> list[str]:
    """The cookie names in a Cookie header (the values are secrets: never printed)."""
    return [part.partition("=")[0].strip() for part in header.split(";") if part.strip()]


def cookies_at(port: int) -> list[list[str]]:
    return [names(cookie) for seen_port, _, cookie in Recorder.seen if seen_port == port]


def main() -> int:
    import logging

    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from controlplane.ui.web.app import create_app, shutdown_app

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    repo = Path(tempfile.mkdtemp()) / "project"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    app = create_app({"REPO": repo, "TOKEN": TOKEN, "FEED": False})
    plane = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=plane.serve_forever, daemon=True).start()
    other, third = listener(), listener()
    base = f"http://127.0.0.1:{plane.server_port}"
    other_url = f"http://127.0.0.1:{other.server_port}"
    third_url = f"http://127.0.0.1:{third.server_port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{base}/login?token={TOKEN}&next=/healthz")
            print(f"logged in on port {plane.server_port}: cookies "
                  f"{[c['name'] for c in context.cookies()]}")

            page.goto(f"{other_url}/")
            print(f"1. user opens another local port: it receives {cookies_at(other.server_port)}")

            page.goto(f"{other_url}/page?img={third_url}/pixel")
            page.wait_for_load_state("networkidle")
            print(f"2. another local service's page loads from a third port: it receives "
                  f"{cookies_at(third.server_port)}")

            Recorder.seen.clear()
            page.goto(f"http://localhost:{other.server_port}/page?img={other_url}/pixel")
            page.wait_for_load_state("networkidle")
            got = [names(c) for _, path, c in Recorder.seen if path == "/pixel"]
            print(f"3. a page of another site (localhost) loads from 127.0.0.1: {got}")

            page.route(f"{base}/healthz", lambda route: route.fulfill(
                status=200, body="ok", headers={"Set-Cookie": "__Host-probe=1; Path=/; Secure"}))
            page.goto(f"{base}/healthz")
            host_cookie = [c for c in context.cookies() if c["name"] == "__Host-probe"]
            Recorder.seen.clear()
            page.goto(f"{other_url}/")
            print(f"4. __Host- cookie over http://127.0.0.1 accepted: {bool(host_cookie)}; "
                  f"another port then receives {cookies_at(other.server_port)}")
            browser.close()
    finally:
        plane.shutdown()
        other.shutdown()
        third.shutdown()
        shutdown_app(app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
