"""mypy finds no error in the package as installed (issue 14: typed contracts, py.typed).

The same command as ``.ci/run``'s mypy step, run from an empty directory so only the
installed package is checked. An editable install (``package_dir`` maps ``controlplane``
onto ``src/``) is not found by ``mypy -p``: the package directory is then linked under a
temporary ``MYPYPATH`` root instead. One test, so it runs once however many xdist workers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import controlplane

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
ERROR_LINE = re.compile(r"^\S+:\d+: error: ")


def mypy_command(work: Path) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that check ``controlplane`` as Python imports it."""
    env = dict(os.environ)
    package_dir = Path(controlplane.__file__).resolve().parent
    if package_dir.parent.name not in {"site-packages", "dist-packages"}:  # editable install
        root = work / "mypyroot"
        root.mkdir()
        (root / "controlplane").symlink_to(package_dir, target_is_directory=True)
        env["MYPYPATH"] = str(root)
    argv = [sys.executable, "-m", "mypy", "--config-file", str(PYPROJECT),
            "--cache-dir", str(work / "cache"), "-p", "controlplane"]
    return argv, env


def test_mypy_finds_no_error_in_the_installed_package(tmp_path: Path) -> None:
    argv, env = mypy_command(tmp_path)
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=280, check=False)
    errors = [line for line in done.stdout.splitlines() if ERROR_LINE.match(line)]
    # mypy is in the test extra; exit 2 or no summary line: mypy itself failed
    assert done.returncode in (0, 1) and " source file" in done.stdout, done.stdout + done.stderr
    assert errors == [], f"{len(errors)} mypy errors:\n" + "\n".join(errors)
