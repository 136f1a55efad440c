"""File modes the control plane leaves behind: saved terraform plans, restored files."""

from __future__ import annotations

import stat
from pathlib import Path

from controlplane.core.actions import load_integrations
from tests.conftest import bearer_client, git, isolated_path, python_script

load_integrations()

# A terraform that writes its saved plan the way a tool does: with the umask's mode (0644).
PLAN_WRITER = """
import os, sys
args = sys.argv[1:]
if "plan" in args:
    out = next(a for a in args if a.startswith("-out="))[len("-out="):]
    with open(out, "w") as fh:
        fh.write("sensitive = hunter2\\n")
    os.chmod(out, 0o644)
    sys.exit(2)
sys.stdout.write("{}")
"""


def test_a_saved_plan_is_the_owners_alone(repo: Path, make_app, fake_bin,
                                          tmp_path: Path) -> None:
    (repo / "infra").mkdir()
    (repo / "infra" / "main.tf").write_text('output "x" {\n  value = 1\n}\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "infra")
    plans = repo / ".git" / "scp" / "plans"
    plans.mkdir(parents=True)
    plans.chmod(0o755)  # left world-readable by an older version
    fake_bin("terraform", python_script(PLAN_WRITER))
    client = bearer_client(make_app(TOOL_ENV=isolated_path(tmp_path / "path",
                                                           first=fake_bin.dir)))
    body = client.post("/terraform/plan", json={"dir": "infra"}).get_json()
    assert body["status"] == "ok", body
    plan_file = repo / body["plan_file"]
    assert plan_file.read_text() == "sensitive = hunter2\n"
    assert stat.S_IMODE(plan_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(plans.stat().st_mode) == 0o700
