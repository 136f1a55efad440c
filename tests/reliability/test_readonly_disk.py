"""A read-only ``.git`` (issue 13 item 15): reads still answer.

We run as root here, where file modes do not stop writes: a read-only bind mount of
``.git`` over itself does (skipped where mounting is not permitted).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_repo
from tests.reliability.fault_support import cli


@pytest.fixture
def read_only_git(tmp_path: Path) -> Iterator[Path]:
    """A repository with two recorded runs whose ``.git`` is then mounted read-only."""
    repo = make_repo(tmp_path / "project")
    for summary in ("first", "second"):
        done = cli(repo, "exec", "test:ro", "--summary", summary, "--", "echo", summary)
        assert done.returncode == 0, done.stderr
    git_dir = repo / ".git"
    bound = subprocess.run(["mount", "--bind", str(git_dir), str(git_dir)],
                           capture_output=True, text=True, check=False)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here (needs root): {bound.stderr.strip()}")
    try:
        remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(git_dir)],
                                 capture_output=True, text=True, check=False)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
        yield repo
    finally:
        subprocess.run(["umount", "-l", str(git_dir)], check=False)


def test_reads_work_on_a_read_only_git_dir(read_only_git: Path) -> None:
    repo = read_only_git
    assert not (repo / ".git" / "scp" / "probe").exists()
    with pytest.raises(OSError):
        (repo / ".git" / "scp" / "probe").write_text("x")  # really read-only
    listed = cli(repo, "runs", "list", "--json")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    runs = json.loads(listed.stdout)
    assert sorted(r["summary"] for r in runs) == ["first", "second"]
    shown = cli(repo, "runs", "show", runs[0]["run_id"])
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert runs[0]["run_id"] in shown.stdout
    print(f"FIGURE read-only .git: runs list/show exit 0; stderr says: "
          f"{listed.stderr.strip().splitlines()[0][:90] if listed.stderr.strip() else '-'}")
