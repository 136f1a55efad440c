"""Settings: flag > environment (``CONTROLPLANE_*``) > user file > ``.controlplane.yaml`` > default.

The project file is committed, so anyone who can push writes it: it may set only
the project facts allow-listed here (``Setting.project``, ``PROJECT_SECTIONS``).
Anything that decides who gets in or where data goes comes from a flag, the
environment or the user file ``$XDG_CONFIG_HOME/controlplane/config.yaml``
(top-level keys, overridden by ``repositories: {"/abs/repo": {...}}``), and is
refused with a warning from the project file. Secrets come from the environment,
or from a user file nobody else can read. Both files are parsed without YAML
aliases or anchors and capped in size. ``controlplane config`` prints every
setting with where its value came from, secrets masked, and the warnings.
"""

from __future__ import annotations

import functools
import os
import reprlib
import stat
from collections.abc import Mapping
from pathlib import Path

from controlplane.core import lazy
from controlplane.core.plain_data import field, plain_data

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    from typing import Any

log = lazy.Logger(__name__)

PROJECT_FILE = ".controlplane.yaml"
USER_FILE = Path("controlplane") / "config.yaml"
MAX_FILE_BYTES = 64 * 1024
# Nested sections and the keys of each the project file may set (the rest: user file only).
PROJECT_SECTIONS: dict[str, frozenset[str]] = {"alerts": frozenset({"types", "subtypes"})}


@plain_data(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    kind: type = str
    secret: bool = False
    project: bool = False  # a project fact: the committed project file may set it

    @property
    def env(self) -> str:
        return "CONTROLPLANE_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", "address the server binds"),
    Setting("port", 8000, "port the server binds", int),
    Setting("token", None, "access token (default: generated and kept in .git/scp/token)",
            secret=True),
    Setting("ingest_token", None, "token that may only ingest CI runs", secret=True),
    Setting("github_webhook_secret", None,
            "secret GitHub signs webhooks with (X-Hub-Signature-256)", secret=True),
    Setting("allowed_hosts", "", "extra Host names to accept, comma-separated"),
    Setting("users_file", "", "people's tokens (default: .git/scp/users.json)"),
    Setting("trusted_proxies", "", "proxy addresses whose X-Forwarded-Proto is believed"),
    Setting("threads", 512, "server threads: the cap on open streams and requests", int),
    Setting("executor_limit", 4, "runs executed at once; the rest wait queued", int),
    Setting("action_timeout", 900.0, "default seconds before an action's tool is killed", float,
            project=True),
    Setting("ledger_remote", "origin", "remote the ledger is pushed to and pulled from"),
    Setting("tag_namespace", "refs/scp/run/", "where run tags live (or refs/tags/scp/run/)"),
    Setting("logs_retention", 1000, "raw run logs kept under .git/scp/logs", int),
    Setting("durability", "batched", "what a power cut may lose: batched (the last second of "
            "records), record (nothing recorded), none (left to the OS)"),
    Setting("bus", "memory", "event bus backend"),
    Setting("auto_sync", 0, "pull the ledger from ledger_remote every N seconds (0: off)", int),
    Setting("backup_upload_max_bytes", 128 << 20, "largest backup archive an upload may send",
            int),
    Setting("simulator", False, "serve POST /api/simulate: live demo runs on the local "
            "scp-demo branch, never pushed (serve --simulator)", bool),
    Setting("public_url", "", "the dashboard's address in alert links, e.g. "
            "https://ops.example.com/ops (default: the bind address and url_prefix)"),
)
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})
BY_NAME = {s.name: s for s in SETTINGS}


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


@functools.cache
def _no_alias_loader() -> type:
    """SafeLoader that refuses anchors and aliases (a 380-byte alias bomb expands to GBs).

    Made on first use: yaml is imported only when a settings file exists (start-up cost).
    """
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise yaml.composer.ComposerError(
                    None, None, "YAML anchors and aliases (&name, *name) are not accepted",
                    event.start_mark)
            return super().compose_node(parent, index)

    return NoAliasLoader


@plain_data
class Files:
    """What the two settings files contribute, after the project file's allow-list."""

    project: dict[str, Any] = field(default_factory=dict)
    user: dict[str, Any] = field(default_factory=dict)
    user_source: dict[str, str] = field(default_factory=dict)  # key -> "user file …"
    warnings: list[str] = field(default_factory=list)


def user_file_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$XDG_CONFIG_HOME/controlplane/config.yaml`` (default ``~/.config/…``); None if no home."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or (
        str(Path(env["HOME"]) / ".config") if env.get("HOME") else "")
    return Path(base) / USER_FILE if base and Path(base).is_absolute() else None


def load(project_root: str | os.PathLike[str] | None = None,
         flags: dict[str, Any] | None = None,
         environ: dict[str, str] | None = None) -> dict[str, tuple[Any, str]]:
    """Every setting as ``name -> (value, source)``."""
    environ = dict(os.environ if environ is None else environ)
    files = read_files(project_root, environ)
    result: dict[str, tuple[Any, str]] = {}
    for setting in SETTINGS:
        if flags and flags.get(setting.name) is not None:
            value, source = flags[setting.name], "flag"
        elif setting.env in environ:
            value, source = environ[setting.env], f"env {setting.env}"
        elif setting.name in files.user:
            value, source = files.user[setting.name], files.user_source[setting.name]
        elif setting.name in files.project:
            value, source = files.project[setting.name], PROJECT_FILE
        else:
            value, source = setting.default, "default"
        result[setting.name] = (_convert(setting, value), source)
    return result


def values(project_root: str | os.PathLike[str] | None = None,
           flags: dict[str, Any] | None = None) -> dict[str, Any]:
    """Only the effective values."""
    return {name: value for name, (value, _) in load(project_root, flags).items()}


def warnings(project_root: str | os.PathLike[str] | None,
             environ: dict[str, str] | None = None) -> list[str]:
    """One line per key refused from the project file (or a user file others can read)."""
    return read_files(project_root, dict(os.environ if environ is None else environ)).warnings


def section(name: str, project_root: str | os.PathLike[str] | None,
            environ: dict[str, str] | None = None) -> dict[str, Any]:
    """A nested section such as ``alerts``: the project file's allow-listed keys, then the
    user file's (which win)."""
    files = read_files(project_root, dict(os.environ if environ is None else environ))
    mine = files.user.get(name) or {}
    if not isinstance(mine, dict):
        raise SettingsError(f"{files.user_source[name]}: {name}: expected a mapping")
    return {**files.project.get(name, {}), **mine}


def read_files(project_root: str | os.PathLike[str] | None,
               environ: dict[str, str]) -> Files:
    """Both files, the project file filtered through its allow-list."""
    files = Files()
    if project_root is not None:
        raw = read_project_file(project_root)
        for key, value in raw.items():
            _take_project_key(files, str(key), value)
    path = user_file_path(environ)
    if path is not None:
        _take_user_file(files, path, project_root)
    return files


def read_project_file(project_root: str | os.PathLike[str]) -> dict[str, Any]:
    """The project's ``.controlplane.yaml`` as parsed, unfiltered ({} when absent)."""
    return _read_yaml(Path(project_root) / PROJECT_FILE)


def describe(loaded: dict[str, tuple[Any, str]]) -> list[str]:
    """One line per setting for ``controlplane config``, secrets masked."""
    lines = []
    for setting in SETTINGS:
        value, source = loaded[setting.name]
        shown = ("***" if value else "(unset)") if setting.secret else value
        lines.append(f"{setting.name} = {shown}  [{source}]")
    return lines


def _take_project_key(files: Files, key: str, value: Any) -> None:
    setting = BY_NAME.get(key)
    if key in PROJECT_SECTIONS:
        if not isinstance(value, dict):
            raise SettingsError(f"{PROJECT_FILE}: {key}: expected a mapping")
        allowed = PROJECT_SECTIONS[key]
        files.project[key] = {k: v for k, v in value.items() if k in allowed}
        for refused in sorted(str(k) for k in value if k not in allowed):
            files.warnings.append(_refusal(f"{key}.{refused}", f"the user file's {key}:"))
    elif setting is None:
        files.warnings.append(f"{key[:64]!r}: not a setting; ignored in {PROJECT_FILE}")
    elif setting.secret:
        files.warnings.append(
            f"{key}: a secret committed to {PROJECT_FILE} is ignored; treat it as leaked, "
            f"rotate it and set {setting.env}")
    elif not setting.project:
        files.warnings.append(_refusal(key, f"{setting.env} or the user file"))
    else:
        files.project[key] = value


def _refusal(key: str, where: str) -> str:
    return (f"{key}: refused from {PROJECT_FILE} (anyone who can push writes it); "
            f"set it with {where}")


def _take_user_file(files: Files, path: Path, project_root: Any) -> None:
    raw = _read_yaml(path)
    if not raw:
        return
    private = _private(path)
    sections = [(raw, f"user file {path}")]
    repositories = raw.get("repositories") or {}
    if not isinstance(repositories, dict):
        raise SettingsError(f"{path}: repositories: expected a mapping of paths")
    if project_root is not None:
        here = Path(project_root).resolve()
        for repo_path, values_here in repositories.items():
            if _same_path(str(repo_path), here):
                if not isinstance(values_here, dict):
                    raise SettingsError(f"{path}: repositories.{repo_path}: expected a mapping")
                sections.append((values_here, f"user file {path} [{repo_path}]"))
    for values_here, source in sections:
        for key, value in values_here.items():
            setting = BY_NAME.get(str(key))
            if key == "repositories" or (setting is None and key not in PROJECT_SECTIONS):
                continue
            if setting is not None and setting.secret and not private:
                files.warnings.append(f"{key}: ignored in {path}: others can read it "
                                      f"(chmod 600 {path}) or set {setting.env}")
                continue
            files.user[str(key)], files.user_source[str(key)] = value, source


def _same_path(configured: str, here: Path) -> bool:
    try:
        return Path(configured).expanduser().resolve() == here
    except (OSError, RuntimeError, ValueError):
        return False


def _private(path: Path) -> bool:
    try:
        return not stat.S_IMODE(path.stat().st_mode) & 0o077
    except OSError:
        return False


def _read_yaml(path: Path) -> dict[str, Any]:
    """A capped, alias-free YAML mapping ({} when the file is absent)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise SettingsError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB; "
                            "settings files are small")
    import yaml

    try:
        loaded = yaml.load(data, Loader=_no_alias_loader()) or {}  # SafeLoader, minus aliases
    except (yaml.YAMLError, RecursionError) as exc:  # nesting deeper than the stack
        raise SettingsError(f"{path}: not valid YAML: {_one_line(exc)}") from None
    if not isinstance(loaded, dict):
        raise SettingsError(f"{path}: expected a mapping of settings")
    return loaded


def _one_line(exc: Exception) -> str:
    """The problem and where, without the file's text (it may hold a secret or escapes)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def _convert(setting: Setting, value: Any) -> Any:
    if value is None or (setting.kind is str and isinstance(value, str)):
        return value
    if setting.kind is bool:
        return _to_bool(setting, value)
    if setting.kind is str:  # YAML gives numbers for "port-like" text; never a list or a map
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise SettingsError(f"{setting.name}: expected text, got {reprlib.repr(value)}")
    try:
        return setting.kind(value)
    except (TypeError, ValueError, OverflowError):  # int(.inf) overflows
        raise SettingsError(f"{setting.name}: expected {setting.kind.__name__}, "
                            f"got {reprlib.repr(value)}") from None


def _to_bool(setting: Setting, value: Any) -> bool:
    """A switch: YAML true/false, 1/0, or the words yes/no, on/off, true/false."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, str | int) else None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingsError(f"{setting.name}: expected true or false (1/0, yes/no), "
                        f"got {reprlib.repr(value)}")
