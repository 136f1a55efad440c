"""Kubernetes generators: Deployment, Service (ConfigMap, Ingress) from the project or a wizard."""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from controlplane.core.actions import ActionContext, Example, ProjectPath, register
from controlplane.core.integrations._cli_tools import DNSName, ImageRef
from controlplane.core.integrations._generated_files import GenerateParams, deliver
from controlplane.core.integrations._project_facts import EnvVar, project_facts
from controlplane.core.integrations._project_traits import project_kind
from controlplane.core.integrations.generators_common import (
    FLASK_EXAMPLE,
    EnvName,
    HostName,
    generator,
    output_field,
    render,
)

ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]


class ManifestParams(GenerateParams):
    output: ProjectPath = output_field("k8s/manifests.yaml", "manifest file to write")
    name: DNSName | None = Field(None, description="app name (default: the project's name)")
    image: ImageRef | None = Field(None, description="container image (default: <name>:latest)")
    namespace: DNSName | None = Field(None, description="namespace to put in the manifests")
    replicas: int = Field(1, ge=0, le=100, description="number of pods")


class WizardParams(GenerateParams):
    name: DNSName = Field(..., description="app name (Deployment, Service and labels)")
    image: ImageRef = Field(..., description="container image, e.g. ghcr.io/acme/app:1.0")
    port: int = Field(8080, ge=1, le=65535, description="port the container listens on")
    replicas: int = Field(1, ge=0, le=100, description="number of pods")
    env: list[EnvName] = Field(default_factory=list, max_length=100,
                               description="environment variable names the app reads "
                                           "(secret-looking ones come from a Secret)")
    ingress_host: HostName | None = Field(None, description="host name for an Ingress (optional)")
    service_type: ServiceType = Field("ClusterIP", description="Service type")
    namespace: DNSName | None = Field(None, description="namespace to put in the manifests")
    output: ProjectPath | None = Field(None, min_length=1, max_length=300,
                                       description="file to write (default k8s/<name>.yaml)")

    @model_validator(mode="after")
    def _default_output(self) -> WizardParams:
        if self.output is None:
            self.output = f"k8s/{self.name}.yaml"
        return self


def render_manifests(*, name: str, image: str, port: int, env: list[EnvVar], **extra: Any) -> str:
    """Multi-document YAML: ConfigMap (non-secret env), Deployment, Service, optional Ingress.

    A variable the code has a default for is left out (an empty value would override it).
    """
    values = {"namespace": None, "replicas": 1, "ingress_host": None,
              "service_type": "ClusterIP", "service_port": 80, "source": "controlplane",
              **extra}
    config = [{"name": v.name, "value": str(port) if v.name == "PORT" else ""}
              for v in env if not v.secret and (v.default is None or v.name == "PORT")]
    defaulted = [f"{v.name} ({v.default})" for v in env
                 if not v.secret and v.default is not None and v.name != "PORT"]
    secrets = [v.name for v in env if v.secret]
    return render("k8s.yaml.j2", name=name, image=image, port=port, config=config,
                  secrets=secrets, defaulted=defaulted, **values)


def described(content: str) -> dict[str, Any]:
    """The kinds and names in rendered manifests (parsing them also proves they load)."""
    documents = [d for d in yaml.safe_load_all(content) if d]
    return {"kinds": [d["kind"] for d in documents],
            "resources": [f"{d['kind']}/{d['metadata']['name']}" for d in documents]}


def generate_manifests(ctx: ActionContext, params: ManifestParams) -> dict[str, Any]:
    """A Deployment and a Service (and a ConfigMap of the variables the code reads) fitted to the
    project: its name, port and environment. Only for an application (a library or command-line
    tool serves nothing: refused, the wizard takes an image and a port).
    """
    facts = project_facts(ctx.project_root)
    kind = project_kind(facts)
    if kind.kind != "application":
        return {"ok": False, "language": facts.language, "project_kind": kind.kind,
                "error": {"code": "nothing_to_run", "message": (
                    f"{facts.name} is a {kind.kind} ({kind.why}): a Deployment needs a server "
                    "to run; use /k8s/generate/wizard with \"name\", \"image\" and \"port\"")}}
    name = params.name or facts.name
    image = params.image or f"{name}:latest"
    content = render_manifests(name=name, image=image, port=facts.port, env=list(facts.env_vars),
                               namespace=params.namespace, replicas=params.replicas,
                               source=f"{facts.language} project, {facts.framework or 'no'} "
                                      "framework")
    return {"ok": True, "name": name, "image": image, "port": facts.port,
            "language": facts.language, **described(content),
            **deliver(ctx.project_root, params.output, content, params, "output")}


def generate_wizard(ctx: ActionContext, params: WizardParams) -> dict[str, Any]:
    """Deployment, Service, ConfigMap/Secret references and an optional Ingress from the wizard's
    answers.
    """
    env = [EnvVar(name, ()) for name in dict.fromkeys(params.env)]
    content = render_manifests(name=params.name, image=params.image, port=params.port, env=env,
                               namespace=params.namespace, replicas=params.replicas,
                               ingress_host=params.ingress_host,
                               service_type=params.service_type, source="wizard")
    assert params.output is not None  # filled in by the model
    return {"ok": True, "name": params.name, "image": params.image, "port": params.port,
            **described(content),
            **deliver(ctx.project_root, params.output, content, params, "output")}


register(
    generator(path="/k8s/generate/manifests", subtype="generate:k8s_manifests",
              title="Generate K8s manifests", params=ManifestParams, service=generate_manifests,
              example=Example(params={"replicas": 2}, files=FLASK_EXAMPLE,
                              expect={"kinds": ["ConfigMap", "Deployment", "Service"],
                                      "port": 5000, "written": False,
                                      "path": "k8s/manifests.yaml"},
                              invalid={"output": "../outside.yaml"}, invalid_field="output")),
    generator(path="/k8s/generate/wizard", subtype="generate:k8s_wizard",
              title="Wizard-generated manifests", params=WizardParams, service=generate_wizard,
              example=Example(params={"name": "shop", "image": "ghcr.io/acme/shop:1.2",
                                      "port": 8000, "env": ["LOG_LEVEL", "API_TOKEN"],
                                      "ingress_host": "shop.example.com", "write": True},
                              expect={"kinds": ["ConfigMap", "Deployment", "Service", "Ingress"],
                                      "written": True, "path": "k8s/shop.yaml"},
                              invalid={"name": "--Shop"}, invalid_field="name")),
)
