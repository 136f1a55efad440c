"""The wheel holds every file of src/ (CI installs it non-editable: a file left out of the
package data works in a checkout and fails for every user)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_every_source_file(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           str(ROOT), "-w", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = next(tmp_path.glob("*.whl"))
    packaged = {name.removeprefix("controlplane/") for name in zipfile.ZipFile(wheel).namelist()
                if name.startswith("controlplane/")}
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "src"], capture_output=True,
                             text=True, check=True).stdout.split()
    missing = [path.removeprefix("src/") for path in tracked
               if path.removeprefix("src/") not in packaged]
    assert not missing, missing
