"""The dashboard's JavaScript and CSS: ``node --test`` unit tests (tests/js) with >= 80 % line
coverage of static/js, eslint and stylelint clean (DECISIONS §12).

Tools come from package-lock.json (``npm ci``, run here when node_modules is missing or older
than the lockfile; .ci/run runs it first). Without node/npm, or when ``npm ci`` cannot reach the
registry, these tests skip, and fail under ``CI=true``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "src" / "ui" / "web" / "static"
NODE_MODULES = ROOT / "node_modules"
MIN_LINE_COVERAGE = 80.0
CI = os.environ.get("CI") == "true"


def _missing(reason: str) -> None:
    """Skip for want of *reason*, or fail when CI installs it (.ci/run)."""
    if CI:
        pytest.fail(f"under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def _stale() -> bool:
    installed = NODE_MODULES / ".package-lock.json"  # npm writes it on every install
    lock = ROOT / "package-lock.json"
    return not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime


def _npm_ci() -> None:
    """``npm ci`` once at a time per checkout (xdist workers share node_modules)."""
    key = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    with open(Path(tempfile.gettempdir()) / f"scp-npm-ci-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _stale():
            return
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            _missing(f"npm ci failed (registry unreachable?): {tail[0]}; run npm ci in {ROOT}")


@pytest.fixture(scope="module")
def tools() -> Path:
    """node_modules/.bin, installed from the lockfile when missing or stale."""
    if not shutil.which("node") or not shutil.which("npm"):
        _missing("node and npm are needed for the JavaScript tests: apt-get install nodejs npm")
    if _stale():
        _npm_ci()
    return NODE_MODULES / ".bin"


def _run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_node_unit_tests_pass_with_line_coverage_of_static_js(tools: Path, tmp_path: Path) -> None:
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "js").glob("*.test.mjs"))
    assert files, "no tests/js/*.test.mjs"
    done = _run([str(tools / "c8"), "--all", "--src", "src/ui/web/static/js",
                 "--include", "src/ui/web/static/js/**", "--temp-directory", str(tmp_path / "raw"),
                 "--report-dir", str(tmp_path), "--reporter", "json-summary",
                 "--reporter", "text-summary", "node", "--test", *files])
    report = f"{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    assert done.returncode == 0, f"node --test failed:\n{report}"
    summary = json.loads((tmp_path / "coverage-summary.json").read_text())
    lines = summary["total"]["lines"]["pct"]
    print(f"static/js line coverage: {lines} % over {len(summary) - 1} files")
    assert lines >= MIN_LINE_COVERAGE, f"static/js line coverage {lines} % < {MIN_LINE_COVERAGE} %"
    js_files = {p.resolve() for p in (STATIC / "js").rglob("*.js")}
    assert {Path(name).resolve() for name in summary if name != "total"} == js_files, \
        "coverage must count every file of static/js, loaded by a test or not"


def test_eslint_clean(tools: Path) -> None:
    done = _run([str(tools / "eslint"), "--max-warnings", "0", "src/ui/web/static", "tests/js",
                 "eslint.config.mjs"])
    assert done.returncode == 0, f"eslint findings:\n{done.stdout}{done.stderr}"


def test_stylelint_clean(tools: Path) -> None:
    done = _run([str(tools / "stylelint"), "--max-warnings", "0", "src/ui/web/static/**/*.css"])
    assert done.returncode == 0, f"stylelint findings:\n{done.stdout}{done.stderr}"
