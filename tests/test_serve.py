"""`controlplane serve` as a user runs it: a real gunicorn process, its login URL, its exit."""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import simple_websocket

from controlplane.core.ledger import Ledger
from tests.conftest import git

TOKEN = "serve-t0k3n-for-tests"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
STOP_WITHIN = 45  # seconds a stopped server may take, at most, to be gone


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    return {**env, **extra}


class Answer:
    """A finished HTTP exchange: status, headers and body."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()

    def json(self) -> dict:
        return json.loads(self.body)


def request(server: Server, method: str, path: str, body: dict | None = None,
            headers: dict[str, str] | None = None) -> Answer:
    """One request on a fresh connection (closed before returning)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        return Answer(conn.getresponse())
    finally:
        conn.close()


class Server:
    """`python -m controlplane serve` in a session of its own (as a terminal would run it)."""

    def __init__(self, repo: Path, tmp_path: Path, *args: str, env: dict[str, str] | None = None,
                 token: str | None = TOKEN) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.stderr_path = tmp_path / f"serve-{self.port}.err"
        env = dict(env or server_env())
        if token:
            env["CONTROLPLANE_TOKEN"] = token
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "controlplane", "serve", "--repo", str(repo),
                 "--port", str(self.port), *args],
                stdout=subprocess.PIPE, stderr=stderr, env=env, start_new_session=True)
        self.line = self.wait_for_line(b"Control plane for ")

    def wait_for_line(self, prefix: bytes, timeout: float = 60.0) -> str:
        """The first stdout line starting with *prefix* (reads as lines arrive)."""
        assert self.proc.stdout is not None
        fd, buffer = self.proc.stdout.fileno(), b""
        deadline = time.monotonic() + timeout
        while True:
            for line in buffer.split(b"\n")[:-1]:
                if line.startswith(prefix):
                    return line.decode()
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {prefix!r} line; stderr: {self.stderr()}"
            if select.select([fd], [], [], remaining)[0]:
                chunk = os.read(fd, 65536)
                assert chunk, f"the server exited: {self.stderr()}"
                buffer += chunk

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send *sig* (SIGINT to the whole group, as Ctrl-C does) and wait for the exit."""
        if sig == signal.SIGINT:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=STOP_WITHIN)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def start(repo: Path, tmp_path: Path) -> Iterator:
    servers: list[Server] = []

    def start_server(*args: str, **options) -> Server:
        server = Server(repo, tmp_path, *args, **options)
        servers.append(server)
        return server

    yield start_server
    for server in servers:
        server.kill()
        print(f"server stderr:\n{server.stderr()}")  # shown when the test failed


class Events:
    """A minimal SSE reader: the envelopes of ``/api/events`` as they arrive (resuming
    after *last_event_id* when given)."""

    def __init__(self, server: Server, last_event_id: str | None = None) -> None:
        headers = {**BEARER, "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        self.conn.request("GET", "/api/events", headers=headers)
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        assert self.response.readline().startswith(b"retry:")  # subscribed from here on

    def wait_for(self, predicate) -> dict:
        while True:
            line = self.response.readline()
            assert line, "the event stream ended"
            if line.startswith(b"data: "):
                envelope = json.loads(line[6:])
                if predicate(envelope):
                    return envelope

    def close(self) -> None:
        self.conn.close()


def test_serve_prints_the_login_url_answers_and_stops_on_sigterm(start, repo: Path) -> None:
    server = start()
    url = f"{server.base}/login?token={TOKEN}"
    assert server.line == f"Control plane for {repo} at {url}"
    assert request(server, "GET", "/healthz").json() == {"ok": True}
    assert request(server, "GET", "/").status == 401
    assert request(server, "GET", "/api/runs/recent").status == 401
    answer = request(server, "GET", "/api/runs/recent", headers=BEARER)
    assert answer.status == 200 and answer.headers["X-Frame-Options"] == "DENY"
    assert request(server, "GET", "/", headers=BEARER).status not in (401, 500)

    login = request(server, "GET", f"/login?token={TOKEN}&next=/api/runs/recent")
    assert login.status == 303 and login.headers["Location"] == "/api/runs/recent"
    cookie = login.headers["Set-Cookie"].partition(";")[0]
    assert request(server, "GET", "/api/runs/recent", headers={"Cookie": cookie}).status == 200

    ws = simple_websocket.Client.connect(f"ws://127.0.0.1:{server.port}/ws/events",
                                         headers=BEARER)
    assert ws.connected
    ws.close()
    with pytest.raises(simple_websocket.ConnectionError):
        simple_websocket.Client.connect(f"ws://127.0.0.1:{server.port}/ws/events",
                                        headers={**BEARER, "Origin": "http://evil.example"})

    assert server.stop(signal.SIGTERM) == 0
    assert TOKEN not in server.stderr()


def test_a_foreign_host_is_refused_by_the_real_server(start) -> None:
    server = start()
    answer = request(server, "GET", "/healthz", headers={"Host": "evil.example"})
    assert answer.status == 403 and answer.json()["error"] == "forbidden_host"
    assert server.stop() == 0


SLOW_PYTEST = """#!/bin/sh
sleep 300 &
echo $! > "{pidfile}"
echo waiting
wait
"""


@pytest.fixture
def slow_tool(repo: Path, tmp_path: Path) -> dict[str, object]:
    """A project with tests and a `pytest` on PATH that runs until it is killed."""
    (repo / "tests").mkdir()
    (repo / "tests" / "test_x.py").write_text("def test_x():\n    pass\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "tests")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pidfile = tmp_path / "sleep.pid"
    fake = bin_dir / "pytest"
    fake.write_text(SLOW_PYTEST.format(pidfile=pidfile))
    fake.chmod(0o755)
    env = server_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return {"env": env, "pidfile": pidfile}


def start_slow_run(server: Server) -> tuple[str, Events]:
    """Start the slow run through the API; returns once its tool printed (the run is running)."""
    events = Events(server)
    answer = request(server, "POST", "/testing/run", {},
                     headers={**BEARER, "Prefer": "respond-async"})
    assert answer.status == 202, answer.body
    run_id = answer.json()["run_id"]
    events.wait_for(lambda e: e["type"] == "run:output" and e["run_id"] == run_id)
    return run_id, events


def gone(pid: int, timeout: float = 30.0) -> bool:
    """True once *pid* has exited (a zombie counts): waits for it, up to *timeout* seconds."""
    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    _, alive = psutil.wait_procs([process], timeout=timeout)
    try:
        return not alive or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_stopping_records_the_running_run_as_cancelled(start, repo: Path, slow_tool,
                                                       sig: int) -> None:
    server = start(env=slow_tool["env"])
    run_id, events = start_slow_run(server)
    sleeper = int(slow_tool["pidfile"].read_text())
    assert server.stop(sig) == 0  # the event stream is still open: it must not hold the exit
    events.close()
    stored = Ledger.open(repo).get(run_id)
    assert stored["status"] == "cancelled" and stored["error"]["code"] == "cancelled"
    assert gone(sleeper)  # the tool's whole process group was killed


def test_a_worker_killed_outright_leaves_its_run_interrupted(start, repo: Path,
                                                             slow_tool) -> None:
    server = start(env=slow_tool["env"])
    run_id, events = start_slow_run(server)
    events.close()
    sleeper = int(slow_tool["pidfile"].read_text())
    worker = psutil.Process(server.proc.pid).children()[0]
    worker.kill()  # no chance to record anything; the master starts a new worker
    worker.wait(timeout=30)
    assert request(server, "GET", "/healthz").status == 200  # the new worker is serving
    assert server.stop() == 0
    stored = Ledger.open(repo).get(run_id)
    assert stored["status"] == "interrupted" and stored["error"]["code"] == "interrupted"
    assert gone(sleeper)  # the dead worker's tool was killed when its run was recovered


GATED_PYTEST = """#!/bin/sh
echo waiting
read line < "{fifo}"
echo released
"""


def release(fifo: Path) -> bool:
    """Let the gated tool finish (False if it is not waiting at the gate)."""
    try:
        gate = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: nobody reads it
        return False
    with os.fdopen(gate, "w") as writer:
        writer.write("go\n")
    return True


def test_graceful_stop_lets_the_run_finish(start, repo: Path, slow_tool, tmp_path) -> None:
    fifo = tmp_path / "gate"
    os.mkfifo(fifo)
    fake = Path(slow_tool["env"]["PATH"].split(os.pathsep)[0]) / "pytest"
    fake.write_text(GATED_PYTEST.format(fifo=fifo))
    server = start("--graceful", env=slow_tool["env"])
    try:
        run_id, events = start_slow_run(server)  # the tool is now blocked at the gate
        events.close()
        server.proc.send_signal(signal.SIGTERM)
        # Not a synchronisation: without --graceful the run is cancelled and the server gone
        # well within this; here it must still be waiting for the run.
        with pytest.raises(subprocess.TimeoutExpired):
            server.proc.wait(timeout=3)
        assert release(fifo)
        assert server.proc.wait(timeout=STOP_WITHIN) == 0
    finally:
        release(fifo)  # never leave the tool behind when the test failed
    stored = Ledger.open(repo).get(run_id)
    assert stored["status"] == "ok", stored


def test_a_public_address_needs_an_explicit_token(repo: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "controlplane", "serve", "--repo", str(repo),
                           "--host", "0.0.0.0", "--port", str(free_port())],
                          capture_output=True, text=True, env=server_env(), timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("controlplane: error: refusing to listen")
    assert "CONTROLPLANE_TOKEN" in lines[0]


def test_a_busy_port_is_one_line_and_exit_2(repo: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "controlplane", "serve", "--repo",
                               str(repo), "--port", str(port)],
                              capture_output=True, text=True, env=server_env(), timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("controlplane: error: cannot listen on 127.0.0.1:")
    assert done.stderr.rstrip().endswith("something already listens there: pass another --port")
    assert len(done.stderr.splitlines()) == 1


def test_serve_outside_a_repository_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "controlplane", "serve", "--repo",
                           str(tmp_path)], capture_output=True, text=True, env=server_env(),
                          timeout=60)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert "not a git repository" in done.stderr


def test_open_starts_the_browser_on_the_login_url(start, tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(60)
        browser = tmp_path / "fake-browser"
        browser.write_text(f"#!{sys.executable}\nimport socket, sys\n"
                           f"socket.create_connection(('127.0.0.1', "
                           f"{listener.getsockname()[1]})).sendall(sys.argv[1].encode())\n")
        browser.chmod(0o755)
        server = start("--open", env=server_env(BROWSER=str(browser)))
        connection, _ = listener.accept()  # the browser was started
        with connection:
            opened = connection.makefile("rb").read().decode()
    assert opened == f"{server.base}/login?token={TOKEN}"
    assert server.stop() == 0


def test_the_token_file_stays_the_same_across_starts(start, repo: Path) -> None:
    first = start(token=None)
    first_url = first.line.rsplit(" ", 1)[1]
    assert first.stop() == 0
    second = start(token=None)
    assert second.line.rsplit(" ", 1)[1].split("?")[1] == first_url.split("?")[1]
    token = (repo / ".git" / "scp" / "token").read_text().strip()
    assert first_url.endswith(f"?token={token}")
    assert second.stop() == 0


def test_config_prints_settings_with_their_source(repo: Path, tmp_path: Path) -> None:
    (repo / ".controlplane.yaml").write_text("action_timeout: 64\n")  # a project fact
    env = server_env(CONTROLPLANE_PORT="9001", CONTROLPLANE_TOKEN="secret-value-123",
                     XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    done = subprocess.run([sys.executable, "-m", "controlplane", "config", "--repo", str(repo)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "port = 9001  [env CONTROLPLANE_PORT]" in lines
    assert "action_timeout = 64.0  [.controlplane.yaml]" in lines
    assert "host = 127.0.0.1  [default]" in lines
    assert "token = ***  [env CONTROLPLANE_TOKEN]" in lines
    assert "secret-value-123" not in done.stdout


@pytest.mark.parametrize("command", ["config", "serve"])
def test_a_bad_setting_is_one_line_and_exit_2(repo: Path, command: str) -> None:
    done = subprocess.run([sys.executable, "-m", "controlplane", command, "--repo", str(repo)],
                          capture_output=True, text=True, timeout=60,
                          env=server_env(CONTROLPLANE_PORT="eighty"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "controlplane: error: port: expected int, got 'eighty'\n"
