"""Testing: the project's own tests (pytest, or ``npm test`` for Node) and coverage; templates.

The language decides the runner (``_project_facts.language_of``); a project whose
language says nothing about how to test it is refused (422) before any run. pytest
reads the project's own config: with the default path its ``testpaths`` win. Each
result says which interpreter and config were used and names the failing tests.
"""

from __future__ import annotations

import ast
import json
import re
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, ValidationInfo

from controlplane.core.actions import (
    Action,
    ActionContext,
    Example,
    ProjectPath,
    _inside_project,
    project_path,
    register,
)
from controlplane.core.errors import InvalidInput
from controlplane.core.integrations import _test_template as test_template
from controlplane.core.integrations._generated_files import GenerateParams, deliver
from controlplane.core.integrations._project_facts import language_of, tool_config
from controlplane.core.integrations._python_tools import interpreter, python_tool
from controlplane.core.tools import ToolResult

KEYWORD = r"^[A-Za-z0-9_ ().\[\]:-]{1,200}$"
DEFAULT_TESTS = "tests"
MAX_NAMED = 50
NPM_PLACEHOLDER = 'echo "Error: no test specified" && exit 1'


def _node_inside_project(value: str, info: ValidationInfo) -> str:
    """A node id whose file part (before ``::``) is a path inside the project."""
    _inside_project(value.split("::", 1)[0], info)
    return value


NodeId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.][^\x00-\x1f]{0,499}$"),
                   AfterValidator(_node_inside_project)]


class TestRunParams(BaseModel):
    path: ProjectPath = Field(DEFAULT_TESTS, min_length=1, max_length=300,
                      description="test file or directory inside the project")
    keyword: str | None = Field(None, pattern=KEYWORD, description="only tests matching (-k)")
    marker: str | None = Field(None, pattern=KEYWORD, description="only tests marked (-m)")
    maxfail: int | None = Field(None, ge=1, le=10_000, description="stop after N failures")
    node_ids: list[NodeId] = Field(
        default_factory=list, max_length=MAX_NAMED,
        description="only these tests (pytest node ids, e.g. tests/test_a.py::test_b): "
                    "the run page's 'Retry failed' sends a failed run's failing tests")


def node_test_script(root: Path) -> str | None:
    """package.json's ``scripts.test``; None if absent or npm's placeholder."""
    try:
        data = json.loads((root / "package.json").read_text(encoding="utf-8"))
        script = data["scripts"]["test"]
    except (OSError, ValueError, LookupError, TypeError):
        return None
    return script if isinstance(script, str) and script.strip() != NPM_PLACEHOLDER else None


def _path_present(root: Path, params: TestRunParams) -> None:
    """Refuse (422) a path asked for that is not there (a typo would be a failed run; the
    default path may be absent: the project's ``testpaths`` or pytest's own search apply)."""
    if params.path != DEFAULT_TESTS and not params.node_ids and \
            not project_path(root, params.path).exists():
        raise InvalidInput({"path": f"{params.path!r} is not in the project (no such file or "
                                    "directory)"})


def tests_precheck(root: Path, params: TestRunParams) -> None:
    """Refuse (422) what does not apply: a path that is not there, an unknown language, a
    Node project without a test script, or pytest-only parameters for ``npm test``."""
    language = language_of(root)
    if language == "python":
        return _path_present(root, params)
    if language != "node":
        what = "no Python or Node manifest" if language == "other" else f"a {language} project"
        raise InvalidInput({"path": f"{what} here (pyproject.toml, setup.cfg, setup.py or "
                                    "package.json): nothing says how to run its tests"},
                           message=f"cannot tell how to run this project's tests ({what})")
    if node_test_script(root) is None:
        raise InvalidInput({"path": "package.json has no scripts.test: add the project's test "
                                    "command there"}, message="no test command in package.json")
    pytest_only = {name: "applies to pytest only: a Node project runs its own npm test"
                   for name in ("keyword", "marker", "maxfail", "node_ids")
                   if getattr(params, name)}
    if params.path != DEFAULT_TESTS:
        pytest_only["path"] = "npm test runs the project's own test command: no path"
    if pytest_only:
        raise InvalidInput(pytest_only, message="pytest parameters given for a Node project")


def coverage_precheck(root: Path, params: TestRunParams) -> None:
    """coverage.py measures Python only: refuse (422) other projects."""
    language = language_of(root)
    if language == "python":
        return _path_present(root, params)
    what = "not a Python project" if language == "other" else f"a {language} project"
    raise InvalidInput({"path": f"coverage.py measures Python; this is {what} (its tests: "
                                "/testing/run)"},
                       message="coverage does not apply to this project")


def pytest_targets(ctx: ActionContext, params: TestRunParams) -> tuple[list[str], str]:
    """The operands, and where the tests come from: the project's ``testpaths`` when the
    default path is asked for (an operand would override them)."""
    if params.node_ids:  # a retry of named tests: exactly those
        return ["--", *params.node_ids], "node_ids"
    config = tool_config(ctx.project_root, "pytest")
    if params.path == DEFAULT_TESTS and config is not None and config.values.get("testpaths"):
        return [], f"{config}: testpaths"
    target = project_path(ctx.project_root, params.path)
    return ["--", str(target.relative_to(ctx.project_root.resolve()))], "path"


def pytest_argv(ctx: ActionContext, params: TestRunParams, junit: Path) -> list[str]:
    """The exact pytest command: options glued to their values, operands after ``--``."""
    argv = ["-q", "-rfE", f"--junitxml={junit}", "-p", "no:cacheprovider"]
    if params.keyword:
        argv.append(f"-k{params.keyword}")
    if params.marker:
        argv.append(f"-m{params.marker}")
    if params.maxfail:
        argv.append(f"--maxfail={params.maxfail}")
    return [*argv, *pytest_targets(ctx, params)[0]]


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


def pytest_counts(junit: Path, output: str) -> dict[str, int]:
    """Counts as pytest's closing line gives them: JUnit's, with xfailed and xpassed apart
    (JUnit files an xfail under skipped)."""
    summary = parse_summary(output)
    counts = parse_junit(junit)
    if counts is None:
        return summary
    for word in ("xfailed", "xpassed"):
        if summary.get(word):
            counts[word] = summary[word]
    counts["skipped"] = max(0, counts["skipped"] - summary.get("xfailed", 0))
    counts["passed"] = max(0, counts["passed"] - summary.get("xpassed", 0))
    return counts


FAILED_LINE = re.compile(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", re.MULTILINE)


def failing_tests(output: str) -> list[str]:
    """The failing and erroring test ids from pytest's ``-rfE`` short summary."""
    return list(dict.fromkeys(FAILED_LINE.findall(output)))[:MAX_NAMED]


def outcome(result: ToolResult, counts: dict[str, Any]) -> dict[str, Any]:
    """The run's result: counts plus ``ok``; exit 5 (nothing collected) is a failure."""
    ok = result.exit_code == 0
    answer: dict[str, Any] = {"ok": ok, "exit_code": result.exit_code, **counts}
    if result.exit_code == 5:
        answer["error"] = {"code": "no_tests", "message": "pytest collected no tests"}
    elif not ok and result.error:
        answer["error"] = result.error
    return answer


def pytest_used(ctx: ActionContext, params: TestRunParams, module: str) -> dict[str, Any]:
    """How the run was made: interpreter, the pytest config read and where tests came from."""
    config = tool_config(ctx.project_root, "pytest")
    return {"runner": "pytest", "interpreter": interpreter(ctx.project_root, module, ctx.env),
            "config": str(config) if config else "none: pytest's defaults",
            "tests_from": pytest_targets(ctx, params)[1]}


def run_tests(ctx: ActionContext, params: TestRunParams) -> dict[str, Any]:
    """Run the project's tests: ``npm test`` for Node, else pytest (counts from JUnit)."""
    if language_of(ctx.project_root) == "node":
        return run_npm_test(ctx)
    with tempfile.TemporaryDirectory(prefix="scp-pytest-") as tmp:
        junit = Path(tmp) / "junit.xml"
        result = ctx.tool([*python_tool(ctx.project_root, "pytest"),
                           *pytest_argv(ctx, params, junit)])
        counts = pytest_counts(junit, result.stdout)
    return {**outcome(result, counts), **pytest_used(ctx, params, "pytest"),
            "failed_tests": failing_tests(result.stdout)}


TAP_COUNT = re.compile(r"^# (tests|pass|fail|skip(?:ped)?|todo)\s+(\d+)\s*$", re.MULTILINE)
TAP_NOT_OK = re.compile(r"^\s*not ok \d+(?: -)? (.+?)\s*(?:# (?!TODO|SKIP).*)?$", re.MULTILINE)
MOCHA = re.compile(r"^\s*(\d+) (passing|failing|pending)\b", re.MULTILINE)
JEST = re.compile(r"^Tests:\s+(.*\btotal)\s*$", re.MULTILINE)
NOT_FOUND = re.compile(r"(?:sh: \d+: )?(\S+): (?:command )?not found")


def node_counts(output: str) -> dict[str, Any]:
    """Counts and failing names from what Node test runners print: TAP (tape, node --test,
    tap), mocha's ``N passing``, jest's ``Tests:`` line; empty when none of these."""
    counts: dict[str, Any] = {}
    tap = {word: int(n) for word, n in TAP_COUNT.findall(output)}
    if tap:
        counts = {"total": tap.get("tests", 0), "passed": tap.get("pass", 0),
                  "failed": tap.get("fail", 0),
                  "skipped": tap.get("skip", tap.get("skipped", 0))}
        counts["failed_tests"] = [name for name in TAP_NOT_OK.findall(output)
                                  if "# TODO" not in name][:MAX_NAMED]
    elif found := MOCHA.findall(output):
        mocha = {word: int(n) for n, word in found}
        counts = {"passed": mocha.get("passing", 0), "failed": mocha.get("failing", 0),
                  "skipped": mocha.get("pending", 0)}
    elif found := JEST.findall(output):
        jest = {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", found[-1])}
        counts = {"total": jest.get("total", 0), "passed": jest.get("passed", 0),
                  "failed": jest.get("failed", 0), "skipped": jest.get("skipped", 0)}
    return counts


def run_npm_test(ctx: ActionContext) -> dict[str, Any]:
    """The project's own test command, ``npm test``; counts when its runner prints them."""
    if ctx.run is not None:
        ctx.run.target.update(tool="npm")
    result = ctx.tool(["npm", "test"], extra_env={"NO_UPDATE_NOTIFIER": "1"})
    answer: dict[str, Any] = {"ok": result.ok, "exit_code": result.exit_code, "runner": "npm test",
                              "command": node_test_script(ctx.project_root),
                              "config": "package.json scripts.test",
                              **node_counts(result.stdout)}
    if result.ok:
        return answer
    missing = NOT_FOUND.search(f"{result.stderr}\n{result.stdout}")
    if result.error and result.error["code"] == "tool_missing":
        answer["error"] = {"code": "tool_missing",
                           "message": f"{result.error['message']}; install Node.js and npm"}
    elif missing and not (ctx.project_root / "node_modules").is_dir():
        answer["error"] = {"code": "dependencies_missing", "message": (
            f"npm test: {missing.group(1)} not found: the project's dependencies are not "
            "installed; run npm ci (or npm install) in the project first")}
    else:
        answer["error"] = result.error or {
            "code": "exit_status", "message": f"npm test exited with {result.exit_code}"}
    return answer


def run_coverage(ctx: ActionContext, params: TestRunParams) -> dict[str, Any]:
    """pytest under coverage.py, data and report kept out of the work tree; coverage's own
    headline figure (as ``coverage report`` prints TOTAL), lines and branches apart."""
    with tempfile.TemporaryDirectory(prefix="scp-coverage-") as tmp:
        junit, report, data = Path(tmp) / "junit.xml", Path(tmp) / "coverage.json", \
            Path(tmp) / ".coverage"
        coverage = python_tool(ctx.project_root, "coverage")
        result = ctx.tool([*coverage, "run", f"--data-file={data}", "-m", "pytest",
                           *pytest_argv(ctx, params, junit)])
        answer = {**outcome(result, pytest_counts(junit, result.stdout)),
                  **pytest_used(ctx, params, "coverage"),
                  "coverage_config": str(tool_config(ctx.project_root, "coverage") or
                                         "none: coverage.py's defaults"),
                  "failed_tests": failing_tests(result.stdout)}
        if result.error and result.error["code"] == "tool_missing":
            return answer
        if any(Path(tmp).glob(".coverage.*")):  # the project's [run] parallel = true
            ctx.tool([*coverage, "combine", "-q", f"--data-file={data}"])
        made = ctx.tool([*coverage, "json", "-q", f"--data-file={data}", "-o", str(report)])
        if made.exit_code in (0, 2) and report.exists():  # 2: under the project's fail_under
            answer.update(coverage_summary(json.loads(report.read_text())))
            if made.exit_code == 2 and answer["ok"]:
                answer.update(ok=False, error={
                    "code": "coverage_under_minimum",
                    "message": f"total coverage {answer['headline']} is under the project's "
                               "fail_under"})
        else:
            answer.update(ok=False, error=made.error or {
                "code": "no_report", "message": "coverage json wrote no report"})
    return answer


def _number(display: str) -> int | float:
    """``"91"`` → 91, ``"90.63"`` → 90.63: the figure as coverage displays it."""
    return float(display) if "." in display else int(display)


def _percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 2) if whole else None


def coverage_summary(report: dict[str, Any], worst: int = 10) -> dict[str, Any]:
    """The headline (coverage's own rounding and precision) and lines, branches apart."""
    totals = report["totals"]
    files = report.get("files", {})
    ranked = sorted(files.items(), key=lambda item: item[1]["summary"]["percent_covered"])
    branches = "num_branches" in totals
    return {
        "percent_covered": _number(totals["percent_covered_display"]),
        "headline": f"{totals['percent_covered_display']}%",
        "measures": "lines and branches" if branches else "lines",
        "lines_covered": totals["covered_lines"],
        "lines_total": totals["num_statements"],
        "lines_percent": _percent(totals["covered_lines"], totals["num_statements"]),
        "branches_covered": totals.get("covered_branches") if branches else None,
        "branches_total": totals.get("num_branches") if branches else None,
        "branches_percent": _percent(totals.get("covered_branches", 0),
                                     totals["num_branches"]) if branches else None,
        "least_covered": [{"file": name,
                           "percent": _number(info["summary"]["percent_covered_display"])}
                          for name, info in ranked[:worst]],
    }


class TemplateParams(GenerateParams):
    module: ProjectPath = Field(..., min_length=1, max_length=300, pattern=r"\.py$",
                        description="Python module inside the project to write tests for")
    output: ProjectPath | None = Field(None, max_length=300, pattern=r"\.py$",
                               description="test file to write (default tests/test_<module>.py)")


def generate_test_template(ctx: ActionContext, params: TemplateParams) -> dict[str, Any]:
    """A pytest file with one test per public function and class of *module*: named to shadow no
    module or package, fitted to the project's ruff (isort, format), and refused if pytest could
    no longer collect the suite (checked in a scratch copy before writing).
    """
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
    output = params.output or test_template.free_name(ctx.project_root, relative, parts)
    clash = test_template.shadowed(ctx.project_root, output) if output else ["tests/"]
    if output is None or clash:
        return test_template.refused("shadows_module", (
            f"{output or f'tests/test_{relative.stem}.py'} would shadow {', '.join(clash)} "
            "(pytest could not tell them apart): send another \"output\""))
    content = test_template.render(str(relative), ".".join(parts), functions, classes)
    content, findings = test_template.ruff_fitted(ctx, output, content)
    if findings and not any(f.startswith("ruff is not") for f in findings):
        return test_template.refused("ruff_findings", "the project's ruff reports on the "
                                     "template: " + "; ".join(findings[:5]), content=content)
    if params.write:
        broken = test_template.breaks_collection(ctx, output, content)
        if broken:
            return test_template.refused("breaks_collection", "with the template, pytest "
                                         f"cannot collect the suite: {broken}", content=content)
    return {"ok": True, "functions": functions, "classes": classes,
            "notes": [f for f in findings if f.startswith("ruff is not")],
            **deliver(ctx.project_root, output, content, params, "output")}


SMOKE_SUITE = {"tests/test_smoke.py": "def test_one():\n    assert True\n\n"
                                       "def test_two():\n    assert 2 > 1\n",
               "calc.py": "def add(a, b):\n    return a + b\n"}

register(
    Action(path="/testing/run", subtype="test:run", title="Execute tests", params=TestRunParams,
           service=run_tests, lock_key="testing:{path}", precheck=tests_precheck,
           description="Runs the project's tests: pytest (counts from its JUnit report) or, "
                       "for Node, its npm test; names the failing tests.",
           example=Example(params={"path": "tests", "keyword": "smoke",
                                   "node_ids": ["tests/test_smoke.py::test_one"]}, tool="pytest",
                           files=SMOKE_SUITE, tool_output=".\n1 passed in 0.01s\n",
                           argv=("-q", "-rfE", "*", "-p", "no:cacheprovider", "-ksmoke", "--",
                                 "tests/test_smoke.py::test_one"),
                           expect={"passed": 1, "exit_code": 0},
                           invalid={"node_ids": ["../elsewhere.py::test_x"]},
                           invalid_field="node_ids.0")),
    Action(path="/testing/coverage", subtype="test:coverage", title="Run coverage",
           params=TestRunParams, service=run_coverage, lock_key="testing:{path}",
           precheck=coverage_precheck,
           description="pytest under coverage.py; coverage's own total, lines and branches "
                       "apart, the least covered files.",
           example=Example(params={"path": "tests"}, files=SMOKE_SUITE,
                           note="runs the real coverage and pytest",
                           expect={"passed": 2, "failed": 0},
                           invalid={"maxfail": -1}, invalid_field="maxfail")),
    Action(path="/testing/generate/template", subtype="generate:test_template",
           title="Generate test template", params=TemplateParams, service=generate_test_template,
           writes=lambda p: p.write,
           description="A pytest file with a test per public function and class of a module.",
           example=Example(params={"module": "calc.py"}, files=SMOKE_SUITE,
                           expect={"functions": ["add"], "written": False,
                                   "path": "tests/test_calc.py"},
                           invalid={"module": "/etc/passwd.py"}, invalid_field="module")),
)
