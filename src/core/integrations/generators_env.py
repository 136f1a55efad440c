""".env.example from the variables the code reads, and a .env filled from it.

A .env's values are secrets: they are registered with the redactor before
anything else, written only to the file, and never echoed: the result and
its preview show the keys and ``***``. A .env that git would commit (tracked,
or not covered by .gitignore) is refused.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, SecretStr, field_validator

from controlplane.core.actions import ActionContext, Example, ProjectPath, project_path, register
from controlplane.core.integrations._generated_files import GenerateParams, deliver
from controlplane.core.integrations._project_facts import project_facts
from controlplane.core.integrations.generators_common import (
    FLASK_EXAMPLE,
    EnvName,
    generator,
    output_field,
    render_facts,
)
from controlplane.core.redact import MASK, register_secret

ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")
# A variable the code has a default for, left commented out in the example.
COMMENTED = re.compile(r"^\s*#\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
PLAIN = re.compile(r"[A-Za-z0-9_./:@+,%-]*")
# How a stored run keeps the values (SecretStr's mask, the redactor's): a rerun must not
# write them into .env as if they were values.
STORED_MASKS = {"**********", MASK}


class EnvExampleParams(GenerateParams):
    output: ProjectPath = output_field(".env.example", "file to write")


class EnvParams(GenerateParams):
    source: ProjectPath = output_field(".env.example", "the example listing the variables")
    output: ProjectPath = output_field(".env", "the .env to write (must be ignored by git)")
    values: dict[EnvName, SecretStr] = Field(
        default_factory=dict, max_length=500,
        description="values by variable name (secret: never stored or shown)")

    @field_validator("values")
    @classmethod
    def _real_values(cls, values: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, value in values.items():
            secret = value.get_secret_value()
            if secret in STORED_MASKS:
                raise ValueError(f"{name}: send the real value (a stored run keeps none)")
            if "\x00" in secret or "\r" in secret:
                raise ValueError(f"{name}: the value holds a control character")
        return values


def generate_env_example(ctx: ActionContext, params: EnvExampleParams) -> dict[str, Any]:
    """.env.example listing the variables the application reads (os.environ, os.getenv,
    process.env…; not its tests', nor shell or OS ones), with where each is read; one the code
    has a default for is commented out with that default.
    """
    facts = project_facts(ctx.project_root)
    content = render_facts("env_example.j2", facts)
    return {"ok": True, "variables": [v.name for v in facts.env_vars],
            "sensitive": [v.name for v in facts.env_vars if v.secret],
            "defaults": {v.name: v.default for v in facts.env_vars if v.default is not None},
            **deliver(ctx.project_root, params.output, content, params, "output")}


def quoted(value: str) -> str:
    """*value* as a dotenv value: bare, single-quoted, or double-quoted with escapes."""
    if PLAIN.fullmatch(value):
        return value
    if "'" not in value and "\n" not in value:
        return f"'{value}'"
    for raw, escape in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("$", "\\$")):
        value = value.replace(raw, escape)
    return f'"{value}"'


def fill(example: str, values: dict[str, str]) -> tuple[list[str], list[str]]:
    """The .env lines and their masked preview: the example's lines with *values* put in."""
    lines, preview, seen = [], [], set()
    for line in example.splitlines():
        found = ASSIGNMENT.match(line)
        commented = COMMENTED.match(line)
        if found is None and commented and commented.group(1) in values:
            found = commented  # a default the user now sets
        if found is None:
            lines.append(line)
            preview.append(line)
            continue
        name, current = found.group(1), found.group(2).strip()
        seen.add(name)
        value = quoted(values[name]) if name in values else current
        lines.append(f"{name}={value}")
        preview.append(f"{name}={MASK if value else ''}")
    extra = [name for name in values if name not in seen]
    if extra:
        lines += ["", "# given, but not in the example"]
        preview += ["", "# given, but not in the example"]
        lines += [f"{name}={quoted(values[name])}" for name in extra]
        preview += [f"{name}={MASK}" for name in extra]
    return lines, preview


def git_exposure(ctx: ActionContext, relative: str) -> str | None:
    """Why git would commit *relative* (tracked, not ignored, or unknown), None if it would not."""
    tracked = ctx.tool(["git", "ls-files", "--error-unmatch", "--", relative])
    if tracked.error and tracked.error["code"] == "tool_missing":
        return "unchecked"
    if tracked.ok:
        return "tracked_by_git"
    ignored = ctx.tool(["git", "check-ignore", "--quiet", "--", relative])
    if ignored.exit_code == 1:
        return "not_ignored"
    return None  # ignored, or not a git repository (nothing would commit it)


def generate_env(ctx: ActionContext, params: EnvParams) -> dict[str, Any]:
    """A .env from .env.example with the given values (secret: never stored or shown); refused if
    git would commit it.
    """
    values = {name: secret.get_secret_value() for name, secret in params.values.items()}
    for value in values.values():
        register_secret(value)
    source = project_path(ctx.project_root, params.source, "source")
    if not source.is_file():
        return {"ok": False, "error": {"code": "not_found", "message": (
            f"{params.source} not found: generate it first (/infra/env/generate-example)")}}
    lines, preview = fill(source.read_text(encoding="utf-8"), values)
    target = project_path(ctx.project_root, params.output, "output")
    relative = str(target.relative_to(ctx.project_root.resolve()))
    exposure = git_exposure(ctx, relative)
    assigned = [found.groups() for found in map(ASSIGNMENT.match, lines) if found]
    answer: dict[str, Any] = {
        "ok": True, "keys": [name for name, _ in assigned], "set": sorted(values),
        "empty": [name for name, value in assigned if not value],
        "ignored_by_git": exposure is None, "warnings": []}
    if exposure is not None:
        message = {
            "tracked_by_git": f"{relative} is tracked by git: untrack it (git rm --cached) "
                              "and ignore it",
            "not_ignored": f"{relative} is not covered by .gitignore: git would commit it "
                           "(add it, e.g. with /security/generate/gitignore)",
            "unchecked": "git is not installed: whether git ignores "
                         f"{relative} was not checked"}[exposure]
        answer["warnings"].append(message)
        if params.write and exposure != "unchecked":
            return {**answer, "ok": False, "written": False,
                    "error": {"code": exposure, "message": message}}
    delivered = deliver(ctx.project_root, params.output, "\n".join(lines) + "\n", params,
                        "output")
    delivered.pop("sha256")  # a hash of secrets is not for the ledger
    return {**answer, **delivered, "content": "\n".join(preview) + "\n"}


register(
    generator(path="/infra/env/generate-example", subtype="generate:env_example",
              title="Generate .env.example", params=EnvExampleParams,
              service=generate_env_example,
              example=Example(params={"write": True}, files=FLASK_EXAMPLE,
                              expect={"variables": ["REDIS_URL", "SECRET_KEY"],
                                      "sensitive": ["SECRET_KEY"], "written": True,
                                      "path": ".env.example"},
                              invalid={"output": "../.env.example"}, invalid_field="output")),
    generator(path="/infra/env/generate-env", subtype="generate:env", title="Generate .env",
              params=EnvParams, service=generate_env,
              example=Example(params={"values": {"SECRET_KEY": "example-secret-4711"},
                                      "write": True},
                              files={".env.example": "# read in app.py:6\nSECRET_KEY=\n"
                                                     "REDIS_URL=\n",
                                     ".gitignore": ".env\n"},
                              expect={"keys": ["SECRET_KEY", "REDIS_URL"], "set": ["SECRET_KEY"],
                                      "empty": ["REDIS_URL"], "ignored_by_git": True,
                                      "written": True, "content": "# read in app.py:6\n"
                                                                  "SECRET_KEY=***\nREDIS_URL=\n"},
                              invalid={"values": {"bad-name": "x"}},
                              invalid_field="values.bad-name.[key]")),
)
