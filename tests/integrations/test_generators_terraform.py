"""Terraform scaffolding: four files per provider and backend, checked by the real terraform."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integrations import fixtures_projects
from tests.integrations.fixtures_projects import Project

# the fixtures, by the names tests ask for
flask_project, node_project, projects = fixtures_projects.FIXTURES

GENERATE = "/terraform/generate"
PROVIDERS = ("none", "aws", "google", "azurerm", "kubernetes", "docker")
BACKENDS = ("local", "s3", "gcs", "azurerm")
needs_terraform = pytest.mark.skipif(shutil.which("terraform") is None,
                                     reason="terraform is not installed")


def terraform(directory: Path, *args: str) -> subprocess.CompletedProcess:
    """The real terraform, offline: no plugin cache, no checkpoint calls."""
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1",
           "TF_CLI_CONFIG_FILE": os.devnull}
    return subprocess.run(["terraform", *args], cwd=directory, capture_output=True, text=True,
                          timeout=120, check=False, env=env)


def test_the_scaffolding_is_named_after_each_project(projects) -> None:
    flask = projects["flask"].ok(GENERATE, provider="docker")
    node = projects["node"].ok(GENERATE, provider="docker")
    assert [f["path"] for f in flask["files"]] == [
        "terraform/versions.tf", "terraform/variables.tf", "terraform/main.tf",
        "terraform/outputs.tf"]
    flask_vars, node_vars = flask["files"][1]["content"], node["files"][1]["content"]
    assert 'default     = "project"' in flask_vars and "default     = 5000" in flask_vars
    assert 'default     = "orders-service"' in node_vars and "default     = 3000" in node_vars
    assert all(not f["written"] for f in flask["files"])
    assert not (projects["flask"].root / "terraform").exists()


@needs_terraform
@pytest.mark.parametrize("provider,backend", list(itertools.product(PROVIDERS, BACKENDS)))
def test_terraform_fmt_check_passes(flask_project: Project, provider: str, backend: str) -> None:
    body = flask_project.ok(GENERATE, provider=provider, backend=backend, write=True,
                            directory=f"infra/{provider}")
    directory = flask_project.root / "infra" / provider
    assert body["written"] is True and len(list(directory.glob("*.tf"))) == 4
    done = terraform(directory, "fmt", "-check", "-diff")
    assert done.returncode == 0, done.stdout + done.stderr
    versions = (directory / "versions.tf").read_text()
    assert f'backend "{backend}"' in versions
    assert ('source  = "' in versions) == (provider != "none")


@needs_terraform
def test_init_and_validate_work_offline_without_a_provider(node_project: Project) -> None:
    node_project.ok(GENERATE, write=True)
    directory = node_project.root / "terraform"
    init = terraform(directory, "init", "-input=false", "-no-color")
    assert init.returncode == 0, init.stdout + init.stderr
    valid = terraform(directory, "validate", "-json", "-no-color")
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert '"valid": true' in valid.stdout


def test_a_second_write_needs_overwrite(flask_project: Project) -> None:
    flask_project.ok(GENERATE, provider="aws", region="us-east-1", write=True)
    main = flask_project.root / "terraform" / "main.tf"
    assert 'resource "aws_ecr_repository" "app"' in main.read_text()
    refused = flask_project.post(GENERATE, status=409, provider="google", write=True)
    assert "terraform/main.tf" in refused["paths"]
    assert "aws_ecr_repository" in main.read_text()
    body = flask_project.ok(GENERATE, provider="google", write=True, overwrite=True)
    assert body["written"] and "google_artifact_registry_repository" in main.read_text()


def test_bad_input_is_refused(flask_project: Project) -> None:
    assert "directory" in flask_project.post(GENERATE, status=422, directory="../x")["fields"]
    assert "provider" in flask_project.post(GENERATE, status=422, provider="vsphere")["fields"]
    assert "region" in flask_project.post(GENERATE, status=422, region="-eu")["fields"]
