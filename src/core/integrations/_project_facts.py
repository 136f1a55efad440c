"""What a project is, read from its own files: the facts every generator fills its templates from.

``project_facts(root)`` reads manifests (requirements*.txt, pyproject.toml,
setup.cfg, package.json, go.mod) and scans the source for the environment
variables it reads, the ports it listens on and its entry point. Nothing is
run and nothing is imported: the files are read as text.
"""

from __future__ import annotations

import configparser
import datetime
import json
import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controlplane.core.redact import looks_secret

SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "env", "__pycache__",
             ".scp-ledger", "dist", "build", ".tox", ".nox", ".mypy_cache", ".ruff_cache",
             ".pytest_cache", "site", "vendor", "coverage", "htmlcov", ".terraform"}
SOURCE_SUFFIXES = {".py": "python", ".js": "node", ".mjs": "node", ".cjs": "node",
                   ".ts": "node", ".go": "go"}
MAX_FILES = 5000
MAX_BYTES = 1_000_000


# Dependency name (normalised) → the backing service it talks to.
SERVICE_DEPS = {
    "redis": "redis", "ioredis": "redis", "aioredis": "redis", "django-redis": "redis",
    "rq": "redis", "bull": "redis", "bullmq": "redis", "github.com/redis/go-redis/v9": "redis",
    "psycopg": "postgres", "psycopg2": "postgres", "psycopg2-binary": "postgres",
    "asyncpg": "postgres", "pg8000": "postgres", "pg": "postgres", "pg-promise": "postgres",
    "postgres": "postgres", "github.com/lib/pq": "postgres", "github.com/jackc/pgx/v5": "postgres",
    "mysqlclient": "mysql", "pymysql": "mysql", "mysql-connector-python": "mysql",
    "aiomysql": "mysql", "mysql": "mysql", "mysql2": "mysql",
    "pymongo": "mongodb", "motor": "mongodb", "mongoengine": "mongodb", "mongodb": "mongodb",
    "mongoose": "mongodb", "pika": "rabbitmq", "aio-pika": "rabbitmq", "amqplib": "rabbitmq",
}
FRAMEWORKS = ("django", "fastapi", "flask", "express", "fastify", "koa", "next")
DEFAULT_PORTS = {"django": 8000, "fastapi": 8000, "flask": 5000, "python": 8000,
                 "node": 3000, "go": 8080, "other": 8080}

ENV_PATTERNS = {
    "python": (re.compile(r"\b(?:os\.)?environ\s*\[\s*['\"]([A-Za-z_]\w*)['\"]\s*\]"),
               re.compile(r"\b(?:os\.)?environ\.get\(\s*['\"]([A-Za-z_]\w*)['\"]"),
               re.compile(r"\b(?:os\.)?getenv\(\s*['\"]([A-Za-z_]\w*)['\"]")),
    "node": (re.compile(r"\bprocess\.env\.([A-Za-z_]\w*)"),
             re.compile(r"\bprocess\.env\[\s*['\"]([A-Za-z_]\w*)['\"]\s*\]")),
    "go": (re.compile(r"\bos\.(?:Getenv|LookupEnv)\(\s*\"([A-Za-z_]\w*)\""),),
}
PORT_PATTERNS = (
    re.compile(r"\.run\([^)\n]*\bport\s*=\s*(\d{2,5})"),
    re.compile(r"['\"]PORT['\"]\s*,\s*['\"]?(\d{2,5})"),
    re.compile(r"process\.env\.PORT\s*(?:\|\||\?\?)\s*['\"]?(\d{2,5})"),
    re.compile(r"\b(?:const|let|var)\s+PORT\s*=\s*['\"]?(\d{2,5})"),
    re.compile(r"\.listen\(\s*['\"]?:?(\d{2,5})"),
    re.compile(r"--port[= ](\d{2,5})"),
    re.compile(r"ListenAndServe(?:TLS)?\(\s*\"[\w.-]*:(\d{2,5})\""),
)


@dataclass(frozen=True)
class EnvVar:
    """An environment variable the code reads, and where."""

    name: str
    locations: tuple[str, ...]  # "app.py:12"
    default: str | None = None  # the code's fallback when unset, as written there

    @property
    def secret(self) -> bool:
        """Whether its value is a credential (never put in a ConfigMap or a preview)."""
        return looks_secret(self.name) or self.name.endswith(("DATABASE_URL", "_DSN"))


@dataclass(frozen=True)
class ProjectFacts:
    """The facts of one project that templates are filled from."""

    root: Path
    name: str
    language: str  # python | node | go | other
    description: str = ""
    python_deps: tuple[str, ...] = ()
    node_deps: tuple[str, ...] = ()
    node_dev_deps: tuple[str, ...] = ()
    framework: str | None = None
    entry_point: str | None = None
    node_scripts: dict[str, str] = field(default_factory=dict)
    node_esm: bool = False  # package.json "type": "module"
    ports: tuple[int, ...] = ()
    services: tuple[str, ...] = ()
    env_vars: tuple[EnvVar, ...] = ()
    python_version: str = "3.12"
    node_version: str = "20"
    go_version: str = "1.22"
    manifests: tuple[str, ...] = ()
    has_tests: bool = False
    python_requires: str | None = None  # the manifest's range, as written
    node_engines: str | None = None

    @property
    def port(self) -> int:
        """The port the app listens on: the first one found, else the framework's default."""
        if self.ports:
            return self.ports[0]
        return DEFAULT_PORTS.get(self.framework or self.language, 8080)

    def depends_on(self, *names: str) -> bool:
        deps = set(self.python_deps) | set(self.node_deps) | set(self.node_dev_deps)
        return any(name in deps for name in names)

    def as_template_vars(self) -> dict[str, Any]:
        """The facts as template variables (properties included)."""
        values = {k: getattr(self, k) for k in self.__dataclass_fields__}
        values.update(port=self.port)
        return values


def normalise(dependency: str) -> str:
    """``Flask[async]>=2 ; python_version>'3'`` → ``flask``."""
    name = re.split(r"[\s\[<>=!~;@(]", dependency.strip(), maxsplit=1)[0]
    return name.lower().replace("_", "-").replace(".", "-")


def dns_name(text: str) -> str:
    """*text* as a DNS-1123 label (what Kubernetes and compose accept as a name)."""
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    return label or "app"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[:MAX_BYTES]
    except OSError:
        return ""


def _version(spec: str | None) -> str | None:
    found = re.search(r"(\d+(?:\.\d+)?)", spec or "")
    return found.group(1) if found else None


# Node release lines with long-term support: (major, LTS from, end of life).
NODE_LTS = ((20, datetime.date(2023, 10, 24), datetime.date(2026, 4, 30)),
            (22, datetime.date(2024, 10, 29), datetime.date(2027, 4, 30)),
            (24, datetime.date(2025, 10, 28), datetime.date(2028, 4, 30)),
            (26, datetime.date(2026, 10, 28), datetime.date(2029, 4, 30)))
COMPARATOR = re.compile(r"(>=|<=|>|<|=|\^|~)?\s*v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?")


def python_floor(spec: str | None) -> str | None:
    """The lowest Python a ``requires-python`` range allows: ``"<4.0,>=3.9"`` → ``"3.9"``.

    An upper bound is never taken for the version (``<4.0`` is not Python 4.0); a range with
    no lower bound gives None (the caller's default).
    """
    for clause in (spec or "").split(","):
        found = re.match(r"\s*(>=|~=|==|\^|~|>)\s*(\d+)\.(\d+)", clause)
        if found:
            return f"{found.group(2)}.{found.group(3)}"
    return None


def _semver_allows(spec: str, version: tuple[int, int, int]) -> bool:
    """Whether an npm range (``>=12``, ``^18.17 || >=20``, ``18.x``) allows *version*."""
    for alternative in spec.split("||"):
        hyphen = re.fullmatch(r"\s*v?([\d.x*]+)\s+-\s+v?([\d.x*]+)\s*", alternative)
        if hyphen:
            alternative = f">={hyphen.group(1)} <={hyphen.group(2)}"
        allowed = True
        for op, major_text, minor_text, patch_text in COMPARATOR.findall(alternative):
            major = int(major_text)
            minor = int(minor_text) if minor_text.isdigit() else None
            patch = int(patch_text) if patch_text.isdigit() else 0
            low = (major, minor or 0, patch)
            if (op in ("", "=") and minor is None) or op == "^":
                ok = low <= version < (major + 1, 0, 0)
            elif op in ("", "=", "~"):
                ok = low <= version < (major, (minor or 0) + 1, 0)
            elif op == ">=":
                ok = version >= low
            elif op == ">":
                ok = version > (major, minor if minor is not None else 999, patch)
            elif op == "<=":
                ok = version <= (major, minor if minor is not None else 999, patch)
            else:
                ok = version < low
            allowed = allowed and ok
        if allowed and alternative.strip() not in ("",):
            return True
    return not spec.strip() or spec.strip() in ("*", "x")


def node_lts_within(spec: str | None, today: datetime.date | None = None) -> str | None:
    """The newest Node LTS line (supported today) that ``engines.node`` allows, else the
    newest LTS it allows, else its lower major (``>=12`` → ``"24"``, never ``12``)."""
    if not spec:
        return None
    today = today or datetime.date.today()
    lines = sorted(NODE_LTS, reverse=True)
    for major, since, end in lines:
        if since <= today < end and _semver_allows(spec, (major, 999, 0)):
            return str(major)
    older = [major for major, since, _ in lines
             if since <= today and _semver_allows(spec, (major, 999, 0))]
    lowest = re.search(r"\d+", spec)
    return str(older[0]) if older else lowest.group() if lowest else None


def source_files(root: Path) -> Iterator[Path]:
    """The project's files, skipping vendored, generated and VCS directories."""
    count = 0
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        for name in sorted(files):
            count += 1
            if count > MAX_FILES:
                return
            yield Path(directory) / name


def _python_manifest(root: Path) -> dict[str, Any]:
    """Dependencies, name, description and Python version from the Python manifests."""
    deps: list[str] = []
    info: dict[str, Any] = {}
    for req in sorted(root.glob("requirements*.txt")):
        deps += [line for line in _read(req).splitlines()
                 if line.strip() and not line.lstrip().startswith(("#", "-"))]
    pyproject = root / "pyproject.toml"
    if pyproject.exists():
        try:
            data = tomllib.loads(_read(pyproject))
        except tomllib.TOMLDecodeError:
            data = {}
        project = data.get("project", {})
        deps += list(project.get("dependencies", []))
        poetry = data.get("tool", {}).get("poetry", {})
        deps += [n for n in poetry.get("dependencies", {}) if n.lower() != "python"]
        info.update(name=project.get("name") or poetry.get("name"),
                    description=project.get("description") or poetry.get("description"),
                    python=python_floor(project.get("requires-python")),
                    requires=project.get("requires-python"))
    setup_cfg = root / "setup.cfg"
    if setup_cfg.exists():
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(_read(setup_cfg))
        except configparser.Error:
            parser = configparser.ConfigParser(interpolation=None)
        deps += parser.get("options", "install_requires", fallback="").split("\n")
        info["name"] = info.get("name") or parser.get("metadata", "name", fallback=None)
        requires = parser.get("options", "python_requires", fallback=None)
        info["python"] = info.get("python") or python_floor(requires)
        info["requires"] = info.get("requires") or requires
    pinned = _read(root / ".python-version").strip()
    if pinned:
        info["python"] = _version(pinned.splitlines()[0]) or info.get("python")
    info["deps"] = tuple(dict.fromkeys(normalise(d) for d in deps if d.strip()))
    return info


def _node_manifest(root: Path) -> dict[str, Any]:
    try:
        data = json.loads(_read(root / "package.json") or "{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    engines = (data.get("engines") or {}).get("node")
    node = node_lts_within(engines) if isinstance(engines, str) else None
    if (root / ".nvmrc").exists():
        node = _version(_read(root / ".nvmrc")) or node
    return {"name": data.get("name"), "description": data.get("description"),
            "deps": tuple(data.get("dependencies") or {}),
            "dev_deps": tuple(data.get("devDependencies") or {}),
            "main": data.get("main"), "scripts": dict(data.get("scripts") or {}), "node": node,
            "esm": data.get("type") == "module",
            "engines": engines if isinstance(engines, str) else None}


def _go_manifest(root: Path) -> dict[str, Any]:
    text = _read(root / "go.mod")
    module = re.search(r"^module\s+(\S+)", text, re.MULTILINE)
    go = re.search(r"^go\s+(\d+\.\d+)", text, re.MULTILINE)
    deps = re.findall(r"^\s*(?:require\s+)?([\w.-]+\.[a-z]{2,}/\S+)\s+v", text, re.MULTILINE)
    return {"name": module.group(1).rsplit("/", 1)[-1] if module else None,
            "go": go.group(1) if go else None, "deps": tuple(deps)}


def _language(root: Path, counts: dict[str, int]) -> str:
    if any((root / m).exists() for m in ("pyproject.toml", "setup.py", "setup.cfg")) or \
            any(root.glob("requirements*.txt")):
        return "python"
    if (root / "package.json").exists():
        return "node"
    if (root / "go.mod").exists():
        return "go"
    return max(counts, key=lambda k: counts[k]) if counts else "other"


def _entry_point(root: Path, language: str, node: dict[str, Any],
                 sources: dict[str, str]) -> str | None:
    if language == "node":
        start = node["scripts"].get("start", "")
        found = re.search(r"\bnode\s+(\S+\.[cm]?js)", start)
        candidates = [found.group(1) if found else None, node["main"], "server.js", "index.js",
                      "app.js", "src/index.js", "src/server.js"]
    elif language == "python":
        candidates = ["manage.py", "app.py", "main.py", "wsgi.py", "src/app.py", "src/main.py"]
        candidates += [p for p, text in sources.items() if p.endswith(".py") and
                       re.search(r"\b(Flask|FastAPI)\(", text)]
    elif language == "go":
        candidates = ["main.go", "cmd/main.go"]
    else:
        return None
    return next((c for c in candidates if c and (root / c).is_file()), None)


def _scan(root: Path) -> tuple[dict[str, str], dict[str, int]]:
    """Source texts by relative path (python, node, go, Dockerfiles) and counts per language."""
    sources: dict[str, str] = {}
    counts: dict[str, int] = {}
    for path in source_files(root):
        language = SOURCE_SUFFIXES.get(path.suffix)
        if language is None and path.name != "Dockerfile":
            continue
        if language:
            counts[language] = counts.get(language, 0) + 1
        sources[path.relative_to(root).as_posix()] = _read(path)
    return sources, counts


# Variables of the shell, terminal, OS or CI that code reads but an app's config never sets.
SYSTEM_VARS = {
    "TERM", "USER", "USERNAME", "LOGNAME", "HOME", "PATH", "SHELL", "PWD", "OLDPWD", "PAGER",
    "LESS", "MORE", "EDITOR", "VISUAL", "BROWSER", "LANG", "LANGUAGE", "COLUMNS", "LINES",
    "TMPDIR", "TEMP", "TMP", "DISPLAY", "WAYLAND_DISPLAY", "COLORTERM", "NO_COLOR",
    "FORCE_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "TZ", "HOSTNAME", "SHLVL", "SSH_AUTH_SOCK",
    "USERPROFILE", "APPDATA", "LOCALAPPDATA", "PROGRAMFILES", "SYSTEMROOT", "WINDIR", "COMSPEC",
    "PATHEXT", "HOMEDRIVE", "HOMEPATH", "OS", "CI", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH",
    "PYTHONHOME", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED", "PYTHONWARNINGS", "PYTHONBREAKPOINT", "NODE_OPTIONS", "NODE_PATH",
    "INIT_CWD", "EMACS", "INSIDE_EMACS", "VIM", "MANPAGER", "GIT_PAGER",
}
SYSTEM_PREFIXES = ("XDG_", "LC_", "COMP_", "TERM_", "GITHUB_", "RUNNER_", "npm_", "PYTEST_",
                   "COV_CORE_", "_PYTEST", "TOX_", "NOX_", "CONDA_", "SSH_", "GIT_", "MSYS")
# Paths whose code is not the application: tests, docs, examples, build scripts.
NOT_APP_DIRS = {"tests", "test", "testing", "__tests__", "spec", "docs", "doc", "examples",
                "example", "benchmarks", "benchmark", "bench", ".github"}
NOT_APP_FILES = re.compile(r"^(test_.*\.py|.*_test\.(py|go)|conftest\.py|noxfile\.py|"
                           r"setup\.py|.*\.(test|spec)\.[cm]?[jt]sx?)$")
PY_DEFAULT = re.compile(r"^\s*,\s*(.+)")
PY_OR_DEFAULT = re.compile(r"^\s*\)\s*or\s+('[^']*'|\"[^\"]*\"|[\w.]+)")
NODE_DEFAULT = re.compile(r"^\s*\]?\s*(?:\|\||\?\?)\s*('[^']*'|\"[^\"]*\"|`[^`]*`|[\w.]+)")


def application_source(relative: str) -> bool:
    """Whether *relative* is the application's code (not tests, docs, examples, setup)."""
    parts = relative.split("/")
    return not (set(parts[:-1]) & NOT_APP_DIRS or NOT_APP_FILES.match(parts[-1]))


def system_variable(name: str) -> bool:
    """A variable of the shell, terminal, OS or CI (TERM, PAGER, COMP_WORDS, XDG_…)."""
    return name in SYSTEM_VARS or name.startswith(SYSTEM_PREFIXES)


def _balanced(text: str) -> str:
    """*text* up to the ``)`` that closes the call it is an argument of."""
    depth, quote_char = 0, ""
    for index, char in enumerate(text):
        if quote_char:
            quote_char = "" if char == quote_char else quote_char
        elif char in "'\"":
            quote_char = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            if depth == 0:
                return text[:index].strip().rstrip(",").strip()
            depth -= 1
    return text.strip()


def _literal(expression: str) -> str:
    """A quoted literal as its text; any other expression as written."""
    if len(expression) >= 2 and expression[0] == expression[-1] and expression[0] in "'\"`":
        return expression[1:-1]
    return expression


def default_after(language: str, rest: str) -> str | None:
    """The fallback the code gives a variable, from the text after the name's read."""
    if language == "python":
        found = PY_DEFAULT.match(rest)
        if found:
            return _literal(_balanced(found.group(1)))
        found = PY_OR_DEFAULT.match(rest)
        return _literal(found.group(1)) if found else None
    if language == "node":
        found = NODE_DEFAULT.match(rest)
        return _literal(found.group(1)) if found else None
    return None


def _env_vars(sources: dict[str, str]) -> tuple[EnvVar, ...]:
    """The variables the application reads (not its tests, nor shell or OS variables)."""
    found: dict[str, list[str]] = {}
    defaults: dict[str, str] = {}
    for relative, text in sources.items():
        if not application_source(relative):
            continue
        language = SOURCE_SUFFIXES.get(Path(relative).suffix, "")
        for number, line in enumerate(text.splitlines(), 1):
            for pattern in ENV_PATTERNS.get(language, ()):
                for match in pattern.finditer(line):
                    name = match.group(1)
                    if system_variable(name):
                        continue
                    where = found.setdefault(name, [])
                    if f"{relative}:{number}" not in where:
                        where.append(f"{relative}:{number}")
                    default = default_after(language, line[match.end():])
                    if default is not None and default != "None":
                        defaults.setdefault(name, default)
    return tuple(EnvVar(name, tuple(where), defaults.get(name))
                 for name, where in sorted(found.items()))


def _ports(sources: dict[str, str]) -> tuple[int, ...]:
    ports: list[int] = []
    for relative, text in sources.items():
        patterns = (re.compile(r"^\s*EXPOSE\s+(\d+)", re.MULTILINE),) \
            if relative.endswith("Dockerfile") else PORT_PATTERNS
        for pattern in patterns:
            ports += [int(p) for p in pattern.findall(text) if 0 < int(p) < 65536]
    return tuple(dict.fromkeys(ports))


def project_facts(root: Path) -> ProjectFacts:
    """Read *root*'s manifests and sources into ``ProjectFacts``."""
    root = Path(root).resolve()
    sources, counts = _scan(root)
    app_sources = {path: text for path, text in sources.items() if application_source(path)}
    python, node, go = _python_manifest(root), _node_manifest(root), _go_manifest(root)
    language = _language(root, counts)
    deps = {"python": python["deps"], "node": node["deps"] + node["dev_deps"],
            "go": go["deps"]}.get(language, ())
    framework = next((f for f in FRAMEWORKS if f in deps), None)
    services = tuple(dict.fromkeys(SERVICE_DEPS[d] for d in deps if d in SERVICE_DEPS))
    own = {"python": python, "node": node, "go": go}.get(language, {})
    manifests = tuple(m for m in ("requirements.txt", "pyproject.toml", "setup.cfg", "setup.py",
                                  "package.json", "package-lock.json", "go.mod")
                      if (root / m).exists())
    return ProjectFacts(
        root=root, name=dns_name(own.get("name") or root.name), language=language,
        description=own.get("description") or "", python_deps=python["deps"],
        node_deps=node["deps"], node_dev_deps=node["dev_deps"], framework=framework,
        entry_point=_entry_point(root, language, node, app_sources),
        node_scripts=node["scripts"],
        node_esm=node["esm"],
        ports=_ports(app_sources), services=services, env_vars=_env_vars(sources),
        python_version=python.get("python") or "3.12", node_version=node["node"] or "20",
        go_version=go["go"] or "1.22", manifests=manifests,
        python_requires=python.get("requires"), node_engines=node.get("engines"),
        has_tests=(root / "tests").is_dir() or (root / "test").is_dir()
        or any(p.startswith(("tests/", "test_")) or ".test." in p for p in sources))


# -- small detections the tool-running actions use (cheap: file names and config files only) --

def language_of(root: Path) -> str:
    """``python`` | ``node`` | ``go`` from the manifests, else the most common source suffix;
    ``other`` when nothing says (a tool-running action then refuses rather than guess)."""
    root = Path(root)
    counts: dict[str, int] = {}
    if not any((root / m).exists() for m in ("pyproject.toml", "setup.py", "setup.cfg",
                                              "package.json", "go.mod")):
        for path in source_files(root):
            language = SOURCE_SUFFIXES.get(path.suffix)
            if language:
                counts[language] = counts.get(language, 0) + 1
    return _language(root, counts)


@dataclass(frozen=True)
class ToolConfig:
    """Where the project configures a tool: the file, its section and the settings there."""

    file: str  # "setup.cfg"
    section: str  # "mypy", "tool.mypy", "" for a whole-file config (ruff.toml)
    values: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.file} [{self.section}]" if self.section else self.file


# In each tool's own search order; a file named for the tool counts even without its section.
CONFIG_PLACES: dict[str, tuple[tuple[str, str], ...]] = {
    "mypy": (("mypy.ini", "mypy"), (".mypy.ini", "mypy"), ("pyproject.toml", "tool.mypy"),
             ("setup.cfg", "mypy")),
    "pytest": (("pytest.toml", "pytest"), (".pytest.toml", "pytest"), ("pytest.ini", "pytest"),
               (".pytest.ini", "pytest"), ("pyproject.toml", "tool.pytest"),
               ("pyproject.toml", "tool.pytest.ini_options"), ("tox.ini", "pytest"),
               ("setup.cfg", "tool:pytest")),
    "ruff": ((".ruff.toml", ""), ("ruff.toml", ""), ("pyproject.toml", "tool.ruff")),
    "coverage": ((".coveragerc", "run"), ("setup.cfg", "coverage:run"),
                 ("tox.ini", "coverage:run"), ("pyproject.toml", "tool.coverage.run")),
}
OWN_FILES = {"mypy.ini", ".mypy.ini", "pytest.toml", ".pytest.toml", "pytest.ini",
             ".pytest.ini", ".ruff.toml", "ruff.toml", ".coveragerc"}


def _section(path: Path, section: str) -> dict[str, Any] | None:
    """The settings of *section* in *path* (TOML or INI), None if it has no such section."""
    text = _read(path)
    if path.suffix == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return None
        for key in section.split(".") if section else ():
            data = data.get(key) if isinstance(data, dict) else None
        return data if isinstance(data, dict) else None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    return dict(parser[section]) if parser.has_section(section) else None


def tool_config(root: Path, tool: str) -> ToolConfig | None:
    """Where *tool* (mypy, pytest, ruff, coverage) reads the project's settings, if anywhere."""
    for name, section in CONFIG_PLACES[tool]:
        path = Path(root) / name
        if not path.is_file():
            continue
        values = _section(path, section)
        if section == "tool.pytest" and values is not None:  # pytest 9's native table
            values = {k: v for k, v in values.items() if k != "ini_options"} or None
        if values is not None or name in OWN_FILES:
            return ToolConfig(name, section, values or {})
    return None
