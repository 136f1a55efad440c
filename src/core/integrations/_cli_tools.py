"""One mechanism for actions that drive a command-line tool (kubectl, helm, terraform, docker, gh…).

- ``Name`` and friends: parameter types checked against a pattern, so a value
  can never become an option (none may start with ``-``) or a shell word.
- ``run_cli``: runs the exact argv through the tool runner in the project
  root, classifies failures (``tool_missing`` with an install hint,
  ``tool_unavailable`` when the tool runs but its cluster, daemon or login is
  unreachable, with the tool's own message; ``exit_status`` otherwise), notes
  the tool and its version in the run's ``target``, and parses the tool's
  machine-readable output into the result.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, Field

from controlplane.core.actions import ActionContext, project_path
from controlplane.core.tools import ToolResult, tool_version

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
                            description="a name: letters, digits, '.', '_', '-'; "
                                        "not starting with '-'")]
"""A plain name (remote, branch-free identifiers, workspace, release, service)."""

DNSName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
                               description="a DNS-1123 label: lowercase letters, digits, '-'")]
"""A Kubernetes namespace, release or resource name."""

def _plain_ref(value: str) -> str:
    if ".." in value or "//" in value or value.endswith(("/", ".lock", ".")):
        raise ValueError("not a valid ref name ('..', '//', or a bad ending)")
    return value


RefName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$",
                               description="a git ref name (branch or tag), not starting with '-'"),
                    AfterValidator(_plain_ref)]

ImageRef = Annotated[str, Field(
    pattern=r"^[a-z0-9][a-z0-9._/-]{0,199}(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?"
            r"(@sha256:[a-f0-9]{64})?$",
    description="an image reference: name[:tag][@digest]")]

INSTALL_HINTS = {
    "kubectl": "install kubectl (https://kubernetes.io/docs/tasks/tools/)",
    "helm": "install helm (https://helm.sh/docs/intro/install/)",
    "terraform": "install terraform (https://developer.hashicorp.com/terraform/install)",
    "docker": "install the docker CLI and start a Docker engine",
    "gh": "install the GitHub CLI (https://cli.github.com) and run `gh auth login`",
    "npm": "install Node.js and npm",
}

# The tool ran, but what it talks to did not answer: its own words for that.
UNAVAILABLE = {
    "kubectl": (r"Unable to connect to the server", r"connection refused",
                r"couldn't get current server API group list", r"no configuration has been "
                r"provided", r"current-context is not set", r"dial tcp"),
    "helm": (r"Kubernetes cluster unreachable", r"connection refused"),
    "docker": (r"Cannot connect to the Docker daemon", r"Is the docker daemon running",
               r"error during connect"),
    "gh": (r"gh auth login", r"not logged in", r"authentication required",
           r"error connecting to"),
    "terraform": (r"Failed to query available provider packages", r"could not connect",
                  r"no such host"),
}


@functools.lru_cache(maxsize=64)
def _version(executable: str) -> str | None:
    return tool_version(executable)


def tool_target(ctx: ActionContext, tool: str, **target: Any) -> None:
    """Note in the run what it acts on: the tool, its version and e.g. context/namespace."""
    run = ctx.run
    if run is None:
        return
    path = shutil.which(tool, path=(ctx.env or {}).get("PATH")) if ctx.env else shutil.which(tool)
    details = {"tool": tool, "tool_version": _version(path) if path else None}
    details.update({k: v for k, v in target.items() if v is not None})
    run.target.update(details)


def classify(tool: str, result: ToolResult) -> dict[str, str] | None:
    """The run error for a failed tool result, ``tool_unavailable`` when its peer is down."""
    if result.ok or result.error is None:
        return None
    code, message = result.error["code"], result.error["message"]
    if code == "tool_missing":
        hint = INSTALL_HINTS.get(tool)
        return {"code": code, "message": f"{message}; {hint}" if hint else message}
    output = f"{result.stderr}\n{result.stdout}"
    if code == "exit_status" and any(re.search(p, output, re.IGNORECASE)
                                     for p in UNAVAILABLE.get(tool, ())):
        said = [line for line in result.stderr.splitlines() if line.strip()]
        return {"code": "tool_unavailable", "message": said[-1] if said else message}
    return {"code": code, "message": message}


UNPARSEABLE = (ValueError, LookupError, TypeError, AttributeError, yaml.YAMLError)
"""What a parser raises on output it does not understand (a missing document is an IndexError)."""


def run_cli(ctx: ActionContext, argv: list[str], *,
            parse: Callable[[str], dict[str, Any]] | None = None,
            stdin: str | None = None, **target: Any) -> dict[str, Any]:
    """Run *argv* (its first item names the tool) and answer the action's result dict."""
    tool = argv[0]
    tool_target(ctx, tool, **target)
    result = ctx.tool(argv, stdin_data=stdin)
    answer: dict[str, Any] = {"ok": result.ok, "exit_code": result.exit_code, "argv": argv}
    error = classify(tool, result)
    if error is not None:
        answer["error"] = error
    elif parse is not None:
        try:
            answer.update(parse(result.stdout))
        except UNPARSEABLE as exc:
            answer.update(ok=False, error={"code": "unparseable_output",
                                           "message": f"{tool} output not understood: {exc}"})
    return answer


def json_documents(text: str) -> list[Any]:
    """Every JSON value in *text*: one document, or one per line (``-json`` streams)."""
    text = text.strip()
    if not text:
        return []
    try:
        return [json.loads(text)]
    except ValueError:
        return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


def flag_values(flag: str, values: Iterable[str]) -> list[str]:
    """``["--set=a", "--set=b"]``: options glued to their values, so none reads as a flag."""
    return [f"{flag}={value}" for value in values]


def with_env(ctx: ActionContext, **variables: str) -> ActionContext:
    """A copy of *ctx* whose tools also see *variables* (``TF_WORKSPACE``, ``TF_VAR_x``…)."""
    base = dict(os.environ if ctx.env is None else ctx.env)
    return dataclasses.replace(ctx, env={**base, **variables})


def call_cli(ctx: ActionContext, argv: list[str], *,
             parse: Callable[[str], dict[str, Any]] | None = None,
             exit_codes: tuple[int, ...] = (0,), parse_failure: bool = False,
             stdin: str | None = None, **target: Any) -> tuple[dict[str, Any], ToolResult]:
    """``run_cli`` that also answers the raw ToolResult.

    Exit codes in *exit_codes* count as success (terraform ``-detailed-exitcode`` 2: changes
    present); with *parse_failure* the output of a tool that exited non-zero is parsed too
    (``terraform validate -json`` exits 1 with its diagnostics), and *parse* may then
    replace the generic ``error`` with a precise one.
    """
    tool_target(ctx, argv[0], **target)
    result = ctx.tool(argv, stdin_data=stdin)
    accepted = result.exit_code in exit_codes and (result.error or {}).get("code") in (
        None, "exit_status")
    error = None if accepted else classify(argv[0], result)
    answer: dict[str, Any] = {"ok": error is None, "exit_code": result.exit_code, "argv": argv}
    if error is not None:
        answer["error"] = error
    parsable = error is None or (parse_failure and error["code"] == "exit_status")
    if parse is None or not parsable:
        return answer, result
    try:
        answer.update(parse(result.stdout))
    except UNPARSEABLE as exc:
        if error is None:
            answer.update(ok=False, error={"code": "unparseable_output",
                                           "message": f"{argv[0]} output not understood: {exc}"})
    return answer, result


def project_operand(root: Path, relative: str, field_name: str = "path") -> str:
    """*relative* (inside *root*) as the tool should see it from *root*: normalised, and
    prefixed with ``./`` where it would otherwise start with ``-``."""
    resolved = project_path(root, relative, field_name)
    inside = resolved.relative_to(root.resolve()).as_posix()
    if inside == ".":
        return "."
    return f"./{inside}" if inside.startswith("-") else inside


def file_sha256(path: Path) -> str | None:
    """The SHA-256 of *path*'s bytes, None if there is no such file."""
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def tail(text: str, limit: int = 20_000) -> str:
    """The last *limit* characters of *text* (what a result keeps of a command's output)."""
    return text if len(text) <= limit else text[-limit:]


def switches(params: Any, **flags: str) -> list[str]:
    """The flags of *params*' true fields, in order: ``switches(p, force="--force")``."""
    return [flag for name, flag in flags.items() if getattr(params, name)]


def option(flag: str, value: Any) -> list[str]:
    """``[f"{flag}={value}"]``, or nothing when *value* is None or empty."""
    return [] if value is None or value == "" else [f"{flag}={value}"]


def nonblank_lines(text: str) -> list[str]:
    """The lines of *text* that hold something, stripped."""
    return [line.strip() for line in text.splitlines() if line.strip()]
