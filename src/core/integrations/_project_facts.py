"""What a project is, read from its own files: the facts every generator fills its templates from.

``project_facts(root)`` reads manifests (requirements*.txt, pyproject.toml,
setup.cfg, package.json, go.mod) and scans the source for the environment
variables it reads, the ports it listens on and its entry point. Nothing is
run and nothing is imported: the files are read as text.
"""

from __future__ import annotations

import configparser
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
                    python=_version(project.get("requires-python")))
    setup_cfg = root / "setup.cfg"
    if setup_cfg.exists():
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(_read(setup_cfg))
        except configparser.Error:
            parser = configparser.ConfigParser(interpolation=None)
        deps += parser.get("options", "install_requires", fallback="").split("\n")
        info["name"] = info.get("name") or parser.get("metadata", "name", fallback=None)
        info["python"] = info.get("python") or _version(
            parser.get("options", "python_requires", fallback=None))
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
    node = _version((data.get("engines") or {}).get("node"))
    if (root / ".nvmrc").exists():
        node = _version(_read(root / ".nvmrc")) or node
    return {"name": data.get("name"), "description": data.get("description"),
            "deps": tuple(data.get("dependencies") or {}),
            "dev_deps": tuple(data.get("devDependencies") or {}),
            "main": data.get("main"), "scripts": dict(data.get("scripts") or {}), "node": node,
            "esm": data.get("type") == "module"}


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


def _env_vars(sources: dict[str, str]) -> tuple[EnvVar, ...]:
    found: dict[str, list[str]] = {}
    for relative, text in sources.items():
        patterns = ENV_PATTERNS.get(SOURCE_SUFFIXES.get(Path(relative).suffix, ""), ())
        for number, line in enumerate(text.splitlines(), 1):
            for pattern in patterns:
                for name in pattern.findall(line):
                    where = found.setdefault(name, [])
                    if f"{relative}:{number}" not in where:
                        where.append(f"{relative}:{number}")
    return tuple(EnvVar(name, tuple(where)) for name, where in sorted(found.items()))


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
        entry_point=_entry_point(root, language, node, sources), node_scripts=node["scripts"],
        node_esm=node["esm"],
        ports=_ports(sources), services=services, env_vars=_env_vars(sources),
        python_version=python.get("python") or "3.12", node_version=node["node"] or "20",
        go_version=go["go"] or "1.22", manifests=manifests,
        has_tests=(root / "tests").is_dir() or (root / "test").is_dir()
        or any(p.startswith(("tests/", "test_")) or ".test." in p for p in sources))
