"""Settings: flag > environment (``CONTROLPLANE_*``) > ``.controlplane.yaml`` > default.

Secrets (the access token, SMTP password) are read from the environment only;
the project file may not hold them. ``controlplane config`` prints every
setting with where its value came from, secrets masked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT_FILE = ".controlplane.yaml"


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    kind: type = str
    secret: bool = False

    @property
    def env(self) -> str:
        return "CONTROLPLANE_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", "address the server binds"),
    Setting("port", 8000, "port the server binds", int),
    Setting("token", None, "access token (default: generated and kept in .git/scp/token)",
            secret=True),
    Setting("ingest_token", None, "token that may only ingest CI runs", secret=True),
    Setting("allowed_hosts", "", "extra Host names to accept, comma-separated"),
    Setting("users_file", "", "people's tokens (default: .git/scp/users.json)"),
    Setting("trusted_proxies", "", "proxy addresses whose X-Forwarded-Proto is believed"),
    Setting("threads", 512, "server threads: the cap on open streams and requests", int),
    Setting("executor_limit", 4, "runs executed at once; the rest wait queued", int),
    Setting("action_timeout", 900.0, "default seconds before an action's tool is killed", float),
    Setting("ledger_remote", "origin", "remote the ledger is pushed to and pulled from"),
    Setting("tag_namespace", "refs/scp/run/", "where run tags live (or refs/tags/scp/run/)"),
    Setting("logs_retention", 1000, "raw run logs kept under .git/scp/logs", int),
    Setting("bus", "memory", "event bus backend"),
    Setting("auto_sync", 0, "pull the ledger from ledger_remote every N seconds (0: off)", int),
)
BY_NAME = {s.name: s for s in SETTINGS}


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


def load(project_root: str | os.PathLike[str] | None = None,
         flags: dict[str, Any] | None = None,
         environ: dict[str, str] | None = None) -> dict[str, tuple[Any, str]]:
    """Every setting as ``name -> (value, source)``."""
    environ = dict(os.environ if environ is None else environ)
    file_values = read_project_file(project_root) if project_root is not None else {}
    result: dict[str, tuple[Any, str]] = {}
    for setting in SETTINGS:
        if flags and flags.get(setting.name) is not None:
            value, source = flags[setting.name], "flag"
        elif setting.env in environ:
            value, source = environ[setting.env], f"env {setting.env}"
        elif setting.name in file_values:
            if setting.secret:
                raise SettingsError(f"{setting.name} is a secret: set {setting.env}, "
                                    f"not {PROJECT_FILE}")
            value, source = file_values[setting.name], PROJECT_FILE
        else:
            value, source = setting.default, "default"
        result[setting.name] = (_convert(setting, value), source)
    return result


def read_project_file(project_root: str | os.PathLike[str]) -> dict[str, Any]:
    """The project's ``.controlplane.yaml`` as a mapping ({} when absent)."""
    path = Path(project_root) / PROJECT_FILE
    if not path.exists():
        return {}
    try:
        loaded = yaml.safe_load(path.read_bytes()) or {}  # bytes: YAML detects UTF-8/16
    except (yaml.YAMLError, RecursionError) as exc:  # nesting deeper than the stack
        raise SettingsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise SettingsError(f"{path}: expected a mapping of settings")
    return loaded


def values(project_root: str | os.PathLike[str] | None = None,
           flags: dict[str, Any] | None = None) -> dict[str, Any]:
    """Only the effective values."""
    return {name: value for name, (value, _) in load(project_root, flags).items()}


def describe(loaded: dict[str, tuple[Any, str]]) -> list[str]:
    """One line per setting for ``controlplane config``, secrets masked."""
    lines = []
    for setting in SETTINGS:
        value, source = loaded[setting.name]
        shown = ("***" if value else "(unset)") if setting.secret else value
        lines.append(f"{setting.name} = {shown}  [{source}]")
    return lines


def _convert(setting: Setting, value: Any) -> Any:
    if value is None or (setting.kind is str and isinstance(value, str)):
        return value
    if setting.kind is str:  # YAML gives numbers for "port-like" text; never a list or a map
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise SettingsError(f"{setting.name}: expected text, got {value!r}")
    try:
        return setting.kind(value)
    except (TypeError, ValueError, OverflowError):  # int(.inf) overflows
        raise SettingsError(f"{setting.name}: expected {setting.kind.__name__}, "
                            f"got {value!r}") from None
