"""Installing a DevOps tool: a dry run runs nothing; a real run runs the allow-listed command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from controlplane.core.actions import load_integrations
from controlplane.core.ledger import Ledger
from tests.conftest import bearer_client, isolated_path, python_script

load_integrations()

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="apt-get runs under sudo -n otherwise")

# a fake that records its argv and environment and answers like the real tool
RECORDER = """
import json, os, sys
with open(os.environ["ARGV_LOG"], "a") as log:
    log.write(json.dumps({"argv": sys.argv[1:],
                          "frontend": os.environ.get("DEBIAN_FRONTEND")}) + "\\n")
if "jq" in sys.argv and os.environ.get("APT_FAILS"):
    sys.stderr.write("E: Unable to locate package jq\\n")
    sys.exit(100)
print(os.environ.get("SAYS", ""))
"""
APT_SAYS = ("Reading package lists...\nBuilding dependency tree...\nThe following NEW packages "
            "will be installed:\n  jq\nSetting up jq (1.6-2.1) ...")


@pytest.fixture
def env(fake_bin, tmp_path: Path) -> dict[str, str]:
    for name in ("apt-get", "npm"):
        fake_bin(name, python_script(RECORDER))
    result = isolated_path(tmp_path / "path", first=fake_bin.dir)
    result.update(ARGV_LOG=str(tmp_path / "argv.jsonl"), SAYS=APT_SAYS)
    return result


def calls(tmp_path: Path) -> list[dict]:
    log = tmp_path / "argv.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@needs_root
def test_a_dry_run_answers_the_command_and_runs_nothing(make_app, env, tmp_path: Path) -> None:
    body = bearer_client(make_app(TOOL_ENV=env)).post("/audit/install-tool",
                                                      json={"tool": "jq"}).get_json()
    assert body["status"] == "ok" and body["dry_run"] and not body["ran"]
    assert body["argv"] == ["apt-get", "install", "-y", "--no-install-recommends", "jq"]
    assert calls(tmp_path) == []


@needs_root
def test_a_real_run_installs_with_apt_get(repo: Path, make_app, env, tmp_path: Path) -> None:
    client = bearer_client(make_app(TOOL_ENV=env))
    body = client.post("/audit/install-tool", json={"tool": "jq", "dry_run": False}).get_json()
    assert body["status"] == "ok" and body["ran"] and body["method"] == "apt"
    assert calls(tmp_path) == [{"argv": ["install", "-y", "--no-install-recommends", "jq"],
                                "frontend": "noninteractive"}]
    events = Ledger.open(repo).events(body["run_id"])
    assert any("Setting up jq" in e["data"].get("line", "") for e in events)
    failing = bearer_client(make_app(TOOL_ENV={**env, "APT_FAILS": "1"}))
    failed = failing.post("/audit/install-tool", json={"tool": "jq", "dry_run": False}).get_json()
    assert failed["status"] == "failed" and failed["error"]["code"] == "exit_status"
    assert "Unable to locate package jq" in failed["error"]["message"]


def test_node_tools_install_globally_with_npm(make_app, env, tmp_path: Path) -> None:
    body = bearer_client(make_app(TOOL_ENV=env)).post(
        "/audit/install-tool", json={"tool": "prettier", "dry_run": False}).get_json()
    assert body["status"] == "ok" and body["method"] == "npm"
    assert calls(tmp_path)[0]["argv"] == ["install", "--global", "--no-audit", "--no-fund",
                                          "--ignore-scripts", "prettier"]


VENV_PIP = """
import json, os, sys
with open(os.path.join(os.path.dirname(__file__), "argv.jsonl"), "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
open(os.path.join(os.path.dirname(__file__), "ruff"), "w").close()
print("Successfully installed ruff-0.6.9")
"""


def test_python_tools_go_into_the_projects_venv(repo: Path, make_app) -> None:
    client = bearer_client(make_app())
    missing = client.post("/audit/install-tool", json={"tool": "ruff"}).get_json()
    assert missing["status"] == "failed" and missing["error"]["code"] == "no_virtualenv"
    venv_bin = repo / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(python_script(VENV_PIP))
    (venv_bin / "python").chmod(0o755)
    dry = client.post("/audit/install-tool", json={"tool": "ruff"}).get_json()
    assert dry["argv"][:4] == [str(venv_bin / "python"), "-m", "pip", "install"]
    assert not (venv_bin / "argv.jsonl").exists()
    body = client.post("/audit/install-tool", json={"tool": "ruff", "dry_run": False}).get_json()
    assert body["status"] == "ok" and body["available"] and not body["available_before"]
    lines = (venv_bin / "argv.jsonl").read_text().splitlines()
    argv = next(json.loads(line) for line in lines if "-m" in line)
    assert argv[:3] == ["-m", "pip", "install"] and argv[-2:] == ["--", "ruff"]
    assert body["installed"] == [{"name": "ruff", "version": "0.6.9"}]


@pytest.mark.parametrize(("body", "field"), [({"tool": "rm -rf /"}, "tool"),
                                            ({"tool": "--help"}, "tool"),
                                            ({"tool": "jq", "method": "npm"}, "method"),
                                            ({"tool": "jq", "dry_run": "no"}, "dry_run")])
def test_unknown_tools_and_methods_are_refused(repo: Path, make_app, body: dict,
                                               field: str) -> None:
    answer = bearer_client(make_app()).post("/audit/install-tool", json=body)
    assert answer.status_code == 422 and field in answer.get_json()["fields"]
    assert Ledger.open(repo).recent() == []


def test_without_npm_a_real_run_says_tool_missing(make_app, tmp_path: Path) -> None:
    env = isolated_path(tmp_path / "path", exclude=("npm",))
    body = bearer_client(make_app(TOOL_ENV=env)).post(
        "/audit/install-tool", json={"tool": "yarn", "dry_run": False}).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "tool_missing"
