"""Packages: pip into the project's virtual environment (never the server's), npm for package.json.

Package specs are names with optional extras and version constraints (PEP 508
without URLs or markers; npm's ``@scope/name@range``), so none can be an option,
a URL or a path. A requirements file is a ``ProjectPath``. pip's install report
(``--report``) and npm's ``--json`` summary become the result.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from controlplane.core.actions import (
    Action,
    ActionContext,
    Example,
    ProjectPath,
    project_path,
    register,
)
from controlplane.core.integrations._cli_tools import classify, json_documents, run_cli, tool_target
from controlplane.core.integrations._python_tools import VENV_DIRS, project_python

_OP = r"(===|==|!=|<=|>=|~=|<|>)[A-Za-z0-9.*+!_-]+"
PackageSpec = Annotated[str, Field(
    pattern=rf"^(@[a-z0-9][a-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]+\])?"
            rf"({_OP}(,{_OP})*|@[A-Za-z0-9.^~<>=*|+ _-]+)?$",
    max_length=200,
    description="a package: name[extras] with version constraints (pip) or name@range (npm)")]


class InstallParams(BaseModel):
    packages: list[PackageSpec] = Field([], max_length=100, description="packages to install")
    requirements: ProjectPath | None = Field(None, max_length=300,
                                             description="a requirements file (pip -r)")
    manager: Literal["auto", "pip", "npm"] = Field(
        "auto", description="auto: pip with a virtualenv or requirements, else npm if the "
                            "project has package.json")


def manager_of(root: Path, params: InstallParams) -> str:
    if params.manager != "auto":
        return params.manager
    if project_python(root) is None and params.requirements is None \
            and (root / "package.json").exists():
        return "npm"
    return "pip"


def no_virtualenv(root: Path) -> dict[str, Any]:
    hint = f"create one: python -m venv {root / '.venv'}"
    return {"ok": False, "hint": hint, "error": {
        "code": "no_virtualenv",
        "message": f"the project has no virtual environment ({', '.join(VENV_DIRS)}); packages "
                   f"are never installed into the server's own Python; {hint}"}}


def pip_report(report: Path, output: str) -> dict[str, Any]:
    """What pip installed: its JSON report, else its ``Successfully installed`` line."""
    if report.exists():
        items = json.loads(report.read_text()).get("install", [])
        installed = [{"name": i["metadata"]["name"], "version": i["metadata"]["version"]}
                     for i in items]
    else:
        found = re.search(r"^Successfully installed (.+)$", output, re.MULTILINE)
        installed = [dict(zip(("name", "version"), item.rsplit("-", 1), strict=False))
                     for item in (found.group(1).split() if found else [])]
    return {"installed": installed, "installed_count": len(installed)}


def pip_argv(python: Path, args: list[str]) -> list[str]:
    """``<venv python> -m pip install``, non-interactive, with *args*."""
    return [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
            *args]


def pip_install(ctx: ActionContext, python: Path, args: list[str]) -> dict[str, Any]:
    """``<venv python> -m pip install *args`` with its report (retried without on an old pip)."""
    with tempfile.TemporaryDirectory(prefix="scp-pip-") as tmp:
        report = Path(tmp) / "report.json"
        answer = run_cli(ctx, pip_argv(python, [f"--report={report}", *args]),
                         parse=lambda out: pip_report(report, out))
        if "no such option: --report" in (answer.get("error") or {}).get("message", ""):
            answer = run_cli(ctx, pip_argv(python, args), parse=lambda out: pip_report(report, out))
    return {"manager": "pip", "python": str(python), **answer}


def _pip(ctx: ActionContext, params: InstallParams, upgrade: bool) -> dict[str, Any]:
    python = project_python(ctx.project_root)
    if python is None:
        return no_virtualenv(ctx.project_root)
    packages = list(params.packages)
    options = ["--upgrade"] if upgrade else []
    if params.requirements:
        project_path(ctx.project_root, params.requirements, "requirements")
        options.append(f"--requirement={params.requirements}")
    elif upgrade and not packages:  # update everything that is outdated
        listed = run_cli(ctx, [str(python), "-m", "pip", "list", "--outdated", "--local",
                               "--format=json", "--disable-pip-version-check"],
                         parse=lambda out: {"outdated": [p["name"] for p in json.loads(out)]})
        if not listed["ok"] or not listed["outdated"]:
            return {"manager": "pip", "installed": [], "installed_count": 0, **listed}
        packages = listed["outdated"]
    elif not packages:
        return {"ok": False, "error": {"code": "nothing_to_install",
                                       "message": "name packages or a requirements file"}}
    return pip_install(ctx, python, [*options, *(["--", *packages] if packages else [])])


def npm_summary(output: str) -> dict[str, Any]:
    """``npm … --json``: the counts of what it added, changed and removed."""
    documents = json_documents(output)
    summary = documents[-1] if documents and isinstance(documents[-1], dict) else {}
    return {key: summary.get(key, 0) for key in ("added", "changed", "removed", "audited")}


def _npm(ctx: ActionContext, params: InstallParams, command: str) -> dict[str, Any]:
    if not (ctx.project_root / "package.json").exists():
        return {"ok": False, "error": {"code": "no_package_json",
                                       "message": "the project has no package.json"}}
    if params.requirements:
        return {"ok": False, "error": {"code": "invalid_for_npm",
                                       "message": "requirements files are for pip"}}
    argv = ["npm", command, "--no-audit", "--no-fund", "--ignore-scripts", "--json",
            *(["--", *params.packages] if params.packages else [])]
    tool_target(ctx, "npm")
    result = ctx.tool(argv)
    answer: dict[str, Any] = {"manager": "npm", "ok": result.ok, "exit_code": result.exit_code,
                              "argv": argv}
    error = classify("npm", result)
    if error is None:
        return {**answer, **npm_summary(result.stdout)}
    if error["code"] == "exit_status":  # npm --json says why on stdout: {"error": {...}}
        with contextlib.suppress(ValueError):
            said = [d["error"] for d in json_documents(result.stdout) if "error" in d]
            if said:
                answer["npm_error"] = said[0].get("code")
                error = {**error, "message": said[0].get("summary") or error["message"]}
    return {**answer, "error": error}


def install(ctx: ActionContext, params: InstallParams) -> dict[str, Any]:
    """Install packages (or a requirements file) with the project's package manager."""
    if manager_of(ctx.project_root, params) == "npm":
        return _npm(ctx, params, "install")
    return _pip(ctx, params, upgrade=False)


def update(ctx: ActionContext, params: InstallParams) -> dict[str, Any]:
    """Upgrade the named packages, the requirements, or everything outdated."""
    if manager_of(ctx.project_root, params) == "npm":
        return _npm(ctx, params, "update")
    return _pip(ctx, params, upgrade=True)


PACKAGE_JSON = {"package.json": '{\n  "name": "web",\n  "version": "1.0.0"\n}\n'}
NPM_ADDED = ('{\n  "add": [],\n  "added": 1,\n  "audited": 2,\n  "change": [],\n  "changed": 0,\n'
             '  "funding": 0,\n  "remove": [],\n  "removed": 0\n}\n')
NO_FLAGS = ("install", "--no-audit", "--no-fund", "--ignore-scripts", "--json")

register(
    Action(path="/packages/install", subtype="install:packages", title="Install packages",
           writes=True,
           params=InstallParams, service=install, lock_key="packages",
           description="pip into the project's virtualenv (never the server's), or npm.",
           example=Example(params={"packages": ["left-pad@^1.3.0"]}, tool="npm",
                           files=PACKAGE_JSON, tool_output=NPM_ADDED,
                           argv=(*NO_FLAGS, "--", "left-pad@^1.3.0"),
                           expect={"manager": "npm", "added": 1},
                           invalid={"packages": ["--index-url=https://evil.example/simple"]},
                           invalid_field="packages.0")),
    Action(path="/packages/update", subtype="install:packages_update", title="Update packages",
           writes=True,
           params=InstallParams, service=update, lock_key="packages",
           description="Upgrades the named packages, a requirements file, or all outdated.",
           example=Example(params={"manager": "npm"}, tool="npm", files=PACKAGE_JSON,
                           tool_output=NPM_ADDED.replace('"added": 1', '"added": 0')
                           .replace('"changed": 0', '"changed": 1'),
                           argv=("update", *NO_FLAGS[1:]),
                           expect={"manager": "npm", "changed": 1},
                           invalid={"requirements": "../requirements.txt"},
                           invalid_field="requirements")),
)
