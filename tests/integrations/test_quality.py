"""Quality actions with the real ruff and mypy on a tiny project with known findings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.core.actions import load_integrations
from tests.conftest import bearer_client, isolated_path, python_script

load_integrations()

PROJECT = {
    "pyproject.toml": '[tool.ruff.lint]\nselect = ["F"]\n',
    "bad.py": "import os\n\n\ndef f(a: int) -> str:\n    return a\n",
    "ugly.py": "x=1\n",
}


@pytest.fixture
def project(repo: Path) -> Path:
    for name, text in PROJECT.items():
        (repo / name).write_text(text)
    return repo


def test_lint_counts_the_unused_import(project: Path, make_app) -> None:
    body = bearer_client(make_app()).post("/quality/lint", json={}).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "lint_findings"
    assert body["findings_count"] == 1 and body["by_rule"] == {"F401": 1}
    assert body["findings"][0] == {"file": "bad.py", "line": 1, "column": 8, "code": "F401",
                                   "message": "`os` imported but unused"}
    assert body["text"] == ["bad.py:1:F401:`os` imported but unused"]


def test_format_check_lists_and_format_rewrites(project: Path, make_app) -> None:
    client = bearer_client(make_app())
    checked = client.post("/quality/format", json={"check": True}).get_json()
    assert checked["status"] == "failed" and checked["error"]["code"] == "unformatted"
    assert checked["files"] == ["ugly.py"] and (project / "ugly.py").read_text() == "x=1\n"
    done = client.post("/quality/format", json={"paths": ["ugly.py", "bad.py"]}).get_json()
    assert done["status"] == "ok" and done["files"] == ["ugly.py"] and done["reformatted"]
    assert (project / "ugly.py").read_text() == "x = 1\n"
    again = client.post("/quality/format", json={}).get_json()
    assert again["status"] == "ok" and again["files"] == [] and not again["reformatted"]


def test_typecheck_finds_the_type_error(project: Path, make_app) -> None:
    body = bearer_client(make_app()).post("/quality/typecheck", json={}).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "type_errors"
    assert body["errors"] == 1 and body["by_code"] == {"return-value": 1}
    assert body["findings"][0]["file"] == "bad.py" and body["findings"][0]["line"] == 5


def test_check_runs_all_three(project: Path, make_app) -> None:
    body = bearer_client(make_app()).post("/quality/check", json={}).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "quality_failed"
    assert body["summary"] == {"lint_findings": 1, "unformatted": 1, "type_errors": 1}
    assert body["lint"]["by_rule"] == {"F401": 1} and body["format"]["files"] == ["ugly.py"]
    assert (project / "ugly.py").read_text() == "x=1\n"  # check changes nothing


def test_check_of_a_clean_project_is_ok(repo: Path, make_app) -> None:
    (repo / "pyproject.toml").write_text(PROJECT["pyproject.toml"])
    (repo / "good.py").write_text("def f(a: int) -> int:\n    return a\n")
    body = bearer_client(make_app()).post("/quality/check", json={"paths": ["good.py"]}).get_json()
    assert body["status"] == "ok", body
    assert body["summary"] == {"lint_findings": 0, "unformatted": 0, "type_errors": 0}


OLD_MYPY = """
import json, os, sys
args = sys.argv[1:]
with open(os.environ["ARGV_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if "--output=json" in args:
    sys.stderr.write("usage: mypy [-h] [-v] [-V] [more options; see below]\\n"
                     "            [-m MODULE] [-p PACKAGE] [-c PROGRAM_TEXT] [files ...]\\n"
                     "mypy: error: unrecognized arguments: --output=json\\n")
    sys.exit(2)
print('bad.py:5: error: Incompatible return value type (got "int", expected "str")  '
      '[return-value]')
print('bad.py:5: note: See https://mypy.rtfd.io/en/stable/_refs.html#code-return-value')
sys.exit(1)
"""


def test_an_older_mypy_is_read_from_its_text_lines(project: Path, make_app, fake_bin,
                                                   tmp_path: Path) -> None:
    fake_bin("mypy", python_script(OLD_MYPY))
    env = isolated_path(tmp_path / "path", first=fake_bin.dir)
    env["ARGV_LOG"] = str(tmp_path / "argv.jsonl")
    body = bearer_client(make_app(TOOL_ENV=env)).post("/quality/typecheck", json={}).get_json()
    assert body["errors"] == 1 and body["notes"] == 1 and body["by_code"] == {"return-value": 1}
    calls = [json.loads(line) for line in (tmp_path / "argv.jsonl").read_text().splitlines()]
    cache = f"--cache-dir={project / '.git' / 'scp' / 'cache' / 'mypy'}"
    assert calls == [["--output=json", cache, "--no-install-types", "--", "."],
                     ["--show-error-codes", "--no-color-output", "--no-error-summary", cache,
                      "--", "."]]


VENV_PYTHON = """
import json, os, sys
with open(os.path.join(os.path.dirname(__file__), "argv.jsonl"), "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[2] == "mypy":
    sys.stderr.write(sys.argv[0] + ": No module named mypy\\n")
    sys.exit(1)
print("[]")
"""


def test_the_projects_virtualenv_comes_first(project: Path, make_app) -> None:
    venv_bin = project / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(python_script(VENV_PYTHON))
    (venv_bin / "python").chmod(0o755)
    (project / ".gitignore").write_text(".venv/\n")  # as a project ignores its venv
    client = bearer_client(make_app())
    assert client.post("/quality/lint", json={}).get_json()["status"] == "ok"
    first = json.loads((venv_bin / "argv.jsonl").read_text().splitlines()[0])
    cache = f"--cache-dir={project / '.git' / 'scp' / 'cache' / 'ruff'}"
    assert first == ["-m", "ruff", "check", "--no-fix", cache, "--output-format=json", "--", "."]
    missing = client.post("/quality/typecheck", json={}).get_json()
    assert missing["error"]["code"] == "tool_missing"
    assert "pip install mypy" in missing["error"]["message"]


def test_check_without_mypy_says_tool_missing(project: Path, make_app, tmp_path: Path) -> None:
    env = isolated_path(tmp_path / "path", exclude=("mypy",))
    body = bearer_client(make_app(TOOL_ENV=env)).post("/quality/check", json={}).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "tool_missing"
    assert body["lint"]["findings_count"] == 1  # the other parts still ran


def test_quality_test_runs_the_projects_pytest(repo: Path, make_app) -> None:
    (repo / "tests").mkdir()
    (repo / "tests" / "test_it.py").write_text("def test_a():\n    assert True\n\n"
                                               "def test_b():\n    assert False\n")
    body = bearer_client(make_app()).post("/quality/test", json={"path": "tests"}).get_json()
    assert body["status"] == "failed" and body["passed"] == 1 and body["failed"] == 1
