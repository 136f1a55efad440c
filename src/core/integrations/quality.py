"""Quality: the project's own ruff (check and format) and mypy, their JSON parsed into counts.

Each tool comes from the project's virtual environment first (``python -m ruff``),
else from PATH, and reads the project's own configuration; every result says which
interpreter and which config file were used. Checks never write (``_read_only``):
``ruff check --no-fix`` whatever the project's ``fix = true`` says, caches under
``.git/scp/cache``. ``/quality/check`` runs the same three functions the single
actions use; ``/quality/test`` is the testing integration's ``run_tests``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from controlplane.core.actions import (
    Action,
    ActionContext,
    Example,
    ProjectPath,
    project_path,
    register,
)
from controlplane.core.errors import InvalidInput
from controlplane.core.integrations._cli_tools import UNPARSEABLE
from controlplane.core.integrations._project_facts import language_of, source_files, tool_config
from controlplane.core.integrations._python_tools import (
    cache_dir,
    interpreter,
    project_python,
    python_tool,
)
from controlplane.core.integrations.testing import (
    SMOKE_SUITE,
    TestRunParams,
    run_tests,
    tests_precheck,
)
from controlplane.core.tools import ToolResult


class QualityParams(BaseModel):
    paths: list[ProjectPath] = Field(["."], min_length=1, max_length=200,
                                     description="files or directories inside the project")
    max_findings: int = Field(50, ge=1, le=1000, description="how many findings to list")


class FormatParams(QualityParams):
    check: bool = Field(False, description="change nothing: list the files that would change")


def operands(ctx: ActionContext, paths: list[str]) -> list[str]:
    """``--`` and the paths relative to the project root: none can read as an option."""
    root = ctx.project_root.resolve()
    return ["--", *(str(project_path(root, p, "paths").relative_to(root)) for p in paths)]


def run_python_tool(ctx: ActionContext, module: str, args: list[str],
                    ok_exits: tuple[int, ...] = (0, 1)) -> tuple[ToolResult, dict[str, str] | None]:
    """Run *module* (venv first) with *args*; the error unless it exited with one of *ok_exits*."""
    if ctx.run is not None:
        ctx.run.target.update(tool=module)
    result = ctx.tool([*python_tool(ctx.project_root, module), *args])
    python = project_python(ctx.project_root)
    if result.error and result.error["code"] == "tool_missing":
        return result, {"code": "tool_missing", "message": f"{result.error['message']}; "
                        f"install it: pip install {module}"}
    if python is not None and f"No module named {module}" in result.stderr:
        return result, {"code": "tool_missing", "message": f"{module} is not installed in the "
                        f"project's virtual environment: {python} -m pip install {module}"}
    if result.exit_code not in ok_exits:
        return result, result.error or {"code": "exit_status",
                                        "message": f"{module} exited with {result.exit_code}"}
    return result, None


def used(ctx: ActionContext, module: str, config_tool: str | None = None) -> dict[str, str]:
    """What a result says about how the tool ran: the interpreter and the config it read."""
    config = tool_config(ctx.project_root, config_tool or module)
    return {"interpreter": interpreter(ctx.project_root, module, ctx.env),
            "config": str(config) if config else f"none: {module}'s defaults"}


def python_precheck(root: Path, params: BaseModel) -> None:
    """Refuse (422) a project that is not Python and holds no Python file to check."""
    language = language_of(root)
    if language == "python" or any(p.suffix in (".py", ".pyi") for p in source_files(root)):
        return
    raise InvalidInput({"paths": f"this is a {language} project with no Python file: ruff and "
                                 "mypy check Python (for its tests use /testing/run)"},
                       message=f"quality checks do not apply to a {language} project")


def relative(ctx: ActionContext, filename: str) -> str:
    path = Path(filename)
    try:
        return str(path.resolve().relative_to(ctx.project_root.resolve()))
    except ValueError:
        return filename


def _outcome(error: dict[str, str] | None, counted: int, code: str, what: str,
             **fields: Any) -> dict[str, Any]:
    """The result: *fields*, ``ok`` only if the tool worked and *counted* is 0."""
    if error is None and counted:
        error = {"code": code, "message": f"{counted} {what}"}
    return {"ok": error is None, **fields, **({"error": error} if error else {})}


def _unparseable(module: str, exc: Exception, result: ToolResult) -> dict[str, Any]:
    """The failed result for output *module* printed that is not what it documents."""
    return _outcome({"code": "unparseable_output",
                     "message": f"{module} output not understood: {exc}"}, 0, "", "",
                    exit_code=result.exit_code)


def lint(ctx: ActionContext, params: QualityParams) -> dict[str, Any]:
    """``ruff check --output-format=json``: findings counted by rule, the first ones listed."""
    result, error = run_python_tool(ctx, "ruff", ["check", "--no-fix", ruff_cache(ctx),
                                                  "--output-format=json",
                                                  *operands(ctx, params.paths)])
    if error:
        return _outcome(error, 0, "", "", exit_code=result.exit_code, **used(ctx, "ruff"))
    try:
        items = json.loads(result.stdout or "[]")
        by_rule = Counter(item.get("code") or "syntax-error" for item in items)
        findings = [{"file": relative(ctx, item["filename"]), "line": item["location"]["row"],
                     "column": item["location"]["column"],
                     "code": item.get("code") or "syntax-error",
                     "message": item["message"]} for item in items[:params.max_findings]]
    except UNPARSEABLE as exc:
        return _unparseable("ruff", exc, result)
    return _outcome(None, len(items), "lint_findings", "lint findings",
                    exit_code=result.exit_code, **used(ctx, "ruff"), findings_count=len(items),
                    fixable=sum(bool(item.get("fix")) for item in items),
                    by_rule=dict(by_rule.most_common()), findings=findings,
                    text=[f"{f['file']}:{f['line']}:{f['code']}:{f['message']}" for f in findings])


def ruff_cache(ctx: ActionContext) -> str:
    return f"--cache-dir={cache_dir(ctx.project_root, 'ruff')}"


def format_code(ctx: ActionContext, params: FormatParams) -> dict[str, Any]:
    """``ruff format``: the files that would change (``--check``), or that it changed."""
    args = [ruff_cache(ctx), *operands(ctx, params.paths)]
    result, error = run_python_tool(ctx, "ruff", ["format", "--check", "--output-format=json",
                                                  *args])
    if error:
        return _outcome(error, 0, "", "", exit_code=result.exit_code)
    try:
        files = sorted({relative(ctx, item["filename"])
                        for item in json.loads(result.stdout or "[]")
                        if item.get("code") == "unformatted"})
    except UNPARSEABLE as exc:
        return _unparseable("ruff", exc, result)
    if params.check:
        return _outcome(None, len(files), "unformatted", "files would be reformatted",
                        exit_code=result.exit_code, files_count=len(files), files=files)
    if files:
        result, error = run_python_tool(ctx, "ruff", ["format", *args], ok_exits=(0,))
    return _outcome(error, 0, "", "", exit_code=result.exit_code, files_count=len(files),
                    files=files, reformatted=error is None and bool(files))


MYPY_LINE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:(?P<column>\d+):)? "
                       r"(?P<severity>error|note|warning): (?P<message>.*?)"
                       r"(?:  \[(?P<code>[a-z0-9-]+)\])?$")


def parse_mypy(output: str) -> list[dict[str, Any]]:
    """mypy's messages from ``-O json`` lines, or from its text lines (older mypy)."""
    messages = []
    for line in output.splitlines():
        if line.startswith("{"):
            messages.append(json.loads(line))
        elif found := MYPY_LINE.match(line):
            messages.append({**found.groupdict(), "line": int(found["line"])})
    return messages


def mypy_targets(ctx: ActionContext, paths: list[str]) -> tuple[list[str], str]:
    """The operands, and where the checked files come from: the project's mypy ``files``
    when the default path ``.`` is asked for (operands would override them)."""
    config = tool_config(ctx.project_root, "mypy")
    if paths == ["."] and config is not None and config.values.get("files"):
        return [], f"{config}: files"
    return operands(ctx, paths), "paths"


def typecheck(ctx: ActionContext, params: QualityParams) -> dict[str, Any]:
    """mypy with JSON output (mypy ≥ 1.11), falling back to its text lines; errors counted."""
    targets, files_from = mypy_targets(ctx, params.paths)
    cache = f"--cache-dir={cache_dir(ctx.project_root, 'mypy')}"
    how = {**used(ctx, "mypy"), "files_from": files_from}
    result, error = run_python_tool(ctx, "mypy", ["--output=json", cache, "--no-install-types",
                                                  *targets])
    if error and "unrecognized arguments: --output" in result.stderr:
        result, error = run_python_tool(ctx, "mypy", ["--show-error-codes", "--no-color-output",
                                                      "--no-error-summary", cache, *targets])
    if error:
        return _outcome(error, 0, "", "", exit_code=result.exit_code, **how)
    try:
        messages = parse_mypy(result.stdout)
        errors = [m for m in messages if m.get("severity") == "error"]
        listed = [{"file": relative(ctx, m["file"]), "line": m["line"], "code": m.get("code"),
                   "message": m["message"]} for m in errors[:params.max_findings]]
        files_with_errors = len({m["file"] for m in errors})
    except UNPARSEABLE as exc:
        return _unparseable("mypy", exc, result)
    return _outcome(None, len(errors), "type_errors", "type errors", exit_code=result.exit_code,
                    **how, errors=len(errors), notes=len(messages) - len(errors),
                    files_with_errors=files_with_errors,
                    by_code=dict(Counter(m.get("code") or "misc" for m in errors).most_common()),
                    findings=listed)


PART_CODES = {"lint_findings", "unformatted", "type_errors"}


def check(ctx: ActionContext, params: QualityParams) -> dict[str, Any]:
    """Lint, format check and typecheck in one run; ``ok`` only if all three are."""
    parts = {"lint": lint(ctx, params),
             "format": format_code(ctx, FormatParams(**params.model_dump(), check=True)),
             "typecheck": typecheck(ctx, params)}
    failed = {name: part["error"] for name, part in parts.items() if not part["ok"]}
    summary = {"lint_findings": parts["lint"].get("findings_count"),
               "unformatted": parts["format"].get("files_count"),
               "type_errors": parts["typecheck"].get("errors")}
    answer: dict[str, Any] = {"ok": not failed, "summary": summary, **parts}
    if failed:
        codes = [error["code"] for error in failed.values() if error["code"] not in PART_CODES]
        answer["error"] = {"code": codes[0] if codes else "quality_failed", "message": "; ".join(
            f"{name}: {error['message']}" for name, error in failed.items())}
    return answer


CLEAN = {"pyproject.toml": '[tool.ruff.lint]\nselect = ["E", "F"]\n',
         "calc.py": "def add(a: int, b: int) -> int:\n    return a + b\n"}
MYPY_OK = ('{"file": "calc.py", "line": 2, "column": 4, "message": "Revealed type is '
           '\\"builtins.int\\"", "hint": null, "code": "misc", "severity": "note"}\n')

register(
    Action(path="/quality/lint", subtype="validate:lint", title="Run linter",
           params=QualityParams, service=lint, lock_key="quality:lint",
           precheck=python_precheck,
           description="ruff check; findings by rule, the first ones with file:line:code.",
           example=Example(params={"paths": ["."]}, tool="ruff", tool_output="[]\n",
                           files=CLEAN,
                           argv=("check", "--no-fix", "*", "--output-format=json", "--", "."),
                           expect={"findings_count": 0, "by_rule": {}},
                           invalid={"paths": ["../other"]}, invalid_field="paths.0")),
    Action(path="/quality/format", subtype="format:quality", title="Run formatter",
           params=FormatParams, service=format_code, writes=lambda p: not p.check,
           lock_key="quality:format", precheck=python_precheck,
           description="ruff format (check: list the files that would change).",
           example=Example(params={"check": True}, tool="ruff", tool_output="[]\n", files=CLEAN,
                           argv=("format", "--check", "--output-format=json", "*", "--", "."),
                           expect={"files_count": 0, "files": []},
                           invalid={"check": "maybe"}, invalid_field="check")),
    Action(path="/quality/typecheck", subtype="validate:typecheck", title="Type checking",
           params=QualityParams, service=typecheck, lock_key="quality:typecheck",
           precheck=python_precheck,
           description="mypy -O json; errors counted by code and file.",
           example=Example(params={"paths": ["calc.py"]}, tool="mypy", tool_output=MYPY_OK,
                           files=CLEAN, argv=("--output=json", "*", "--no-install-types", "--",
                                 "calc.py"),
                           expect={"errors": 0, "notes": 1},
                           invalid={"max_findings": 0}, invalid_field="max_findings")),
    Action(path="/quality/check", subtype="validate:quality", title="Quality check",
           params=QualityParams, service=check, lock_key="quality:check",
           precheck=python_precheck,
           description="Lint, format check and typecheck in one run.",
           example=Example(params={}, files=CLEAN, note="runs the real ruff and mypy",
                           expect={"ok": True, "summary": {"lint_findings": 0, "unformatted": 0,
                                                           "type_errors": 0}},
                           invalid={"paths": []}, invalid_field="paths")),
    Action(path="/quality/test", subtype="test:quality", title="Run tests via quality",
           params=TestRunParams, service=run_tests, lock_key="testing:{path}",
           precheck=tests_precheck,
           description="The project's tests (pytest, or npm test), through the testing "
                       "integration.",
           example=Example(params={"path": "tests"}, tool="pytest", files=SMOKE_SUITE,
                           tool_output="..\n2 passed in 0.01s\n",
                           argv=("-q", "-rfE", "*", "-p", "no:cacheprovider", "--", "tests"),
                           expect={"passed": 2, "exit_code": 0},
                           invalid={"maxfail": 0}, invalid_field="maxfail")),
)
