"""Testing: the project's real pytest and coverage, with counts parsed; test templates."""

from __future__ import annotations

import ast
import json
import re
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined
from pydantic import BaseModel, Field

from controlplane.core.actions import (
    Action,
    ActionContext,
    Example,
    ProjectPath,
    project_path,
    register,
)
from controlplane.core.integrations._generated_files import GenerateParams, deliver
from controlplane.core.integrations._python_tools import python_tool
from controlplane.core.tools import ToolResult

KEYWORD = r"^[A-Za-z0-9_ ().\[\]:-]{1,200}$"


class TestRunParams(BaseModel):
    path: ProjectPath = Field("tests", min_length=1, max_length=300,
                      description="test file or directory inside the project")
    keyword: str | None = Field(None, pattern=KEYWORD, description="only tests matching (-k)")
    marker: str | None = Field(None, pattern=KEYWORD, description="only tests marked (-m)")
    maxfail: int | None = Field(None, ge=1, le=10_000, description="stop after N failures")


def pytest_argv(ctx: ActionContext, params: TestRunParams, junit: Path) -> list[str]:
    """The exact pytest command: options glued to their values, operands after ``--``."""
    target = project_path(ctx.project_root, params.path)
    argv = ["-q", "-rfE", f"--junitxml={junit}", "-p", "no:cacheprovider"]
    if params.keyword:
        argv.append(f"-k{params.keyword}")
    if params.marker:
        argv.append(f"-m{params.marker}")
    if params.maxfail:
        argv.append(f"--maxfail={params.maxfail}")
    relative = str(target.relative_to(ctx.project_root.resolve()))
    return [*argv, "--", relative]


def parse_junit(path: Path) -> dict[str, int] | None:
    """Counts from a JUnit XML report (None if pytest wrote none)."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    return {"total": counts["tests"], "failed": counts["failures"], "errors": counts["errors"],
            "skipped": counts["skipped"],
            "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]}


SUMMARY = re.compile(r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)")


def parse_summary(output: str) -> dict[str, int]:
    """Counts from pytest's closing line, as a fallback to the JUnit report."""
    counts: dict[str, int] = {}
    for number, word in SUMMARY.findall(output.splitlines()[-1] if output else ""):
        counts["errors" if word.startswith("error") else word] = int(number)
    return counts


def outcome(result: ToolResult, counts: dict[str, Any]) -> dict[str, Any]:
    """The run's result: counts plus ``ok``; exit 5 (nothing collected) is a failure."""
    ok = result.exit_code == 0
    answer: dict[str, Any] = {"ok": ok, "exit_code": result.exit_code, **counts}
    if result.exit_code == 5:
        answer["error"] = {"code": "no_tests", "message": "pytest collected no tests"}
    elif not ok and result.error:
        answer["error"] = result.error
    return answer


def run_tests(ctx: ActionContext, params: TestRunParams) -> dict[str, Any]:
    """Run the project's pytest; counts from its JUnit report."""
    with tempfile.TemporaryDirectory(prefix="scp-pytest-") as tmp:
        junit = Path(tmp) / "junit.xml"
        result = ctx.tool([*python_tool(ctx.project_root, "pytest"),
                           *pytest_argv(ctx, params, junit)])
        counts = parse_junit(junit) or parse_summary(result.stdout)
    return outcome(result, counts)


def run_coverage(ctx: ActionContext, params: TestRunParams) -> dict[str, Any]:
    """pytest under coverage; the total and the least covered files."""
    with tempfile.TemporaryDirectory(prefix="scp-coverage-") as tmp:
        junit, report, data = Path(tmp) / "junit.xml", Path(tmp) / "coverage.json", \
            Path(tmp) / ".coverage"
        coverage = python_tool(ctx.project_root, "coverage")
        env = {"COVERAGE_FILE": str(data)}
        result = ctx.tool([*coverage, "run", "-m", "pytest", *pytest_argv(ctx, params, junit)],
                          extra_env=env)
        answer = outcome(result, parse_junit(junit) or parse_summary(result.stdout))
        if result.error and result.error["code"] == "tool_missing":
            return answer
        made = ctx.tool([*coverage, "json", "-o", str(report)], extra_env=env)
        if made.ok and report.exists():
            answer.update(coverage_summary(json.loads(report.read_text())))
        else:
            answer.update(ok=False, error=made.error or {
                "code": "no_report", "message": "coverage json wrote no report"})
    return answer


def coverage_summary(report: dict[str, Any], worst: int = 10) -> dict[str, Any]:
    files = report.get("files", {})
    ranked = sorted(files.items(), key=lambda item: item[1]["summary"]["percent_covered"])
    return {
        "percent_covered": round(report["totals"]["percent_covered"], 2),
        "lines_covered": report["totals"]["covered_lines"],
        "lines_total": report["totals"]["num_statements"],
        "least_covered": [{"file": name, "percent": round(info["summary"]["percent_covered"], 2)}
                          for name, info in ranked[:worst]],
    }


class TemplateParams(GenerateParams):
    module: ProjectPath = Field(..., min_length=1, max_length=300, pattern=r"\.py$",
                        description="Python module inside the project to write tests for")
    output: ProjectPath | None = Field(None, max_length=300, pattern=r"\.py$",
                               description="test file to write (default tests/test_<module>.py)")


TEST_TEMPLATE = Environment(undefined=StrictUndefined, keep_trailing_newline=True).from_string(
    '''"""Tests for {{ module_path }}."""

import pytest

{% if functions or classes %}from {{ import_path }} import {{ (functions + classes) | join(", ") }}
{% endif %}

{% for name in functions %}
def test_{{ name }}() -> None:
    pytest.skip("write a test for {{ name }}")

{% endfor %}{% for name in classes %}
class Test{{ name }}:
    def test_can_be_created(self) -> None:
        pytest.skip("write a test for {{ name }}")

{% endfor %}{% if not functions and not classes %}
def test_module_imports() -> None:
    import {{ import_path }}  # noqa: F401
{% endif %}''')


def generate_test_template(ctx: ActionContext, params: TemplateParams) -> dict[str, Any]:
    """A pytest file with one test per public function and class of *module*."""
    source_path = project_path(ctx.project_root, params.module, "module")
    try:
        tree = ast.parse(source_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"ok": False,
                "error": {"code": "not_found", "message": f"{params.module} not found"}}
    except (SyntaxError, UnicodeDecodeError) as exc:
        return {"ok": False, "error": {"code": "unparseable", "message": str(exc)}}
    public = [n for n in tree.body if not getattr(n, "name", "_").startswith("_")]
    functions = [n.name for n in public if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    classes = [n.name for n in public if isinstance(n, ast.ClassDef)]
    relative = source_path.relative_to(ctx.project_root.resolve())
    parts = list(relative.with_suffix("").parts)
    if parts and parts[0] == "src":
        parts = parts[1:]
    content = TEST_TEMPLATE.render(module_path=str(relative), import_path=".".join(parts),
                                   functions=functions, classes=classes)
    output = params.output or f"tests/test_{relative.stem}.py"
    return {"ok": True, "functions": functions, "classes": classes,
            **deliver(ctx.project_root, output, content, params, "output")}


SMOKE_SUITE = {"tests/test_smoke.py": "def test_one():\n    assert True\n\n"
                                       "def test_two():\n    assert 2 > 1\n",
               "calc.py": "def add(a, b):\n    return a + b\n"}

register(
    Action(path="/testing/run", subtype="test:run", title="Execute tests", params=TestRunParams,
           service=run_tests, lock_key="testing:{path}",
           description="Runs the project's pytest; counts come from its JUnit report.",
           example=Example(params={"path": "tests", "keyword": "smoke"}, tool="pytest",
                           files=SMOKE_SUITE, tool_output="..\n2 passed in 0.01s\n",
                           argv=("-q", "-rfE", "*", "-p", "no:cacheprovider", "-ksmoke", "--",
                                 "tests"),
                           expect={"passed": 2, "exit_code": 0},
                           invalid={"path": "../elsewhere"}, invalid_field="path")),
    Action(path="/testing/coverage", subtype="test:coverage", title="Run coverage",
           params=TestRunParams, service=run_coverage, lock_key="testing:{path}",
           description="pytest under coverage.py; the total and the least covered files.",
           example=Example(params={"path": "tests"}, files=SMOKE_SUITE,
                           note="runs the real coverage and pytest",
                           expect={"passed": 2, "failed": 0},
                           invalid={"maxfail": -1}, invalid_field="maxfail")),
    Action(path="/testing/generate/template", subtype="generate:test_template",
           title="Generate test template", params=TemplateParams, service=generate_test_template,
           description="A pytest file with a test per public function and class of a module.",
           example=Example(params={"module": "calc.py"}, files=SMOKE_SUITE,
                           expect={"functions": ["add"], "written": False,
                                   "path": "tests/test_calc.py"},
                           invalid={"module": "/etc/passwd.py"}, invalid_field="module")),
)
