"""What kind of project this is, beyond its manifests' facts: application or library, how its
version is built, where its docs are built from, which README/CHANGELOG it already keeps.

Everything is read from files (nothing runs, nothing is imported); generators use these answers to
refuse what does not apply instead of inventing a command, a port or a second README.
"""

from __future__ import annotations

import configparser
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controlplane.core.integrations._project_facts import DEFAULT_PORTS, ProjectFacts

VCS_VERSION_BACKENDS = ("setuptools-scm", "setuptools_scm", "hatch-vcs", "hatch_vcs",
                        "versioningit", "dunamai", "poetry-dynamic-versioning", "pdm-backend")
SITE_BUILDERS = ("vite", "react-scripts", "next", "astro", "vitepress", "@docusaurus/core",
                 "gatsby", "vuepress", "parcel", "webpack", "@11ty/eleventy", "nuxt", "svelte-kit",
                 "@sveltejs/kit")
README_NAMES = re.compile(r"^readme(\.(md|markdown|rst|txt))?$", re.IGNORECASE)
CHANGELOG_NAMES = re.compile(
    r"^(changelog|changes|history|news|releases)(\.(md|markdown|rst|txt))?$", re.IGNORECASE)


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def _ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, configparser.Error):
        return configparser.ConfigParser(interpolation=None)
    return parser


def pyproject(root: Path) -> dict[str, Any]:
    """pyproject.toml as data ({} when absent or not TOML)."""
    return _toml(root / "pyproject.toml")


def console_scripts(root: Path) -> list[str]:
    """Commands the project installs: [project.scripts], poetry scripts, setup.cfg entry points,
    package.json ``bin``."""
    data = pyproject(root)
    names = list(data.get("project", {}).get("scripts", {}) or {})
    names += list(data.get("tool", {}).get("poetry", {}).get("scripts", {}) or {})
    entry = _ini(root / "setup.cfg").get("options.entry_points", "console_scripts", fallback="")
    names += [line.split("=")[0].strip() for line in entry.splitlines() if "=" in line]
    try:
        package = json.loads((root / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        package = {}
    bin_field = package.get("bin") if isinstance(package, dict) else None
    if isinstance(bin_field, dict):
        names += list(bin_field)
    elif isinstance(bin_field, str):
        names.append(str(package.get("name", "")).rsplit("/", 1)[-1])
    return list(dict.fromkeys(n for n in names if n))


def main_modules(root: Path) -> list[str]:
    """Packages runnable with ``python -m`` (they have a ``__main__.py``)."""
    found = [*root.glob("*/__main__.py"), *root.glob("src/*/__main__.py")]
    return sorted({p.parent.name for p in found if p.parent.name not in ("tests", "docs")})


def listening_port(facts: ProjectFacts) -> int | None:
    """The port the app listens on, only if its code says or its web framework implies it."""
    if facts.ports:
        return facts.ports[0]
    if facts.framework:
        return DEFAULT_PORTS.get(facts.framework) or DEFAULT_PORTS.get(facts.language)
    return None


@dataclass(frozen=True)
class Kind:
    """Application (serves or runs), command-line tool, or library (nothing to run)."""

    kind: str  # application | cli | library
    command: list[str] | None  # how it starts, when the project says
    port: int | None  # where it listens, when the project says
    why: str  # what the answer rests on


def project_kind(facts: ProjectFacts) -> Kind:
    """Whether the project runs (and how) or is a library, from its own files only."""
    port = listening_port(facts)
    node_start = facts.language == "node" and "start" in facts.node_scripts
    if facts.framework or node_start or (facts.entry_point and facts.language != "node") \
            or (facts.language == "node" and facts.ports):
        what = facts.framework or ("npm start" if node_start else facts.entry_point)
        return Kind("application", None, port, f"it runs {what}")
    scripts = console_scripts(facts.root)
    if scripts:
        return Kind("cli", [scripts[0]], None, f"it installs the command {scripts[0]}")
    mains = main_modules(facts.root)
    if mains:
        return Kind("cli", ["python", "-m", mains[0]], None, f"{mains[0]}/__main__.py")
    return Kind("library", None, None, "no entry point, __main__, console script, start script, "
                                       "web framework or port was found")


def vcs_version(root: Path) -> str | None:
    """The tool that takes the version from git tags (setuptools-scm, hatch-vcs…), if any."""
    data = pyproject(root)
    requires = " ".join(data.get("build-system", {}).get("requires", [])).lower()
    tool = data.get("tool", {})
    if "hatch-vcs" in requires or tool.get("hatch", {}).get("version", {}).get("source") == "vcs":
        return "hatch-vcs"
    if "setuptools-scm" in requires or "setuptools_scm" in requires or "setuptools_scm" in tool:
        return "setuptools-scm"
    for name in ("versioningit", "poetry-dynamic-versioning", "dunamai"):
        if name in requires:
            return name
    return None


def docs_requirements(root: Path) -> dict[str, Any] | None:
    """How the project installs its docs' dependencies: a requirements file, a ``docs`` extra,
    a ``docs`` dependency group, or a tox docs environment's deps."""
    for name in ("docs/requirements.txt", "doc/requirements.txt", "docs/requirements-docs.txt",
                 "requirements/docs.txt", "requirements-docs.txt", "docs-requirements.txt"):
        if (root / name).is_file():
            return {"kind": "requirements", "path": name}
    data = pyproject(root)
    for extra in ("docs", "doc", "documentation"):
        if extra in (data.get("project", {}).get("optional-dependencies") or {}):
            return {"kind": "extra", "name": extra}
        if extra in (data.get("dependency-groups") or {}):
            return {"kind": "group", "name": extra}
    tox = _ini(root / "tox.ini")
    deps = tox.get("testenv:docs", "deps", fallback="").split()
    if deps:
        return {"kind": "packages", "packages": [d for d in deps if not d.startswith("-")]
                or deps}
    return None


def sphinx_source(root: Path) -> str | None:
    """The directory holding Sphinx's conf.py (docs, doc, docs/source), if any."""
    for name in ("docs", "doc", "docs/source", "doc/source"):
        if (root / name / "conf.py").is_file():
            return name
    return None


def site_builder_dependency(facts: ProjectFacts) -> str | None:
    """The static-site builder a Node project depends on (vite, next, docusaurus…), if any."""
    return next((name for name in SITE_BUILDERS if facts.depends_on(name)), None)


def existing_docs(root: Path, pattern: re.Pattern[str]) -> list[str]:
    """Files at the project's root whose names match *pattern*, in any case."""
    try:
        names = sorted(p.name for p in root.iterdir() if p.is_file())
    except OSError:
        return []
    return [n for n in names if pattern.match(n)]


def towncrier(root: Path) -> str | None:
    """Where towncrier fragments live (``changelog.d`` or its configured directory), if used."""
    config = pyproject(root).get("tool", {}).get("towncrier")
    if config is None and (root / "towncrier.toml").is_file():
        config = _toml(root / "towncrier.toml").get("tool", {}).get("towncrier", {})
    if isinstance(config, dict):
        return str(config.get("directory", "newsfragments"))
    return next((name for name in ("changelog.d", "newsfragments")
                 if (root / name).is_dir()), None)
