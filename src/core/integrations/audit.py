"""Audit: install a DevOps tool by an allow-listed method; a dry run (the default) runs nothing.

The tool names a row of ``TOOLS``; each row lists the methods that can install
it and the package each one installs. Python tools go into the project's
virtual environment with pip (never the server's Python), system tools through
apt-get (``sudo -n`` when not root: it fails rather than prompts), Node tools
with ``npm install --global``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
)

from controlplane.core.actions import Action, ActionContext, Example, register
from controlplane.core.integrations._cli_tools import run_cli
from controlplane.core.integrations._python_tools import project_python
from controlplane.core.integrations.packages import no_virtualenv, pip_argv, pip_install

Method = Literal["pip", "apt", "npm"]


@dataclasses.dataclass(frozen=True)
class Installable:
    executable: str  # what is on PATH (or in the venv) once installed
    packages: dict[str, str]  # method → package, the preferred method first


TOOLS: dict[str, Installable] = {
    "kubectl": Installable("kubectl", {"apt": "kubectl"}),
    "helm": Installable("helm", {"apt": "helm"}),
    "terraform": Installable("terraform", {"apt": "terraform"}),
    "gh": Installable("gh", {"apt": "gh"}),
    "docker": Installable("docker", {"apt": "docker.io"}),
    "git": Installable("git", {"apt": "git"}),
    "jq": Installable("jq", {"apt": "jq"}),
    "shellcheck": Installable("shellcheck", {"apt": "shellcheck"}),
    "npm": Installable("npm", {"apt": "npm"}),
    "ansible": Installable("ansible", {"pip": "ansible", "apt": "ansible"}),
    "awscli": Installable("aws", {"pip": "awscli", "apt": "awscli"}),
    "yamllint": Installable("yamllint", {"pip": "yamllint", "apt": "yamllint"}),
    "ruff": Installable("ruff", {"pip": "ruff"}),
    "mypy": Installable("mypy", {"pip": "mypy"}),
    "black": Installable("black", {"pip": "black"}),
    "pytest": Installable("pytest", {"pip": "pytest"}),
    "coverage": Installable("coverage", {"pip": "coverage"}),
    "pre-commit": Installable("pre-commit", {"pip": "pre-commit"}),
    "prettier": Installable("prettier", {"npm": "prettier"}),
    "eslint": Installable("eslint", {"npm": "eslint"}),
    "pnpm": Installable("pnpm", {"npm": "pnpm"}),
    "yarn": Installable("yarn", {"npm": "yarn"}),
}


def _known(name: str) -> str:
    if name not in TOOLS:
        raise ValueError(f"not an installable tool; one of: {', '.join(sorted(TOOLS))}")
    return name


ToolName = Annotated[str, Field(description="the tool to install",
                                json_schema_extra={"enum": sorted(TOOLS)}),
                     AfterValidator(_known)]


class InstallToolParams(BaseModel):
    tool: ToolName
    method: Method | None = Field(None, description="how to install it (default: the tool's "
                                                    "preferred method)")
    # strict: "no" or "false" as a string must not turn a dry run into a real one
    dry_run: StrictBool = Field(True, description="only answer the command it would run")

    @field_validator("method")
    @classmethod
    def _method_offered(cls, method: str | None, info: ValidationInfo) -> str | None:
        tool = info.data.get("tool")
        offered = TOOLS[tool].packages if tool in TOOLS else {}
        if method is not None and tool in TOOLS and method not in offered:
            raise ValueError(f"{tool} installs with {', '.join(offered)} only")
        return method


def install_argv(root: Path, method: str, package: str) -> list[str] | None:
    """The exact command for *method*; None for pip when the project has no virtualenv."""
    if method == "pip":
        python = project_python(root)
        return pip_argv(python, ["--", package]) if python else None
    if method == "npm":
        return ["npm", "install", "--global", "--no-audit", "--no-fund", "--ignore-scripts",
                package]
    sudo = ["sudo", "-n"] if hasattr(os, "geteuid") and os.geteuid() != 0 else []
    return [*sudo, "apt-get", "install", "-y", "--no-install-recommends", package]


def is_installed(ctx: ActionContext, method: str, executable: str) -> bool:
    if method == "pip":
        python = project_python(ctx.project_root)
        return python is not None and (python.parent / executable).exists()
    path = (ctx.env or os.environ).get("PATH", os.defpath)
    return shutil.which(executable, path=path) is not None


def install_tool(ctx: ActionContext, params: InstallToolParams) -> dict[str, Any]:
    """Answer the install command (dry run), or run it and say whether the tool is there now."""
    row = TOOLS[params.tool]
    method: str = params.method or next(iter(row.packages))
    package = row.packages[method]
    argv = install_argv(ctx.project_root, method, package)
    if argv is None:
        return no_virtualenv(ctx.project_root)
    facts = {"tool": params.tool, "method": method, "package": package,
             "dry_run": params.dry_run, "available_before": is_installed(ctx, method,
                                                                         row.executable)}
    if params.dry_run:
        return {"ok": True, "ran": False, "argv": argv, **facts}
    if method == "pip":
        answer = pip_install(ctx, Path(argv[0]), ["--", package])
    else:
        env = {**(ctx.env or os.environ), "DEBIAN_FRONTEND": "noninteractive"}
        answer = run_cli(dataclasses.replace(ctx, env=env), argv)
    return {**answer, **facts, "ran": True,
            "available": is_installed(ctx, method, row.executable)}


register(
    Action(path="/audit/install-tool", subtype="install:tool", title="Install DevOps tool",
           writes=True,
           params=InstallToolParams, service=install_tool, lock_key="install-tool",
           description="Installs an allow-listed tool with pip (project venv), apt-get or "
                       "npm; dry run by default (answers the command, runs nothing).",
           example=Example(params={"tool": "jq"}, note="a dry run: nothing runs",
                           expect={"ok": True, "dry_run": True, "ran": False, "method": "apt",
                                   "package": "jq"},
                           invalid={"tool": "rm -rf /"}, invalid_field="tool")),
)
