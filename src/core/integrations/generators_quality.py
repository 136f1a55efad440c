"""Quality tool configuration: ruff, mypy and pytest for Python; ESLint and Prettier for Node.

Python settings go into ``pyproject.toml`` (sections appended, the rest of
the file kept byte for byte; existing sections replaced only with
``overwrite``) or into ``ruff.toml``, ``mypy.ini`` and ``pytest.ini``. A tool
the project configures already (anywhere it looks: pyproject's ``[tool.pytest]``
of pytest 9, setup.cfg, tox.ini, its own file) is left alone: a second config
would be ignored, make the tool refuse to start, or shadow the project's.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from controlplane.core.actions import ActionContext, Example, ProjectPath, project_path, register
from controlplane.core.integrations._generated_files import GenerateParams
from controlplane.core.integrations._project_facts import (
    ProjectFacts,
    ToolConfig,
    project_facts,
    tool_config,
)
from controlplane.core.integrations.generators_common import (
    FLASK_EXAMPLE,
    deliver_all,
    generator,
    output_field,
    render_facts,
    unsupported,
)

Tool = Literal["ruff", "mypy", "pytest"]
TABLES = {"ruff": "tool.ruff", "mypy": "tool.mypy", "pytest": "tool.pytest.ini_options"}
SEPARATE = {"ruff": "ruff.toml", "mypy": "mypy.ini", "pytest": "pytest.ini"}
NODE_FILES = {"eslint": "eslint.config.mjs", "prettier": ".prettierrc.json"}
# Where ESLint and Prettier read their settings besides our files (legacy .eslintrc included:
# a flat eslint.config.mjs beside it would replace the project's rules in ESLint 9).
NODE_CONFIGS = {
    "eslint": (".eslintrc", ".eslintrc.js", ".eslintrc.cjs", ".eslintrc.json", ".eslintrc.yaml",
               ".eslintrc.yml", "eslint.config.js", "eslint.config.mjs", "eslint.config.cjs",
               "eslint.config.ts", "eslint.config.mts", "eslint.config.cts"),
    "prettier": (".prettierrc", ".prettierrc.json", ".prettierrc.yaml", ".prettierrc.yml",
                 ".prettierrc.json5", ".prettierrc.js", ".prettierrc.cjs", ".prettierrc.mjs",
                 ".prettierrc.toml", "prettier.config.js", "prettier.config.cjs",
                 "prettier.config.mjs"),
}
PACKAGE_KEYS = {"eslint": "eslintConfig", "prettier": "prettier"}
HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


class QualityConfigParams(GenerateParams):
    directory: ProjectPath = output_field(".", "where the config goes (the project root)")
    target: Literal["pyproject", "separate"] = Field(
        "pyproject", description="Python: sections of pyproject.toml, or separate files")
    tools: list[Tool] = Field(["ruff", "mypy", "pytest"], min_length=1, max_length=3,
                              description="Python tools to configure")
    line_length: int = Field(100, ge=60, le=200, description="maximum line length")
    strict: bool = Field(False, description="mypy strict mode")


def configured_elsewhere(root: Path, params: QualityConfigParams) -> dict[str, ToolConfig]:
    """Tools the project configures in a place this run would not write (their settings win)."""
    found: dict[str, ToolConfig] = {}
    for tool in params.tools:
        where = tool_config(root / params.directory, tool)
        if where is None:
            continue
        ours = SEPARATE[tool] if params.target == "separate" else "pyproject.toml"
        if where.file != ours:
            found[tool] = where
    return found


def table_of(tool: str, data: dict[str, Any]) -> bool:
    node: Any = data
    for part in TABLES[tool].split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def strip_tables(text: str, names: list[str]) -> str:
    """*text* without the TOML tables *names* (and their sub-tables)."""
    kept, skipping = [], False
    for line in text.splitlines(keepends=True):
        header = HEADER.match(line)
        if header:
            table = header.group(1)
            skipping = any(table == n or table.startswith(n + ".") for n in names)
        if not skipping:
            kept.append(line)
    return "".join(kept)


def python_values(facts: ProjectFacts, params: QualityConfigParams) -> dict[str, Any]:
    src = ["src", "tests"] if (facts.root / "src").is_dir() else []
    test_dir = "test" if (facts.root / "test").is_dir() and not (facts.root / "tests").is_dir() \
        else "tests"
    return {"tools": params.tools, "line_length": params.line_length, "strict": params.strict,
            "src": src, "test_dir": test_dir}


def pyproject_sections(root: Path, params: QualityConfigParams) -> tuple[str, str, list[str]]:
    """pyproject.toml's path and text, and the tools whose sections it already has.

    Raises ``tomllib.TOMLDecodeError`` if the file is not valid TOML.
    """
    relative = str(Path(params.directory) / "pyproject.toml")
    path = project_path(root, relative, "directory")
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    data = tomllib.loads(text)
    native_pytest = isinstance(data.get("tool", {}).get("pytest"), dict) and any(
        k != "ini_options" for k in data["tool"]["pytest"])  # pytest 9's [tool.pytest]
    return relative, text, [t for t in params.tools
                            if table_of(t, data) or (t == "pytest" and native_pytest)]


def merged_pyproject(facts: ProjectFacts, params: QualityConfigParams, text: str,
                     present: list[str]) -> str:
    """*text* plus the missing sections (present ones replaced only with ``overwrite``)."""
    replaced = present if params.overwrite else []
    added = [t for t in params.tools if t in replaced or t not in present]
    body = strip_tables(text, [TABLES[t] if t != "pytest" else "tool.pytest" for t in replaced])
    body = body.rstrip("\n") + "\n" if body.strip() else ""
    values = {**python_values(facts, params), "tools": added}
    content = (body + render_facts("quality_pyproject.toml.j2", facts, **values)).lstrip("\n")
    tomllib.loads(content)  # the merged file must still be valid TOML
    return content


def conflicts(root: Path, params: QualityConfigParams) -> list[str]:
    """What a write would replace: existing separate files, or sections of pyproject.toml."""
    language = project_facts(root).language
    if language == "node":
        configured = node_configured(root / params.directory)
        files: list[str] = [f for t, f in NODE_FILES.items() if t not in configured]
    elif language == "python" and params.target == "separate":
        elsewhere = configured_elsewhere(root, params)
        files = [SEPARATE[t] for t in params.tools if t not in elsewhere]
    elif language == "python":
        try:
            relative, _, present = pyproject_sections(root, params)
        except tomllib.TOMLDecodeError:
            return []  # the run reports it
        elsewhere = configured_elsewhere(root, params)
        native = tool_config(root / params.directory, "pytest")
        label = {**TABLES, "pytest": native.section if native and native.file == "pyproject.toml"
                 else TABLES["pytest"]}
        return [f"{relative} [{label[t]}]" for t in present if t not in elsewhere]
    else:
        return []
    paths = [str(Path(params.directory) / name) for name in files]
    return [p for p in paths if project_path(root, p, "directory").exists()]


def node_configured(root: Path) -> dict[str, str]:
    """ESLint/Prettier settings the Node project has already: tool → file (or package.json key)."""
    try:
        package = json.loads((root / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        package = {}
    found = {}
    for tool, names in NODE_CONFIGS.items():
        name = next((n for n in names if (root / n).is_file()), None)
        if name is None and isinstance(package, dict) and PACKAGE_KEYS[tool] in package:
            name = f"package.json {PACKAGE_KEYS[tool]}"
        if name:
            found[tool] = name
    return found


def node_files(facts: ProjectFacts, params: QualityConfigParams) -> list[tuple[str, str]]:
    entry = facts.root / (facts.entry_point or "index.js")
    code = entry.read_text(encoding="utf-8", errors="replace") if entry.is_file() else ""
    values = {"line_length": params.line_length, "single_quote": code.count("'") > code.count('"'),
              "typescript": facts.depends_on("typescript"),
              "browser": facts.depends_on("react", "vue", "svelte")}
    configured = node_configured(facts.root / params.directory)
    return [(str(Path(params.directory) / NODE_FILES[kind]),
             render_facts(f"quality_{NODE_FILES[kind].lstrip('.')}.j2", facts, **values))
            for kind in NODE_FILES if kind not in configured]


def generate_quality_config(ctx: ActionContext, params: QualityConfigParams) -> dict[str, Any]:
    """ruff, mypy and pytest settings (pyproject.toml sections or separate files) for a Python
    project, only for tools it does not configure yet (never a file shadowing its settings);
    ESLint and Prettier for a Node project, likewise only where it has no config of its own.
    """
    facts = project_facts(ctx.project_root)
    kept: list[str] = []
    elsewhere: dict[str, ToolConfig] = {}
    if facts.language == "python":
        elsewhere = configured_elsewhere(ctx.project_root, params)
        wanted = [t for t in params.tools if t not in elsewhere]
        if not wanted:
            return {"ok": True, "language": facts.language, "tools": [], "kept_sections": [],
                    "configured_in": {t: str(w) for t, w in elsewhere.items()}, "files": [],
                    "message": "every tool is configured by the project already: nothing to add"}
        params = params.model_copy(update={"tools": wanted})
    if facts.language == "node":
        elsewhere_node = node_configured(ctx.project_root / params.directory)
        files = node_files(facts, params)
        tools = [t for t in NODE_FILES if t not in elsewhere_node]
        if not tools:
            return {"ok": True, "language": facts.language, "tools": [], "kept_sections": [],
                    "configured_in": elsewhere_node, "files": [],
                    "message": "every tool is configured by the project already: nothing to add"}
        return {"ok": True, "language": facts.language, "tools": tools, "kept_sections": [],
                "configured_in": elsewhere_node,
                "files": deliver_all(ctx.project_root, files, params)}
    elif facts.language != "python":
        return unsupported(facts, "quality configuration")
    elif params.target == "separate":
        values = python_values(facts, params)
        files = [(str(Path(params.directory) / SEPARATE[t]),
                  render_facts(f"quality_{SEPARATE[t]}.j2", facts, **values))
                 for t in params.tools]
        tools = list(params.tools)
    else:
        try:
            relative, text, present = pyproject_sections(ctx.project_root, params)
        except tomllib.TOMLDecodeError as exc:
            return {"ok": False, "error": {"code": "invalid_toml",
                                           "message": f"pyproject.toml: {exc}"}}
        kept = [] if params.overwrite else present
        files = [(relative, merged_pyproject(facts, params, text, present))]
        tools = [t for t in params.tools if t not in kept]
        # adding sections replaces nothing; the precheck refused replacing without overwrite
        params = params.model_copy(update={"overwrite": True})
    return {"ok": True, "language": facts.language, "tools": tools, "kept_sections": kept,
            "configured_in": {t: str(w) for t, w in elsewhere.items()},
            "files": deliver_all(ctx.project_root, files, params)}


register(
    generator(path="/quality/generate/config", subtype="generate:quality_config",
              title="Generate tool config", params=QualityConfigParams,
              service=generate_quality_config, lock_key="generate:quality:{directory}",
              conflicts=conflicts,
              example=Example(params={"write": True, "strict": True},
                              files={**FLASK_EXAMPLE, "pyproject.toml": "[project]\nname = \"fx\"\n"
                                     "requires-python = \">=3.11\"\n"},
                              expect={"language": "python", "tools": ["ruff", "mypy", "pytest"],
                                      "kept_sections": []},
                              invalid={"tools": ["pylint"]}, invalid_field="tools.0")),
)
