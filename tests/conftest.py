"""Fixtures: a temporary project repository, a PATH of our own, leak checks."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest

from controlplane.core import redact
from controlplane.core.ledger import Ledger

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test User", "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test User", "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(repo: Path, *args: str, check: bool = True) -> str:
    """Run real git in *repo* and return its stdout."""
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=False, env={**os.environ, **GIT_ENV})
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def make_repo(path: Path, commit: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")
    if commit:
        (path / "README.md").write_text("# demo project\n")
        git(path, "add", "README.md")
        git(path, "commit", "-q", "-m", "initial commit")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one commit."""
    return make_repo(tmp_path / "project")


@pytest.fixture
def empty_repo(tmp_path: Path) -> Path:
    """A git repository with no commit yet."""
    return make_repo(tmp_path / "empty", commit=False)


@pytest.fixture
def fake_bin(tmp_path: Path):
    """Write small executables into a bin dir of this test's own; returns a writer."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()

    def write(name: str, script: str) -> Path:
        path = bin_dir / name
        path.write_text(textwrap.dedent(script).lstrip())
        path.chmod(0o755)
        return path

    write.dir = bin_dir  # type: ignore[attr-defined]
    return write


def python_script(body: str) -> str:
    """A fake tool written in Python (with this interpreter)."""
    return f"#!{sys.executable}\n" + textwrap.dedent(body)


def check_no_leaks(threads_before: set[int | None], allowed=lambda thread: False) -> None:
    """Fail if a run of this process is still in flight or a new thread is still alive."""
    leaked_runs = []
    for ledger in list(Ledger._instances.values()):
        leaked_runs += [e.run["run_id"] for e in ledger.journal.entries()
                        if e.pid == os.getpid()]
    Ledger.forget_instances()
    redact.redactor.clear()  # secrets one test registered must not redact another's output
    assert not leaked_runs, f"runs left running: {leaked_runs}"
    extra = [t for t in threading.enumerate() if t.ident not in threads_before and t.is_alive()
             and not t.daemon and not allowed(t)]
    assert not extra, f"threads left running: {extra}"


@pytest.fixture(autouse=True)
def no_leaks():
    """Fail a test that leaves a run running in this process or a thread behind."""
    before = {t.ident for t in threading.enumerate()}
    yield
    check_no_leaks(before)


TOKEN = "test-token-0123456789"

# The operator's user file ($XDG_CONFIG_HOME/controlplane/config.yaml) of the machine running
# the tests must not reach them: every test process (and its children) gets an empty one.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="scp-test-xdg-")
atexit.register(shutil.rmtree, os.environ["XDG_CONFIG_HOME"], ignore_errors=True)

LONG = os.environ.get("CONTROLPLANE_LONG_TESTS") == "1"
"""``CONTROLPLANE_LONG_TESTS=1``: the ``slow`` tests run their long form (CI runs the short one)."""


def scaled(short: int, long: int) -> int:
    """*long* when the long campaign was asked for, else *short* (what CI runs)."""
    return long if LONG else short


def python_script_dirs() -> list[str]:
    """Where this Python's console scripts (pytest, ruff, coverage…) are installed."""
    import sysconfig

    found = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    return list(dict.fromkeys(d for d in found if d and Path(d).is_dir()))


def tool_env(*dirs: Path) -> dict[str, str]:
    """An environment whose PATH is only *dirs* plus what git and python need."""
    base = [str(d) for d in dirs] + [*python_script_dirs(), "/usr/bin", "/bin"]
    inherited = {k: v for k, v in os.environ.items()
                 if k != "PATH" and not k.startswith("PYTEST_")}  # not this run's own pytest's
    return {**inherited, "PATH": os.pathsep.join(base)}


@pytest.fixture
def make_app(repo: Path):
    """Build the app for *repo* (options override); every app is shut down at teardown."""
    from controlplane.ui.web import create_app
    from controlplane.ui.web.app import shutdown_app

    apps = []

    def build(**options):
        config = {"REPO": repo, "TOKEN": TOKEN, "FEED": False, "TESTING": True,
                  "TOOL_ENV": tool_env(), **options}
        app = create_app(config)
        apps.append(app)
        return app

    yield build
    for app in apps:
        shutdown_app(app)


@pytest.fixture
def app(make_app):
    return make_app()


def bearer_client(app):
    """A test client that sends the Bearer token (a script's way in)."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return client


@pytest.fixture
def client(app):
    return bearer_client(app)


@pytest.fixture
def served(app):
    """The app served for real on a free loopback port (werkzeug, threaded); yields its URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server")
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


BASIC_TOOLS = ("sh", "bash", "env", "git", "cat", "tar", "gzip", "ls", "mkdir", "rm", "sleep",
               "touch", "true", "false", "echo", "head", "tail", "sed", "grep", "dirname",
               "basename", "readlink", "uname", "id", "ssh")


def isolated_path(directory: Path, *, exclude: tuple[str, ...] = (),
                  first: Path | None = None) -> dict[str, str]:
    """A tool environment whose PATH holds only basic tools and this Python's scripts.

    Nothing from /usr/local/bin (kubectl, terraform, docker…) is there unless a
    test puts a fake in *first*; names in *exclude* are left out entirely.
    """
    directory.mkdir(parents=True, exist_ok=True)
    import shutil as _shutil

    for name in BASIC_TOOLS:
        found = _shutil.which(name)
        if found and name not in exclude and not (directory / name).exists():
            (directory / name).symlink_to(found)
    for scripts in python_script_dirs():
        for entry in Path(scripts).iterdir():
            if entry.name not in exclude and not (directory / entry.name).exists():
                (directory / entry.name).symlink_to(entry)
    dirs = [str(first)] if first else []
    return {**{k: v for k, v in os.environ.items() if k != "PATH"},
            "PATH": os.pathsep.join([*dirs, str(directory)])}


# Under CI=true a test may not skip for want of something .ci/run installs (DECISIONS §12):
# such a skip is a red CI, not a quiet gap. Tools outside Debian's archive (terraform, kubectl,
# helm, a Docker engine) may still skip.
CI = os.environ.get("CI") == "true"
INSTALLED_BY_CI = ("redis-server", "chromium", "could not import 'redis'",
                   "could not import 'playwright", "could not import 'axe_playwright",
                   "registry unreachable")


def _must_not_skip(report: pytest.TestReport | pytest.CollectReport) -> str | None:
    if not (CI and report.skipped):
        return None
    reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
    return reason if any(needed in reason for needed in INSTALLED_BY_CI) else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    reason = _must_not_skip(report)
    if reason:
        report.outcome, report.longrepr = "failed", f"skipped under CI=true: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    reason = _must_not_skip(report)
    if reason:
        report.outcome, report.longrepr = "failed", f"skipped under CI=true: {reason}"
