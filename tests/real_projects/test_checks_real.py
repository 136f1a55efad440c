"""Checks on real projects (issue 15): they never write, and they report what the tool reports.

Each test runs an action on a checkout of a pinned release (``tests/corpus.py``), then the
same tool by hand with the project's own configuration, and compares. The project's config
is first made hostile the way a real one can be: ruff ``fix = true``. CI runs click and
minimist with a test subset; ``CONTROLPLANE_LONG_TESTS=1`` adds attrs and click's full suite.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from controlplane.core.actions import load_integrations
from controlplane.core.integrations._project_facts import tool_config
from tests.conftest import LONG, bearer_client, git, make_repo
from tests.corpus import porcelain

load_integrations()

PYTHON_PROJECTS = ["click", "attrs"] if LONG else ["click"]
KEYWORD = {"click": None if LONG else "basic or arguments",
           "attrs": None if LONG else "test_funcs"}


@pytest.fixture
def plain_repo(tmp_path: Path) -> Path:
    """A repository of our own (README only), not a corpus project."""
    return make_repo(tmp_path / "plain")


def shell_environ() -> dict[str, str]:
    """The environment of a user's shell: without this test run's own PYTEST_* variables
    (PYTEST_XDIST_WORKER makes a plugin in the child pytest believe xdist is active)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def by_hand(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """The project's own tool run as a user would: its venv's python, in its root."""
    done = subprocess.run([str(root / ".venv" / "bin" / "python"), *args], cwd=root,
                          capture_output=True, text=True, check=False,
                          env={**shell_environ(), "NO_COLOR": "1", **(env or {})})
    return done.stdout + done.stderr


def fix_true(root: Path) -> None:
    """Commit ``fix = true`` into the project's ruff config (pyproject's, or a ruff.toml)."""
    pyproject = root / "pyproject.toml"
    if pyproject.exists() and "[tool.ruff]\n" in pyproject.read_text():
        pyproject.write_text(pyproject.read_text().replace("[tool.ruff]\n",
                                                           "[tool.ruff]\nfix = true\n", 1))
    else:
        (root / "ruff.toml").write_text("fix = true\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "ruff: fix = true")


def tracked_digest(root: Path) -> str:
    """Every tracked file's content, hashed by git (``git status`` could miss nothing else)."""
    return git(root, "ls-files", "-s") + git(root, "diff")


def ruff_findings(root: Path) -> int:
    said = by_hand(root, "-m", "ruff", "check", "--no-fix", "--no-cache",
                   "--output-format=concise", ".")
    found = re.search(r"^Found (\d+) errors?\.", said, re.MULTILINE)
    return int(found.group(1)) if found else 0


def ruff_unformatted(root: Path) -> int:
    said = by_hand(root, "-m", "ruff", "format", "--check", "--no-cache", ".")
    found = re.search(r"^(\d+) files? would be reformatted", said, re.MULTILINE)
    return int(found.group(1)) if found else 0


def mypy_errors(root: Path) -> int:
    """mypy as a user runs it: no operand when the config names ``files``, else ``.``."""
    config = tool_config(root, "mypy")
    operands = [] if config and config.values.get("files") else ["."]
    said = by_hand(root, "-m", "mypy", f"--cache-dir={root / '.git' / 'scp' / 'cache' / 'mypy'}",
                   *operands)
    found = re.search(r"^Found (\d+) errors? in", said, re.MULTILINE)
    assert found or "Success: no issues found" in said, said[-2000:]
    return int(found.group(1)) if found else 0


def pytest_counts(last_line: str) -> dict[str, int]:
    return {word: int(n) for n, word in re.findall(
        r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?)", last_line)}


def keyword_args(name: str) -> list[str]:
    return [f"-k{KEYWORD[name]}"] if KEYWORD[name] else []


def keyword_body(name: str) -> dict[str, str]:
    return {"keyword": KEYWORD[name]} if KEYWORD[name] else {}


@pytest.mark.parametrize("repo", PYTHON_PROJECTS, indirect=True)
def test_lint_with_fix_true_changes_nothing_and_counts_what_ruff_counts(repo: Path,
                                                                         make_app) -> None:
    fix_true(repo)
    before = tracked_digest(repo)
    body = bearer_client(make_app()).post("/quality/lint", json={}).get_json()
    assert porcelain(repo) == "" and tracked_digest(repo) == before, porcelain(repo)[:2000]
    assert body["error"]["code"] == "lint_findings", body.get("error")
    assert body["findings_count"] == ruff_findings(repo) > 0
    assert "(the project's virtual environment)" in body["interpreter"]
    assert body["config"] in ("ruff.toml", "pyproject.toml [tool.ruff]")


@pytest.mark.parametrize("repo", PYTHON_PROJECTS, indirect=True)
def test_typecheck_reads_the_projects_mypy_files(repo: Path, make_app) -> None:
    body = bearer_client(make_app()).post("/quality/typecheck", json={}).get_json()
    assert porcelain(repo) == ""
    assert body.get("error", {}).get("code") in (None, "type_errors"), body.get("error")
    assert body["errors"] == mypy_errors(repo)
    if repo.name == "click":  # setup.cfg [mypy] files = src/click, tests/typing
        assert body["files_from"] == "setup.cfg [mypy]: files" and body["errors"] < 50


@pytest.mark.parametrize("repo", PYTHON_PROJECTS, indirect=True)
def test_quality_check_with_fix_true_changes_nothing(repo: Path, make_app) -> None:
    fix_true(repo)
    before = tracked_digest(repo)
    body = bearer_client(make_app()).post("/quality/check", json={}).get_json()
    assert porcelain(repo) == "" and tracked_digest(repo) == before, porcelain(repo)[:2000]
    assert body["summary"] == {"lint_findings": ruff_findings(repo),
                               "unformatted": ruff_unformatted(repo),
                               "type_errors": mypy_errors(repo)}


@pytest.mark.parametrize("repo", PYTHON_PROJECTS, indirect=True)
def test_testing_run_leaves_no_bytecode_and_counts_what_pytest_counts(repo: Path,
                                                                      make_app) -> None:
    body = bearer_client(make_app()).post("/testing/run", json=keyword_body(repo.name))
    body = body.get_json()
    assert porcelain(repo) == "", porcelain(repo)[:2000]  # no __pycache__/ in the tree
    assert body["tests_from"].endswith(": testpaths") and "virtual environment" in \
        body["interpreter"]
    said = by_hand(repo, "-m", "pytest", "-q", "-p", "no:cacheprovider", *keyword_args(repo.name),
                   env={"PYTHONDONTWRITEBYTECODE": "1"})
    expected = pytest_counts(said.strip().splitlines()[-1])
    assert expected, said[-3000:]  # pytest by hand said how many ran
    assert {k: body.get(k, 0) for k in expected} == expected and expected.get("passed")


@pytest.mark.parametrize("repo", ["click"], indirect=True)
def test_coverage_reports_the_tools_headline_with_lines_and_branches_apart(
        repo: Path, make_app, tmp_path: Path) -> None:
    body = bearer_client(make_app()).post("/testing/coverage",
                                          json=keyword_body("click")).get_json()
    assert porcelain(repo) == ""
    data = f"--data-file={tmp_path / 'by-hand.coverage'}"
    quiet = {"PYTHONDONTWRITEBYTECODE": "1"}
    by_hand(repo, "-m", "coverage", "run", data, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            *keyword_args("click"), env=quiet)
    report = by_hand(repo, "-m", "coverage", "report", data, env=quiet)
    total = re.search(r"^TOTAL\s.*?(\d+(?:\.\d+)?)%\s*$", report, re.MULTILINE)
    assert total, report[-2000:]
    assert body["headline"] == f"{total.group(1)}%"
    assert body["measures"] == "lines and branches"  # setup.cfg [coverage:run] branch = True
    assert body["lines_total"] > 0 and body["branches_total"] > 0
    assert body["coverage_config"] == "setup.cfg [coverage:run]"


@pytest.mark.parametrize("repo", ["minimist"], indirect=True)
def test_node_project_runs_npm_test_not_pytest(repo: Path, make_app) -> None:
    body = bearer_client(make_app()).post("/testing/run", json={}).get_json()
    assert porcelain(repo) == ""
    done = subprocess.run(["npm", "test"], cwd=repo, capture_output=True, text=True, check=False)
    assert body["runner"] == "npm test" and body["exit_code"] == done.returncode
    if done.returncode != 0 and not (repo / "node_modules").exists():
        assert body["error"]["code"] == "dependencies_missing", body["error"]
        assert "npm ci" in body["error"]["message"]
    refused = bearer_client(make_app()).post("/testing/run", json={"keyword": "parse"})
    assert refused.status_code == 422 and "keyword" in refused.get_json()["fields"]
    coverage = bearer_client(make_app()).post("/testing/coverage", json={})
    assert coverage.status_code == 422 and "path" in coverage.get_json()["fields"]
    lint = bearer_client(make_app()).post("/quality/lint", json={})
    assert lint.status_code == 422 and "node project" in lint.get_json()["fields"]["paths"]


def test_unknown_language_is_refused_with_the_reason(plain_repo: Path, make_app) -> None:
    answer = bearer_client(make_app(REPO=plain_repo)).post("/testing/run", json={})
    assert answer.status_code == 422, answer.get_json()
    assert "nothing says how to run its tests" in answer.get_json()["fields"]["path"]


def test_a_check_that_writes_anyway_fails_naming_the_file(plain_repo: Path, make_app) -> None:
    repo = plain_repo
    (repo / "tests").mkdir()
    (repo / "tests" / "test_writes.py").write_text(
        "from pathlib import Path\n\n\ndef test_it():\n"
        "    Path(__file__).with_name('report.txt').write_text('x')\n")
    (repo / "setup.py").write_text("")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a suite that writes")
    body = bearer_client(make_app(REPO=repo)).post("/testing/run", json={}).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "wrote_files", body
    assert body["wrote_files"] == ["tests/report.txt"]


def test_failing_tests_are_named(plain_repo: Path, make_app) -> None:
    (plain_repo / "setup.py").write_text("")
    (plain_repo / "tests").mkdir()
    (plain_repo / "tests" / "test_it.py").write_text("def test_ok():\n    pass\n\n\n"
                                                     "def test_bad():\n    assert 1 == 2\n")
    body = bearer_client(make_app(REPO=plain_repo)).post("/testing/run", json={}).get_json()
    assert body["failed"] == 1 and body["failed_tests"] == ["tests/test_it.py::test_bad"]
    assert json.dumps(body)  # serialisable as the run's result
