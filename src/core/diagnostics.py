"""Settings diagnostics: what stops parts of the control plane from working, one line each.

- tools the served actions need (``Example.tool``) missing from the tools' PATH: one
  line naming every missing tool with the integrations that need it;
- tools installed but unreachable: ``docker`` with no engine socket, ``kubectl``/``helm``
  with no kubeconfig (a ``stat`` of the socket and the kubeconfig files, in the tools' env);
- no git remote for ledger sync (or not the one ``ledger_remote`` names);
- settings the project file set but may not (``settings.warnings``, the lines
  ``controlplane config`` and the serve log print).

Cheap: computed on first use and again only when something it read changed (the PATH,
its directories, the settings files, the git config, the docker socket, the kubeconfigs),
found by a few ``stat`` calls; no subprocess (the remotes are read with pygit2).
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from controlplane.core import settings as settings_module


@dataclass(frozen=True)
class Diagnostic:
    """One warning: ``code`` says which check, ``message`` what is wrong and what to do."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def needed_tools(actions: Mapping[str, Any]) -> dict[str, list[str]]:
    """tool -> the integrations (sorted) whose served actions run it."""
    needed: dict[str, set[str]] = {}
    for action in actions.values():
        tool = action.example.tool
        if tool:
            needed.setdefault(tool, set()).add(action.integration)
    return {tool: sorted(names) for tool, names in sorted(needed.items())}


def missing_tools(actions: Mapping[str, Any], path: str) -> Diagnostic | None:
    """One line for every needed tool not on *path*, or None."""
    missing = [(tool, names) for tool, names in needed_tools(actions).items()
               if shutil.which(tool, path=path) is None]
    if not missing:
        return None
    listed = ", ".join(f"{tool} (needed by {', '.join(names)})" for tool, names in missing)
    return Diagnostic("tools_missing", f"Not on the server's PATH: {listed}. Install them "
                      "or add their directory to PATH; their actions fail until then.")


DOCKER_SOCKET = Path("/var/run/docker.sock")
CLUSTER_TOOLS = ("kubectl", "helm")


def docker_socket(env: Mapping[str, str]) -> Path | None:
    """The engine socket docker would use in *env*; None for a non-unix DOCKER_HOST (tcp://,
    ssh://), which cannot be checked without connecting."""
    host = env.get("DOCKER_HOST", "")
    if not host:
        return DOCKER_SOCKET
    if host.startswith("unix://"):
        return Path(host[len("unix://"):])
    return None


def kubeconfigs(env: Mapping[str, str]) -> list[Path]:
    """The kubeconfig files kubectl and helm read in *env*: ``KUBECONFIG``'s, else
    ``$HOME/.kube/config``."""
    listed = [Path(p) for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return listed
    home = env.get("HOME") or os.path.expanduser("~")
    return [Path(home) / ".kube" / "config"]


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.stat().st_mode)
    except OSError:
        return False


def unreachable_tools(actions: Mapping[str, Any], path: str,
                      env: Mapping[str, str]) -> list[Diagnostic]:
    """A line per needed tool on *path* that cannot reach what it drives (no process run)."""
    needed = needed_tools(actions)
    found = []
    socket = docker_socket(env)
    if ("docker" in needed and socket is not None and not _is_socket(socket)
            and shutil.which("docker", path=path) is not None):
        found.append(Diagnostic(
            "tool_unreachable", f"docker is installed but no engine answers at {socket}: "
            "start Docker or set DOCKER_HOST"))
    cluster = [tool for tool in CLUSTER_TOOLS
               if tool in needed and shutil.which(tool, path=path) is not None]
    configs = kubeconfigs(env)
    if cluster and not any(config.is_file() for config in configs):
        found.append(Diagnostic(
            "tool_unreachable", f"{' and '.join(cluster)} installed but no cluster configured: "
            f"no kubeconfig at {', '.join(str(c) for c in configs)}; set KUBECONFIG or write "
            "~/.kube/config (kubectl config set-cluster ...)"))
    return found


def git_remotes(git_dir: Path) -> list[str]:
    import pygit2

    repo = pygit2.Repository(str(git_dir))
    try:
        return sorted(name for name in repo.remotes.names() if name)
    finally:
        repo.free()


def remote_problem(remotes: list[str], ledger_remote: str) -> Diagnostic | None:
    """A line when ledger sync has no remote to push to and pull from, else None."""
    if ledger_remote in remotes:
        return None
    if not remotes:
        return Diagnostic("no_remote", "No git remote: ledger sync cannot push or pull runs. "
                          "Add one with: git remote add origin <url>")
    return Diagnostic(
        "no_remote", f"The ledger sync remote '{ledger_remote}' does not exist (remotes: "
        f"{', '.join(remotes)}). Add it with: git remote add {ledger_remote} <url>, "
        "or set CONTROLPLANE_LEDGER_REMOTE to one of them.")


def refused_settings(root: Path) -> list[Diagnostic]:
    """One line per setting refused from the project file (or an unsafe user file)."""
    try:
        lines = settings_module.warnings(root)
    except settings_module.SettingsError as exc:
        return [Diagnostic("settings_unreadable", f"Settings: {exc}")]
    return [Diagnostic("setting_refused", f"Setting ignored: {line}") for line in lines]


class Diagnostics:
    """The diagnostics of one runtime, kept until what they were computed from changes."""

    def __init__(self, root: Path, git_dir: Path, settings: Mapping[str, Any],
                 actions: Mapping[str, Any], tool_env: Mapping[str, str] | None) -> None:
        self.root, self.git_dir, self.settings, self.actions = root, git_dir, settings, actions
        self.env: Mapping[str, str] = tool_env if tool_env is not None else os.environ
        self.path = self.env.get("PATH", os.defpath)
        self._lock = threading.Lock()
        self._key: tuple[Any, ...] | None = None
        self._found: list[Diagnostic] = []
        self.computed = 0  # how many times they were computed (tests check the caching)

    def _fingerprint(self) -> tuple[Any, ...]:
        watched = [self.root / settings_module.PROJECT_FILE, self.git_dir / "config",
                   settings_module.user_file_path() or self.root / settings_module.PROJECT_FILE,
                   *(Path(d) for d in self.path.split(os.pathsep) if d),
                   *kubeconfigs(self.env)]
        socket = docker_socket(self.env)
        if socket is not None:
            watched.append(socket)
        stamps: list[int | None] = []
        for path in watched:
            try:
                stamps.append(path.stat().st_mtime_ns)
            except OSError:
                stamps.append(None)
        return (os.environ.get("XDG_CONFIG_HOME"), *watched, *stamps)

    def current(self) -> list[Diagnostic]:
        """The diagnostics now (recomputed only if a watched file or directory changed)."""
        key = self._fingerprint()
        with self._lock:
            if key != self._key:
                self._found, self._key = self._compute(), key
                self.computed += 1
            return list(self._found)

    def _compute(self) -> list[Diagnostic]:
        found = []
        tools = missing_tools(self.actions, self.path)
        if tools is not None:
            found.append(tools)
        found.extend(unreachable_tools(self.actions, self.path, self.env))
        try:
            remotes = git_remotes(self.git_dir)
        except Exception as exc:  # an unreadable config: say so rather than fail the page
            found.append(Diagnostic("no_remote", f"Cannot read the git remotes ({exc}); "
                                    "check with: git remote -v"))
        else:
            remote = remote_problem(remotes, str(self.settings.get("ledger_remote", "origin")))
            if remote is not None:
                found.append(remote)
        found.extend(refused_settings(self.root))
        return found
