"""Shared pieces of the fuzz campaign: an offline tool environment, a status tally, settling.

The server under fuzz runs every tool from a PATH of fakes (they print their
argv and exit 0 or 1), pip has no index, git may only use ``file://`` remotes
and every HTTP proxy points at a closed port: whatever an action is asked to
do, it touches only the temporary project.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tests.conftest import isolated_path, python_script

FAKE_TOOLS = ("kubectl", "terraform", "docker", "docker-compose", "helm", "gh", "npm", "npx",
              "node", "pnpm", "yarn", "apt-get", "sudo", "aws", "ansible", "curl", "wget",
              "ssh", "scp", "gpg", "age", "sops", "rsync", "pytest", "coverage", "ruff", "mypy",
              "black", "mkdocs", "pip", "pip3", "pre-commit", "yamllint", "shellcheck")
"""Tools faked in the fuzz environment (nothing real is deployed, pushed or installed)."""

FAKE_TOOL = python_script("""
    import sys, zlib
    print("fake", *sys.argv)
    # exit 0 or 1, the same for the same argv: both outcomes get exercised
    sys.exit(zlib.crc32(" ".join(sys.argv[1:]).encode()) % 2)
""")

CLOSED_PORT = "http://127.0.0.1:9"  # discard port: nothing listens, connections are refused


def offline_env(tmp_path: Path) -> dict[str, str]:
    """A tool environment with fakes first, basic tools, no index for pip, no network for git."""
    fakes = tmp_path / "fake-tools"
    fakes.mkdir(parents=True, exist_ok=True)
    for name in FAKE_TOOLS:
        tool = fakes / name
        tool.write_text(FAKE_TOOL)
        tool.chmod(0o755)
    wheels = tmp_path / "no-wheels"
    wheels.mkdir(exist_ok=True)
    env = isolated_path(tmp_path / "basic-tools", exclude=FAKE_TOOLS, first=fakes)
    env.update(NETWORK_OFF)
    env.update(PIP_FIND_LINKS=str(wheels), HOME=str(tmp_path / "home"))
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


NETWORK_OFF = {
    "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "GIT_ALLOW_PROTOCOL": "file", "GIT_TERMINAL_PROMPT": "0",
    "HTTP_PROXY": CLOSED_PORT, "HTTPS_PROXY": CLOSED_PORT, "ALL_PROXY": CLOSED_PORT,
    "http_proxy": CLOSED_PORT, "https_proxy": CLOSED_PORT, "all_proxy": CLOSED_PORT,
    "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    "npm_config_offline": "true", "npm_config_registry": CLOSED_PORT,
}
"""Environment that makes git, pip and npm fail fast instead of reaching the network.

Also set in the server's own process: ledger sync runs git with ``os.environ``.
"""


class StatusTally:
    """WSGI middleware counting every answer the server gives, by status code (thread-safe).

    An exception escaping the app counts as status 599 (a crashed request).
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.codes: collections.Counter[int] = collections.Counter()
        self.server_errors: list[str] = []

    def record(self, code: int, environ: dict[str, Any]) -> None:
        with self.lock:
            self.codes[code] += 1
            if code >= 500:
                self.server_errors.append(f"{code} {environ.get('REQUEST_METHOD')} "
                                          f"{environ.get('PATH_INFO')}")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def counting_start(status: str, headers: list, exc_info: Any = None) -> Any:
            self.record(int(status.split(" ", 1)[0]), environ)
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, counting_start)
        except Exception:
            self.record(599, environ)
            raise

    @property
    def total(self) -> int:
        return sum(self.codes.values())

    def by_class(self) -> dict[str, int]:
        """Answers per status class: ``{"2xx": n, "4xx": n, ...}``."""
        classes: collections.Counter[str] = collections.Counter()
        for code, count in self.codes.items():
            classes[f"{code // 100}xx"] += count
        return dict(sorted(classes.items()))


def settle(executor: Any, timeout: float = 120.0) -> dict[str, Any]:
    """Resume *executor* and wait (polling its state) until nothing is queued or running."""
    executor.resume()
    deadline = time.monotonic() + timeout
    while True:
        current = executor.state()
        if not current["running"] and not current["queued"]:
            return current
        if time.monotonic() > deadline:
            return current
        time.sleep(0.05)

