"""File modes the control plane leaves behind: saved terraform plans, restored files."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import tarfile
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


def crafted_backup(path: Path, files: dict[str, tuple[bytes, int]]) -> None:
    """A backup whose manifest asks for *files*' modes (set-id, sticky, world-writable…)."""
    entries = [{"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                "mode": mode} for name, (data, mode) in files.items()]
    manifest = json.dumps({"format": "scp-backup", "version": 1, "files": entries}).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, (data, mode) in [*files.items(), ("MANIFEST.json", (manifest, 0o644))]:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))


def test_restored_files_never_get_set_id_sticky_or_group_other_write(repo: Path,
                                                                     make_app) -> None:
    asked = {"suid.sh": 0o4755, "sgid.sh": 0o2755, "sticky.txt": 0o1644,
             "world.txt": 0o666, "group.txt": 0o775, "plain.txt": 0o644, "secret.txt": 0o600}
    crafted_backup(repo / ".controlplane/backups/modes.tar.gz",
                   {name: (f"{name}\n".encode(), mode) for name, mode in asked.items()})
    client = bearer_client(make_app())
    answer = client.post("/backup/restore", json={"name": "modes", "confirm": True}).json
    assert answer["status"] == "ok", answer
    got = {name: stat.S_IMODE((repo / name).stat().st_mode) for name in asked}
    assert got == {"suid.sh": 0o755, "sgid.sh": 0o755, "sticky.txt": 0o644, "world.txt": 0o644,
                   "group.txt": 0o755, "plain.txt": 0o644, "secret.txt": 0o600}
