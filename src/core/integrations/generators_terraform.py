"""Terraform scaffolding: main.tf, variables.tf, outputs.tf, versions.tf for a provider, backend.

The files are already in ``terraform fmt`` style (a test runs the real
``terraform fmt -check`` on every provider); the ``none`` provider needs no
plugin, so ``terraform init`` and ``validate`` work offline.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from controlplane.core.actions import ActionContext, Example, ProjectPath, project_path, register
from controlplane.core.integrations._generated_files import GenerateParams
from controlplane.core.integrations._project_facts import project_facts
from controlplane.core.integrations.generators_common import (
    FLASK_EXAMPLE,
    deliver_all,
    generator,
    output_field,
    render_facts,
)

PROVIDERS: dict[str, dict[str, str | None]] = {
    "none": {"name": "none", "source": None, "version": None},
    "aws": {"name": "aws", "source": "hashicorp/aws", "version": "~> 5.0",
            "region": "eu-west-1"},
    "google": {"name": "google", "source": "hashicorp/google", "version": "~> 6.0",
               "region": "europe-west1"},
    "azurerm": {"name": "azurerm", "source": "hashicorp/azurerm", "version": "~> 4.0",
                "region": "westeurope"},
    "kubernetes": {"name": "kubernetes", "source": "hashicorp/kubernetes", "version": "~> 2.0"},
    "docker": {"name": "docker", "source": "kreuzwerker/docker", "version": "~> 3.0"},
}
FILES = ("versions.tf", "variables.tf", "main.tf", "outputs.tf")


class TerraformGenerateParams(GenerateParams):
    directory: ProjectPath = output_field("terraform", "directory for the .tf files")
    provider: Literal["none", "aws", "google", "azurerm", "kubernetes", "docker"] = Field(
        "none", description="cloud provider (none: a placeholder resource, no plugin needed)")
    backend: Literal["local", "s3", "gcs", "azurerm"] = Field(
        "local", description="where the state is kept (remote settings via -backend-config)")
    region: str | None = Field(None, pattern=r"^[a-z][a-z0-9-]{1,30}$",
                               description="region or location (default: the provider's usual)")


def outputs(root: Path, params: TerraformGenerateParams) -> list[str]:
    """The four files' paths, relative to the project root."""
    return [str(Path(params.directory) / name) for name in FILES]


def existing_files(root: Path, params: TerraformGenerateParams) -> list[str]:
    return [p for p in outputs(root, params) if project_path(root, p, "directory").exists()]


def scaffold(ctx: ActionContext, params: TerraformGenerateParams) -> dict[str, Any]:
    """main.tf, variables.tf, outputs.tf and versions.tf for a provider and a state backend, named
    after the project, in terraform fmt style.
    """
    facts = project_facts(ctx.project_root)
    directory = project_path(ctx.project_root, params.directory, "directory")
    provider = PROVIDERS[params.provider]
    context = os.path.relpath(ctx.project_root.resolve(), directory)
    values = {"provider": provider, "backend": params.backend, "context": context,
              "region": params.region or provider.get("region", "")}
    rendered = [render_facts(f"terraform_{name}.j2", facts, **values) for name in FILES]
    files = deliver_all(ctx.project_root, zip(outputs(ctx.project_root, params), rendered,
                                              strict=True), params)
    return {"ok": True, "provider": params.provider, "backend": params.backend,
            "project": facts.name, "directory": params.directory,
            "written": all(f["written"] for f in files), "files": files}


register(
    generator(path="/terraform/generate", subtype="generate:terraform",
              title="Generate scaffolding", params=TerraformGenerateParams, service=scaffold,
              lock_key="terraform:generate:{directory}", conflicts=existing_files,
              example=Example(params={"provider": "docker", "write": True}, files=FLASK_EXAMPLE,
                              expect={"provider": "docker", "backend": "local", "written": True,
                                      "project": "project", "directory": "terraform"},
                              invalid={"provider": "openstack"}, invalid_field="provider")),
)
