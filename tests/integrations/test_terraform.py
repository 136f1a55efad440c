"""Terraform actions with the real terraform on a configuration without providers.

Nothing reaches the network: the CLI configuration, plugin cache and checkpoint
are isolated, and the configuration has only ``locals`` and ``output`` blocks.
The argv and environment contract (workspace and variables never in argv) is
checked with a fake that records both.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from controlplane.core.actions import load_integrations
from controlplane.core.ledger import Ledger
from tests.conftest import bearer_client, git, isolated_path, python_script

load_integrations()
TERRAFORM = shutil.which("terraform")
real_terraform = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")
MAIN_TF = """locals {
  greeting = "hi"
}

output "greeting" {
  value = local.greeting
}
"""


@pytest.fixture
def project(repo: Path) -> Path:
    (repo / "infra").mkdir()
    (repo / "infra" / "main.tf").write_text(MAIN_TF)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "infra")
    return repo


@pytest.fixture
def offline_env(tmp_path: Path) -> dict[str, str]:
    """A PATH exposing the real terraform, and nothing of it reaching out."""
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "terraform").symlink_to(TERRAFORM or "/nonexistent")
    config = tmp_path / "terraform.rc"
    config.write_text("")
    (tmp_path / "plugins").mkdir()
    return {**isolated_path(tmp_path / "bin", first=tools), "TF_CLI_CONFIG_FILE": str(config),
            "TF_PLUGIN_CACHE_DIR": str(tmp_path / "plugins"), "CHECKPOINT_DISABLE": "1",
            "HOME": str(tmp_path)}


@real_terraform
def test_init_validate_plan_apply_destroy(project: Path, make_app, offline_env) -> None:
    client = bearer_client(make_app(TOOL_ENV=offline_env))
    init = client.post("/terraform/init", json={"dir": "infra"}).get_json()
    assert init["status"] == "ok", init
    assert init["message"] == "Terraform has been successfully initialized!"

    valid = client.post("/terraform/validate", json={"dir": "infra"}).get_json()
    assert (valid["status"], valid["valid"], valid["error_count"]) == ("ok", True, 0), valid

    plan = client.post("/terraform/plan", json={"dir": "infra"}).get_json()
    assert plan["status"] == "ok", plan  # exit 2 (-detailed-exitcode): changes, not a failure
    assert plan["changes_present"] is True and plan["output_changes"] == ["greeting"]
    assert (plan["add"], plan["change"], plan["destroy"]) == (0, 0, 0)
    plan_file = project / plan["plan_file"]
    assert plan["plan_file"] == f".git/scp/plans/{plan['run_id']}.tfplan"
    assert plan["sha256"] == hashlib.sha256(plan_file.read_bytes()).hexdigest()
    run = Ledger.open(project).get(plan["run_id"])
    assert run["artifacts"] == [{"path": plan["plan_file"], "sha256": plan["sha256"],
                                 "kind": "terraform_plan"}]
    assert git(project, "status", "--porcelain", "--", ".git") == ""

    applied = client.post("/terraform/apply", json={"dir": "infra", "plan": plan["plan_file"],
                                                    "confirm": True}).get_json()
    assert applied["status"] == "ok", applied
    assert applied["outputs"] == {"greeting": "hi"} and applied["add"] == 0
    assert applied["message"] == "Outputs: 1"
    assert (project / "infra" / "terraform.tfstate").exists()

    destroyed = client.post("/terraform/destroy", json={"dir": "infra",
                                                        "confirm": True}).get_json()
    assert destroyed["status"] == "ok", destroyed
    assert destroyed["message"].startswith("Destroy complete!")


@real_terraform
def test_workspace_select_then_plan_in_it(project: Path, make_app, offline_env) -> None:
    client = bearer_client(make_app(TOOL_ENV=offline_env))
    assert client.post("/terraform/init", json={"dir": "infra"}).get_json()["status"] == "ok"
    missing = client.post("/terraform/workspace/select", json={"dir": "infra",
                                                               "workspace": "staging"}).get_json()
    assert missing["status"] == "failed", missing  # no -or-create: it does not exist yet
    made = client.post("/terraform/workspace/select", json={
        "dir": "infra", "workspace": "staging", "create": True}).get_json()
    assert made["status"] == "ok" and made["created"] is True, made
    assert (project / "infra" / ".terraform" / "environment").read_text() == "staging"

    applied = client.post("/terraform/apply", json={"dir": "infra", "workspace": "staging",
                                                    "confirm": True}).get_json()
    assert applied["status"] == "ok", applied
    assert (project / "infra" / "terraform.tfstate.d" / "staging" / "terraform.tfstate").exists()
    run = Ledger.open(project).get(applied["run_id"])
    assert run["target"]["workspace"] == "staging" and run["target"]["tool"] == "terraform"
    assert "staging" not in applied["argv"]  # TF_WORKSPACE, never argv


@real_terraform
def test_an_invalid_configuration_is_reported_with_its_diagnostics(project: Path, make_app,
                                                                   offline_env) -> None:
    (project / "infra" / "bad.tf").write_text('output "x" {\n  value = nope\n}\n')
    client = bearer_client(make_app(TOOL_ENV=offline_env))
    body = client.post("/terraform/validate", json={"dir": "infra"}).get_json()
    assert body["status"] == "failed" and body["valid"] is False, body
    assert body["error"] == {"code": "invalid", "message": "Invalid reference"}
    assert body["error_count"] == 1
    assert body["diagnostics"][0]["file"] == "bad.tf" and body["diagnostics"][0]["line"] == 2


@real_terraform
def test_fmt_check_lists_and_fmt_rewrites(project: Path, make_app, offline_env) -> None:
    messy = 'locals {\n  greeting="hi"\n    name = "x"\n}\n'
    (project / "infra" / "main.tf").write_text(messy)
    client = bearer_client(make_app(TOOL_ENV=offline_env))
    checked = client.post("/terraform/fmt", json={"dir": "infra", "check": True}).get_json()
    assert checked["status"] == "failed" and checked["error"]["code"] == "unformatted", checked
    assert checked["files"] == ["infra/main.tf"]
    assert (project / "infra" / "main.tf").read_text() == messy  # -check writes nothing

    done = client.post("/terraform/fmt", json={"dir": "infra"}).get_json()
    assert done["status"] == "ok" and done["files"] == ["infra/main.tf"], done
    assert (project / "infra" / "main.tf").read_text() == \
        'locals {\n  greeting = "hi"\n  name     = "x"\n}\n'
    again = client.post("/terraform/fmt", json={"dir": "infra", "check": True}).get_json()
    assert again["status"] == "ok" and again["files"] == [], again


RECORDER = """
import json, os, sys
args = sys.argv[1:]
seen = {{k: v for k, v in os.environ.items() if k.startswith("TF_")}}
with open({log!r}, "a") as handle:
    handle.write(json.dumps({{"argv": args, "env": seen}}) + "\\n")
if "plan" in args:
    sys.stderr.write("Error: Unsupported argument\\n")
    sys.exit({plan_exit})
sys.stdout.write({shown!r})
"""


def fake_terraform(fake_bin, plan_exit: int, shown: str = "{}") -> Path:
    log = fake_bin.dir / "terraform.log"
    fake_bin("terraform", python_script(RECORDER.format(log=str(log), plan_exit=plan_exit,
                                                        shown=shown)))
    return log


def test_workspace_and_variables_go_through_the_environment(project: Path, make_app, fake_bin,
                                                            tmp_path: Path) -> None:
    (project / "infra" / "prod.tfvars").write_text('region = "eu"\n')
    shown = json.dumps({"format_version": "1.2", "applyable": True, "resource_changes": [
        {"address": "aws_s3_bucket.logs", "change": {"actions": ["update"]}},
        {"address": "aws_instance.web", "change": {"actions": ["delete", "create"]}},
        {"address": "data.aws_ami.ubuntu", "change": {"actions": ["read"]}}]})
    log = fake_terraform(fake_bin, plan_exit=2, shown=shown)
    client = bearer_client(make_app(TOOL_ENV=isolated_path(tmp_path / "bin",
                                                           first=fake_bin.dir)))
    body = client.post("/terraform/plan", json={
        "dir": "infra", "workspace": "prod", "vars": {"instance_count": "3"},
        "var_files": ["infra/prod.tfvars"]}).get_json()
    assert body["status"] == "ok", body
    assert (body["add"], body["change"], body["destroy"]) == (1, 1, 1)
    assert [r["address"] for r in body["resources"]] == ["aws_s3_bucket.logs",
                                                         "aws_instance.web"]
    assert body["sha256"] is None  # the fake wrote no plan file: nothing claimed
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    seen = [call for call in seen if call["argv"] != ["--version"]]
    plan_file = str(project.resolve() / ".git" / "scp" / "plans" / f"{body['run_id']}.tfplan")
    assert [call["argv"] for call in seen] == [
        ["-chdir=infra", "plan", "-input=false", "-no-color", f"-out={plan_file}",
         "-detailed-exitcode", f"-var-file={project.resolve() / 'infra' / 'prod.tfvars'}"],
        ["-chdir=infra", "show", "-json", "-no-color", plan_file]]
    ours = {k: v for k, v in seen[0]["env"].items() if k != "TF_CLI_CONFIG_FILE"}
    assert ours == {"TF_WORKSPACE": "prod", "TF_VAR_instance_count": "3",
                    "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}


def test_a_failed_plan_is_not_shown(project: Path, make_app, fake_bin, tmp_path: Path) -> None:
    log = fake_terraform(fake_bin, plan_exit=1)
    client = bearer_client(make_app(TOOL_ENV=isolated_path(tmp_path / "bin",
                                                           first=fake_bin.dir)))
    body = client.post("/terraform/plan", json={"dir": "infra"}).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "exit_status", body
    assert "Unsupported argument" in body["error"]["message"]
    commands = [json.loads(line)["argv"][:2] for line in log.read_text().splitlines()]
    assert ["-chdir=infra", "show"] not in commands and ["-chdir=infra", "plan"] in commands


@pytest.mark.parametrize(("route", "body", "field"), [
    ("/terraform/plan", {"workspace": "--upload-pack=touch pwned"}, "workspace"),
    ("/terraform/workspace/select", {"workspace": "-rf"}, "workspace"),
    ("/terraform/apply", {"plan": "../../elsewhere.tfplan", "confirm": True}, "plan"),
    ("/terraform/plan", {"vars": {"-x": "1"}}, "vars.-x.[key]"),
])
def test_option_like_names_are_refused_and_nothing_runs(route: str, body: dict, field: str,
                                                        project: Path, make_app, fake_bin,
                                                        tmp_path: Path) -> None:
    log = fake_terraform(fake_bin, plan_exit=0)
    client = bearer_client(make_app(TOOL_ENV=isolated_path(tmp_path / "bin",
                                                           first=fake_bin.dir)))
    answer = client.post(route, json=body)
    assert answer.status_code == 422 and field in answer.get_json()["fields"], answer.get_json()
    assert not log.exists() and Ledger.open(project).recent() == []
