"""The operator's "Broken today" (issue 17), in Debian chromium against real servers.

A page survives a real ``controlplane serve`` restart (and says so when its login really
ended), cancel reaches a ``controlplane exec`` run, a 409 is said in plain words next to the
button that caused it, the operations card counts runs of other processes, and a rerun
records the person who asked for it.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.core.ledger import Ledger
from controlplane.core.users import Users
from tests.browser.conftest import CHROMIUM_TESTS, TIMEOUT_MS, TOKEN, browser_tool_env
from tests.processes import read_line

pytestmark = CHROMIUM_TESTS
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

WAIT = 60  # seconds: a bound for a hang, never a synchronisation
PHONE = {"width": 390, "height": 844}
RECONNECT_GAP = 1.5  # seconds between two tries of the stream: the 1 s cap plus a busy machine


def call(base: str, method: str, path: str, token: str = TOKEN, body: dict | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """One real HTTP request with a Bearer token; (status, JSON body)."""
    request = urllib.request.Request(
        base + path, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                 **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Serve:
    """``python -m controlplane serve`` as a terminal runs it, on a port we choose."""

    def __init__(self, repo: Path, port: int, token: str) -> None:
        env = {k: v for k, v in browser_tool_env().items() if not k.startswith("CONTROLPLANE_")}
        env["CONTROLPLANE_TOKEN"] = token
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controlplane", "serve", "--repo", str(repo),
             "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.wait_for_line(b"Control plane for ")

    def wait_for_line(self, prefix: bytes) -> None:
        assert self.proc.stdout is not None
        fd, buffer = self.proc.stdout.fileno(), b""
        deadline = time.monotonic() + WAIT
        while not any(line.startswith(prefix) for line in buffer.split(b"\n")):
            assert select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0], \
                f"serve printed no {prefix!r}: {buffer!r}"
            chunk = os.read(fd, 65536)
            assert chunk, f"serve exited: {buffer.decode(errors='replace')}"
            buffer += chunk

    def kill(self) -> None:
        """Killed outright (SIGKILL), as a crash or `kill -9` does."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(WAIT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # in-flight runs are recorded cancelled
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def serve_process(project: Path) -> Iterator[Callable[..., Serve]]:
    started: list[Serve] = []

    def start(port: int, token: str = TOKEN) -> Serve:
        server = Serve(project, port, token)
        started.append(server)
        return server

    yield start
    (project / "gate").touch()  # a demo run still waiting may end
    for server in started:
        server.stop()


@pytest.fixture
def spawn(project: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Processes in the project (``controlplane exec``…); killed if still running at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(*argv: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(list(argv), cwd=project, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # exec passes it on to its command
        process.communicate(timeout=WAIT)


def exec_sleeper(spawn: Callable[..., subprocess.Popen[str]]) -> subprocess.Popen[str]:
    """A ``controlplane exec`` run that runs until it is stopped (it printed its pid)."""
    process = spawn(sys.executable, "-m", "controlplane", "exec", "test:elsewhere", "--",
                    "sh", "-c", "echo $$; exec sleep 120")
    read_line(process, WAIT)
    return process


def log_in(browser: Any, base: str, token: str = TOKEN, **options: Any) -> Any:
    context = browser.new_context(base_url=base, **options)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"/login?token={token}&next=/healthz")
    page.close()
    return context


def connected(page: Any) -> None:
    expect(page.locator("[data-conn]")).to_have_attribute("data-state", "connected")


# -- 1. a server restart ---------------------------------------------------------------


def test_a_page_open_across_a_server_restart_shows_a_new_run_within_2_s(
        browser: Any, serve_process: Callable[..., Serve]) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    first = serve_process(port)
    context = log_in(browser, base)
    try:
        page = context.new_page()
        page.goto("/")
        connected(page)
        page.evaluate("window.__stillTheSamePage = true")

        first.kill()
        attempts = []  # when the page tried the stream (its WebSocket) again while down
        for _ in range(5):
            page.wait_for_event("websocket", predicate=lambda ws: "/ws/events" in ws.url,
                                timeout=TIMEOUT_MS)
            attempts.append(time.monotonic())
        gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
        assert max(gaps) <= RECONNECT_GAP, gaps  # backoff capped at 1 s (DECISIONS §12)
        expect(page.locator("[data-conn]")).not_to_have_attribute("data-state", "connected")
        serve_process(port)
        status, started = call(base, "POST", "/testing/run", headers={
            "Prefer": "respond-async"}, body={"keyword": "streams_then_waits"})
        assert status == 202, started
        asked = time.monotonic()

        row = page.locator(f'tr[data-run-id="{started["run_id"]}"]')
        expect(row).to_be_visible(timeout=2_000)
        assert time.monotonic() - asked <= 2.5  # expect's own bound, plus its polling
        connected(page)
        assert page.evaluate("window.__stillTheSamePage === true")  # no reload, no new login
        expect(page.locator("[data-banner]")).to_be_hidden()
    finally:
        context.close()


def test_a_page_whose_login_ended_says_so_and_offers_the_way_back(
        browser: Any, serve_process: Callable[..., Serve]) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    first = serve_process(port)
    context = log_in(browser, base)
    try:
        page = context.new_page()
        page.goto("/")
        connected(page)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url) if "/api/events" in r.url else None)

        first.kill()
        serve_process(port, token="rotated-token-0123456789")  # the token was replaced

        indicator = page.locator("[data-conn]")
        expect(indicator).to_have_attribute("data-state", "logged-out")
        banner = page.locator("[data-banner]")
        expect(banner).to_contain_text("Your login has ended")
        link = banner.get_by_role("link", name="Log in again")
        assert link.get_attribute("href") == "/login?next=%2F"
        expect(indicator).to_contain_text("Logged out")
        tried = len(requests)
        page.wait_for_timeout(2_500)  # no loop of retries once the login is known to be over
        assert len(requests) == tried, requests
    finally:
        context.close()


# -- 2. cancel reaches runs of other processes ------------------------------------------


def test_cancel_from_the_run_page_stops_a_controlplane_exec_run(
        serve: Callable[..., Any], open_context: Callable[..., Any],
        spawn: Callable[..., subprocess.Popen[str]], project: Path) -> None:
    server = serve(FEED=True)
    process = exec_sleeper(spawn)
    run_id = Ledger.open(project).active()[0]["run_id"]
    page = open_context(server).new_page()
    page.goto(f"/runs/{run_id}")
    connected(page)

    page.get_by_role("button", name="Cancel run").click()

    expect(page.locator("[data-run-status]")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
    expect(page.locator("[data-banner]")).to_be_hidden()
    assert process.wait(WAIT) in (128 + signal.SIGINT, 128 + signal.SIGTERM)
    assert Ledger.open(project).get(run_id)["status"] == "cancelled"


# -- 4. refusals next to the control, in plain words -----------------------------------


def test_a_409_is_said_next_to_the_button_with_who_and_when_on_a_phone(
        serve: Callable[..., Any], open_context: Callable[..., Any], project: Path) -> None:
    server = serve()
    alice = Users(project / ".git" / "scp" / "users.json").add("alice")
    status, held = call(server.url, "POST", "/testing/run", token=alice,
                        headers={"Prefer": "respond-async"})
    assert status == 202, held
    page = open_context(server, viewport=PHONE).new_page()
    page.goto("/integrations/testing")
    connected(page)
    card = page.locator('section[data-action="/testing/run"]')
    button = card.get_by_role("button", name="Running…")  # aria-disabled while alice's runs
    button.scroll_into_view_if_needed()

    button.click(force=True)  # aria-disabled: Playwright would wait; a user's click lands

    refusal = card.locator("[data-refusal]")
    expect(refusal).to_be_focused()
    expect(refusal).to_contain_text(
        re.compile(r"Already running: started by alice \d+ s ago"))
    expect(refusal).to_be_in_viewport()
    link = refusal.get_by_role("link", name="open it")
    assert link.get_attribute("href") == f"/runs/{held['run_id']}"
    expect(refusal).not_to_contain_text("lock")
    expect(page.locator("[data-banner]")).to_be_hidden()
    server.open_gate()


# -- 5. the operations card sees runs the server did not start -------------------------


def test_the_operations_card_counts_a_controlplane_exec_run(
        serve: Callable[..., Any], open_context: Callable[..., Any],
        spawn: Callable[..., subprocess.Popen[str]]) -> None:
    server = serve(FEED=True)
    page = open_context(server).new_page()
    page.goto("/")
    connected(page)
    running = page.locator('[data-ops="running"]')
    expect(running).to_have_text("0")

    process = exec_sleeper(spawn)

    expect(running).to_have_text("1")
    expect(running).to_have_attribute("data-elsewhere", "1")
    process.send_signal(signal.SIGTERM)
    process.wait(WAIT)
    expect(running).to_have_text("0")


# -- 3. a rerun records who asked -------------------------------------------------------


def test_alices_rerun_records_alice_over_http_and_from_the_browser(
        serve: Callable[..., Any], open_context: Callable[..., Any], browser: Any,
        project: Path) -> None:
    server = serve()
    alice = Users(project / ".git" / "scp" / "users.json").add("alice")
    status, first = call(server.url, "POST", "/security/generate/gitignore", body={})
    assert status == 200 and first["status"] == "ok", first

    status, by_http = call(server.url, "POST", f"/api/runs/{first['run_id']}/rerun",
                           token=alice, body={})
    assert status == 200, by_http
    ledger = Ledger.open(project)
    assert ledger.get(by_http["run_id"])["actor"] == {"kind": "api", "name": "alice"}

    context = log_in(browser, server.url, token=alice)
    try:
        page = context.new_page()
        page.goto(f"/runs/{first['run_id']}")
        page.get_by_role("button", name="Rerun").click()
        expect(page).not_to_have_url(f"{server.url}/runs/{first['run_id']}")
        expect(page.locator("[data-run-status]")).to_have_text("ok")
        rerun_id = page.url.rsplit("/", 1)[1]
        assert Ledger.open(project).get(rerun_id)["actor"] == {"kind": "web", "name": "alice"}
    finally:
        context.close()
