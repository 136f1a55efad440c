"""Kubernetes: kubectl apply, delete and scale, helm install, upgrade and template.

Every command is built as an argv with options glued to their values and names
after ``--``; kubectl answers ``-o json`` / ``-o name`` and helm ``--output=json``
(the release) or YAML (``helm template``), which are parsed into the kinds and
names of the resources touched. An unreachable cluster is ``tool_unavailable``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field

from controlplane.core.actions import Action, ActionContext, Example, ProjectPath, register
from controlplane.core.integrations._cli_tools import (
    DNSName,
    flag_values,
    json_documents,
    option,
    project_operand,
    run_cli,
    switches,
    tail,
)

KubeContext = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,252}$",
                                   description="kubeconfig context (default: the current one)")]
KubeKind = Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{0,62}(\.[a-z0-9][a-z0-9-]{0,62})*$",
                                description="resource type, e.g. deployment or cronjobs.batch")]
KubeName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
                                description="resource name (a DNS-1123 subdomain)")]
ChartRef = Annotated[ProjectPath, Field(
    pattern=r"^((oci|https)://)?[A-Za-z0-9._][A-Za-z0-9._/:@-]{0,299}$",
    description="a chart directory in the project, repo/chart, or an oci:// reference")]
SetValue = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.\[\]-]{0,199}=[^\n\x00]{0,2000}$",
                                description="key=value")]


class Target(BaseModel):
    namespace: DNSName | None = Field(None, description="namespace (default: the context's)")
    context: KubeContext | None = Field(None, description="kubeconfig context "
                                                          "(default: the current one)")


def target_flags(params: Target, context_flag: str = "--context") -> list[str]:
    return option("--namespace", params.namespace) + option(context_flag, params.context)


def cluster(params: Target) -> dict[str, str | None]:
    return {"kube_context": params.context, "namespace": params.namespace}


def described(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {"kind": obj.get("kind"), "name": meta.get("name"), "namespace": meta.get("namespace")}


def named_objects(lines: str) -> list[str]:
    """``kind.group/name`` from ``-o name`` output (``deployment.apps/web scaled``)."""
    return [line.split()[0] for line in lines.splitlines() if "/" in line.split(" ")[0]]


# --- kubectl --------------------------------------------------------------------------------

class ApplyParams(Target):
    path: ProjectPath = Field("k8s", min_length=1, max_length=300,
                              description="manifest file or directory inside the project")
    kustomize: bool = Field(False, description="the path is a kustomization directory (-k)")
    recursive: bool = Field(False, description="also apply manifests in subdirectories")
    dry_run: Literal["none", "client", "server"] = Field("none", description="dry-run mode")


def parse_applied(stdout: str) -> dict[str, Any]:
    """``kubectl apply -o json``: one object, or a ``List`` when several were applied."""
    documents = json_documents(stdout)
    objects: list[dict[str, Any]] = []
    for document in documents:
        objects += document["items"] if document.get("kind") == "List" else [document]
    resources = [described(obj) for obj in objects]
    return {"applied": len(resources), "resources": resources}


def apply(ctx: ActionContext, params: ApplyParams) -> dict[str, Any]:
    """``kubectl apply`` of the project's manifests; the applied kinds and names."""
    source = project_operand(ctx.project_root, params.path)
    argv = ["kubectl", "apply", f"--kustomize={source}" if params.kustomize
            else f"--filename={source}"]
    argv += ["--recursive"] if params.recursive and not params.kustomize else []
    argv += [*target_flags(params), "--output=json"]
    argv += option("--dry-run", None if params.dry_run == "none" else params.dry_run)
    return {**run_cli(ctx, argv, parse=parse_applied, **cluster(params)),
            "dry_run": params.dry_run}


class DeleteParams(Target):
    kind: KubeKind
    name: KubeName
    ignore_not_found: bool = Field(False, description="succeed when it does not exist")
    wait: bool = Field(True, description="wait until the resource is gone")


def delete(ctx: ActionContext, params: DeleteParams) -> dict[str, Any]:
    """``kubectl delete <kind> <name>``; the deleted objects."""
    argv = ["kubectl", "delete", *target_flags(params), "--output=name",
            *switches(params, ignore_not_found="--ignore-not-found")]
    argv += [] if params.wait else ["--wait=false"]
    return run_cli(ctx, [*argv, "--", params.kind, params.name],
                   parse=lambda out: {"deleted": named_objects(out)}, **cluster(params))


class ScaleParams(Target):
    kind: Literal["deployment", "statefulset", "replicaset"] = Field(
        "deployment", description="workload kind")
    name: KubeName
    replicas: int = Field(..., ge=0, le=10_000, description="desired number of pods")
    current_replicas: int | None = Field(None, ge=0, le=10_000,
                                         description="only scale if it has this many now")


def scale(ctx: ActionContext, params: ScaleParams) -> dict[str, Any]:
    """``kubectl scale --replicas=N``; the scaled objects."""
    argv = ["kubectl", "scale", f"--replicas={params.replicas}", *target_flags(params),
            *option("--current-replicas", params.current_replicas), "--output=name", "--",
            f"{params.kind}/{params.name}"]
    return {**run_cli(ctx, argv, parse=lambda out: {"scaled": named_objects(out)},
                      **cluster(params)), "replicas": params.replicas}


# --- helm -----------------------------------------------------------------------------------

class ChartParams(Target):
    release: DNSName = Field(..., max_length=53, description="release name")
    chart: ChartRef
    version: str | None = Field(None, pattern=r"^v?[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$",
                                description="chart version (default: the latest)")
    values: list[ProjectPath] = Field(default_factory=list, max_length=20,
                                      description="values files inside the project")
    set: list[SetValue] = Field(default_factory=list, max_length=100,
                                description="values given as key=value (--set)")

    def command_flags(self) -> list[str]:
        """What this command adds to the shared options (``helm template``: nothing)."""
        return []


class InstallParams(ChartParams):
    create_namespace: bool = Field(False, description="create the namespace if missing")
    wait: bool = Field(False, description="wait until the release's resources are ready")
    timeout_seconds: int = Field(300, ge=1, le=3600, description="how long helm may wait")

    def command_flags(self) -> list[str]:
        flags = switches(self, create_namespace="--create-namespace", wait="--wait")
        return [*flags, f"--timeout={self.timeout_seconds}s", "--output=json"]


class UpgradeParams(InstallParams):
    install: bool = Field(False, description="install the release if it does not exist")
    atomic: bool = Field(False, description="roll back when the upgrade fails")

    def command_flags(self) -> list[str]:
        return switches(self, install="--install", atomic="--atomic") + super().command_flags()


def chart_argv(ctx: ActionContext, command: str, params: ChartParams) -> list[str]:
    """``helm <command> [options] -- <release> <chart>``; a local chart as a project path."""
    argv = ["helm", command, *target_flags(params, "--kube-context")]
    argv += option("--version", params.version)
    files = [project_operand(ctx.project_root, v, "values") for v in params.values]
    argv += flag_values("--values", files) + flag_values("--set", params.set)
    local = "://" not in params.chart and (ctx.project_root / params.chart).exists()
    chart = project_operand(ctx.project_root, params.chart, "chart") if local else params.chart
    return [*argv, *params.command_flags(), "--", params.release, chart]


def manifest_resources(manifest: str) -> list[dict[str, Any]]:
    """The kinds and names in a multi-document YAML manifest."""
    return [described(doc) for doc in yaml.safe_load_all(manifest) if isinstance(doc, dict)]


def parse_release(stdout: str) -> dict[str, Any]:
    """``helm install|upgrade --output=json``: the release as helm stored it."""
    release = json.loads(stdout)
    chart = (release.get("chart") or {}).get("metadata") or {}
    return {"release": release["name"], "namespace": release.get("namespace"),
            "revision": release.get("version"), "release_status": release["info"]["status"],
            "chart": f"{chart.get('name')}-{chart.get('version')}" if chart else None,
            "app_version": chart.get("appVersion"),
            "resources": manifest_resources(release.get("manifest") or "")}


def helm_install(ctx: ActionContext, params: InstallParams) -> dict[str, Any]:
    """``helm install``; the release's status, revision and resources."""
    return run_cli(ctx, chart_argv(ctx, "install", params), parse=parse_release,
                   release=params.release, **cluster(params))


def helm_upgrade(ctx: ActionContext, params: UpgradeParams) -> dict[str, Any]:
    """``helm upgrade`` (``--install`` optional); the new revision."""
    return run_cli(ctx, chart_argv(ctx, "upgrade", params), parse=parse_release,
                   release=params.release, **cluster(params))


def helm_template(ctx: ActionContext, params: ChartParams) -> dict[str, Any]:
    """``helm template``: the manifests rendered locally, applied nowhere."""
    def parse(stdout: str) -> dict[str, Any]:
        resources = manifest_resources(stdout)
        return {"rendered": len(resources), "resources": resources, "manifest": tail(stdout)}

    return run_cli(ctx, chart_argv(ctx, "template", params), parse=parse,
                   release=params.release, **cluster(params))


# --- declarations ---------------------------------------------------------------------------

def _object(kind: str, name: str, namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": namespace}}


APPLIED = json.dumps({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": [
    _object("Service", "web"), {**_object("Deployment", "web"), "apiVersion": "apps/v1"}]})
MANIFEST = ("---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n---\n"
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n")
RELEASE = json.dumps({"name": "web", "namespace": "shop", "version": 2, "manifest": MANIFEST,
                      "info": {"status": "deployed", "description": "Upgrade complete"},
                      "chart": {"metadata": {"name": "web", "version": "0.1.0",
                                             "appVersion": "1.0"}}, "config": {}})
CHART = {"chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
         "chart/templates/all.yaml": MANIFEST, "chart/values.yaml": "replicas: 1\n"}
LOCK = "k8s:{context}:{namespace}"
HELM_LOCK = "helm:{namespace}:{release}"

register(
    Action(path="/k8s/apply", subtype="deploy:k8s", title="Apply manifests", params=ApplyParams,
           service=apply, lock_key=LOCK,
           description="kubectl apply -f of a manifest file or directory (-o json parsed).",
           example=Example(
               params={"path": "k8s", "namespace": "shop", "dry_run": "server"}, tool="kubectl",
               files={"k8s/app.yaml": MANIFEST}, tool_output=APPLIED,
               argv=("apply", "--filename=k8s", "--namespace=shop", "--output=json",
                     "--dry-run=server"),
               expect={"applied": 2, "dry_run": "server"},
               invalid={"namespace": "--upload-pack=touch pwned"}, invalid_field="namespace")),
    Action(path="/k8s/delete", subtype="destroy:k8s", title="Delete resource",
           params=DeleteParams, service=delete, lock_key=LOCK, destructive=True,
           description="kubectl delete of one named resource.",
           example=Example(params={"kind": "deployment", "name": "web", "context": "kind-dev"},
                           tool="kubectl", tool_output="deployment.apps/web\n",
                           argv=("delete", "--context=kind-dev", "--output=name", "--",
                                 "deployment", "web"),
                           expect={"deleted": ["deployment.apps/web"]},
                           invalid={"name": "-rf"}, invalid_field="name")),
    Action(path="/k8s/scale", subtype="deploy:k8s_scale", title="Scale deployment",
           params=ScaleParams, service=scale, lock_key=LOCK,
           description="kubectl scale of a deployment, statefulset or replicaset.",
           example=Example(params={"name": "web", "replicas": 3, "namespace": "shop"},
                           tool="kubectl", tool_output="deployment.apps/web scaled\n",
                           argv=("scale", "--replicas=3", "--namespace=shop", "--output=name",
                                 "--", "deployment/web"),
                           expect={"scaled": ["deployment.apps/web"], "replicas": 3},
                           invalid={"replicas": -1}, invalid_field="replicas")),
    Action(path="/k8s/helm/install", subtype="install:helm", title="Helm chart install",
           writes=True,
           params=InstallParams, service=helm_install, lock_key=HELM_LOCK,
           description="helm install of a local or repository chart (--output=json parsed).",
           example=Example(params={"release": "web", "chart": "chart", "namespace": "shop",
                                   "set": ["replicas=2"], "create_namespace": True},
                           tool="helm", files=CHART, tool_output=RELEASE,
                           argv=("install", "--namespace=shop", "--set=replicas=2",
                                 "--create-namespace", "--timeout=300s", "--output=json", "--",
                                 "web", "chart"),
                           expect={"release_status": "deployed", "chart": "web-0.1.0"},
                           invalid={"release": "--upload-pack=touch pwned"},
                           invalid_field="release")),
    Action(path="/k8s/helm/upgrade", subtype="deploy:helm_upgrade", title="Helm release upgrade",
           writes=True,
           params=UpgradeParams, service=helm_upgrade, lock_key=HELM_LOCK,
           description="helm upgrade of a release (--install, --atomic optional).",
           example=Example(params={"release": "web", "chart": "chart", "install": True,
                                   "values": ["chart/values.yaml"]},
                           tool="helm", files=CHART, tool_output=RELEASE,
                           argv=("upgrade", "--values=chart/values.yaml", "--install",
                                 "--timeout=300s", "--output=json", "--", "web", "chart"),
                           expect={"revision": 2, "release_status": "deployed"},
                           invalid={"values": ["../outside.yaml"]}, invalid_field="values.0")),
    Action(path="/k8s/helm/template", writes=True, subtype="plan:helm_template",
           title="Helm template render (dry-run)", params=ChartParams, service=helm_template,
           lock_key=HELM_LOCK, description="helm template: the chart rendered, applied nowhere.",
           example=Example(params={"release": "web", "chart": "chart"}, tool="helm",
                           files=CHART, tool_output=MANIFEST,
                           argv=("template", "--", "web", "chart"),
                           expect={"rendered": 2},
                           invalid={"chart": "/etc"}, invalid_field="chart")),
)
