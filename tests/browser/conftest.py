"""Browser fixtures: the real app served over HTTP in a thread, Debian chromium via Playwright.

The project under test is a temporary git repository holding a tiny real pytest
suite (``tests/test_demo.py``): two quick tests and one that prints lines and then
waits for a ``gate`` file, so a test decides when a run ends (or cancels it).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from controlplane.core.actions import REGISTRY, Action, ActionContext, register
from tests.conftest import TOKEN, check_no_leaks, git, tool_env

CHROMIUM = Path("/usr/bin/chromium")
# The marks of a test module that drives Debian's chromium: ``pytestmark = CHROMIUM_TESTS``.
CHROMIUM_TESTS = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"{CHROMIUM} is missing (CI installs Debian's chromium package)"),
]
TIMEOUT_MS = 20_000  # a real pytest run on a busy two-core CI machine takes seconds
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update"]

DEMO_TESTS = textwrap.dedent('''
    """A tiny suite the dashboard runs for real."""

    import pathlib
    import time

    GATE = pathlib.Path(__file__).resolve().parent.parent / "gate"


    def test_adds():
        assert 1 + 1 == 2


    def test_upper():
        assert "a".upper() == "A"


    def test_streams_then_waits(capsys):
        with capsys.disabled():
            print()
            for number in range(3):
                print(f"demo line {number}", flush=True)
        deadline = time.monotonic() + 120
        while not GATE.exists():
            assert time.monotonic() < deadline, "the gate never opened"
            time.sleep(0.05)
        with capsys.disabled():
            print("gate opened", flush=True)
''').lstrip()


@dataclass
class LiveServer:
    """An app served over real HTTP: ``url``, ``app``, the project ``repo``."""

    url: str
    app: Any
    repo: Path
    page_errors: list[str] = field(default_factory=list)

    def open_gate(self) -> None:
        """Let the demo suite's waiting test finish."""
        (self.repo / "gate").touch()


@pytest.fixture
def project(repo: Path) -> Path:
    """The temporary repository with the demo pytest suite committed."""
    (repo / "tests").mkdir()
    (repo / "tests" / "test_demo.py").write_text(DEMO_TESTS)
    (repo / ".gitignore").write_text("gate\n__pycache__/\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "demo suite")
    return repo


# A kubeconfig with no cluster, so a machine with kubectl in /usr/bin and no ~/.kube/config
# shows the same settings banners as one without kubectl (diagnostics' tool_unreachable).
NO_CLUSTER_KUBECONFIG = Path(tempfile.mkdtemp(prefix="scp-test-kube-")) / "config"
atexit.register(shutil.rmtree, NO_CLUSTER_KUBECONFIG.parent, ignore_errors=True)
NO_CLUSTER_KUBECONFIG.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")


def browser_tool_env() -> dict[str, str]:
    """os.environ with PATH reaching this interpreter's pytest, without our pytest's variables."""
    env = {k: v for k, v in tool_env().items() if not k.startswith("PYTEST_")}
    if "KUBECONFIG" not in env and not (Path.home() / ".kube" / "config").exists():
        env["KUBECONFIG"] = str(NO_CLUSTER_KUBECONFIG)
    return env


@pytest.fixture
def serve(project: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start the app in a werkzeug server thread (options override config); stopped at teardown."""
    from werkzeug.serving import make_server

    from controlplane.ui.web.app import create_app, shutdown_app

    started: list[tuple[Any, threading.Thread, Any]] = []

    def start(**options: Any) -> LiveServer:
        config = {"REPO": project, "TOKEN": TOKEN, "TOOL_ENV": browser_tool_env(),
                  "FEED": False, "SSE_HEARTBEAT": 0.5, **options}
        app = create_app(config)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name="browser-test-server",
                                  daemon=True)
        thread.start()
        started.append((server, thread, app))
        return LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=app, repo=project)

    yield start
    for server, thread, app in started:
        server.shutdown()
        server.server_close()
        thread.join(10)
        shutdown_app(app)


@pytest.fixture
def server(serve: Callable[..., LiveServer]) -> LiveServer:
    return serve()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (CI installs Debian's chromium package)")
    sync_api = pytest.importorskip("playwright.sync_api")
    sync_api.expect.set_options(timeout=TIMEOUT_MS)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def open_context(browser: Any, serve: Callable[..., LiveServer]) -> Iterator[Callable[..., Any]]:
    """A logged-in browser context on *server* (closed before the server stops).

    Uncaught page errors are collected in ``server.page_errors`` and fail the test.
    """
    opened: list[tuple[Any, LiveServer]] = []

    def make(server: LiveServer, **options: Any) -> Any:
        context = browser.new_context(base_url=server.url, **options)
        context.set_default_timeout(TIMEOUT_MS)
        context.on("page", lambda page: page.on(
            "pageerror", lambda error: server.page_errors.append(f"{page.url}: {error}")))
        page = context.new_page()
        page.goto(f"/login?token={TOKEN}&next=/healthz")
        assert any(c["name"].startswith("controlplane_session") for c in context.cookies()), \
            "the login exchange set no cookie"
        page.close()
        opened.append((context, server))
        return context

    yield make
    errors = []
    for context, server in opened:
        context.close()
        errors += server.page_errors
    assert not errors, f"uncaught errors in the pages: {errors}"


@pytest.fixture
def context(open_context: Callable[..., Any], server: LiveServer) -> Any:
    return open_context(server)


class WipeParams(BaseModel):
    target: str = Field("scratch", pattern=r"^[a-z]+$", description="area to wipe")


def wipe(ctx: ActionContext, params: WipeParams) -> dict[str, Any]:
    ctx.run.output(f"wiping {params.target}")
    return {"ok": True, "wiped": params.target}


@pytest.fixture
def demo_action() -> Iterator[Action]:
    """A test-only destructive action at /demo/wipe (register before the app is created)."""
    action = Action(path="/demo/wipe", subtype="destroy:demo", title="Wipe the scratch area",
                    params=WipeParams, service=wipe, destructive=True,
                    description="Test-only: pretends to wipe an area.")
    register(action)
    yield action
    REGISTRY.pop(action.path, None)


@pytest.fixture(autouse=True)
def no_leaks():
    """tests/conftest.py's leak check, allowing the threads of the session-wide browser driver.

    Playwright's event loop starts ``asyncio_N`` executor threads when it first needs
    them (a screenshot, a file); they belong to the browser, which outlives the test.
    """
    before = {t.ident for t in threading.enumerate()}
    yield
    check_no_leaks(before, allowed=lambda thread: thread.name.startswith("asyncio_"))
