"""Kubernetes actions: the exact kubectl/helm argv, their JSON parsed, an unreachable cluster.

kubectl runs for real where it can without a cluster (rendering an object with
``--dry-run=client``, and failing to reach a closed loopback port); helm is faked
unless installed, printing the release JSON helm's ``--output=json`` prints.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from controlplane.core.actions import load_integrations
from controlplane.core.ledger import Ledger
from tests.conftest import bearer_client, git, isolated_path, python_script

load_integrations()
KUBECTL = shutil.which("kubectl")
HELM = shutil.which("helm")
MANIFEST = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n"
CLOSED_CLUSTER = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: dev, context: {cluster: c, user: u}}]
current-context: dev
"""


def scripted(fake_bin, name: str, replies: dict[str, tuple[str, str, int]]) -> Path:
    """A fake *name*: logs its argv, answers by its first argument with (stdout, stderr, exit)."""
    log = fake_bin.dir / f"{name}.argv"
    fake_bin(name, python_script(f"""
        import json, sys
        args = sys.argv[1:]
        with open({str(log)!r}, "a") as handle:
            handle.write(json.dumps(args) + "\\n")
        out, err, code = {replies!r}.get(args[0], ("", "unexpected call", 99))
        sys.stdout.write(out)
        sys.stderr.write(err)
        sys.exit(code)
    """))
    return log


def calls(log: Path) -> list[list[str]]:
    """The argv of each call, but the version probe the runner makes to note it in the run."""
    seen = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return [argv for argv in seen if argv != ["--version"]]


def deployment_json() -> dict:
    """A Deployment as kubectl itself prints it (offline: ``create --dry-run=client``)."""
    if KUBECTL:
        done = subprocess.run([KUBECTL, "create", "deployment", "web", "--image=nginx:1.27",
                               "--dry-run=client", "-o", "json"], capture_output=True, text=True,
                              timeout=60, check=True)
        return json.loads(done.stdout)
    return {"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "web"}}


@pytest.fixture
def project(repo: Path) -> Path:
    (repo / "k8s").mkdir()
    (repo / "k8s" / "app.yaml").write_text(MANIFEST)
    (repo / "chart" / "templates").mkdir(parents=True)
    (repo / "chart" / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    (repo / "chart" / "values.yaml").write_text("replicas: 1\n")
    (repo / "chart" / "templates" / "all.yaml").write_text(
        MANIFEST + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}"
        "-config\ndata:\n  replicas: \"{{ .Values.replicas }}\"\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "manifests and chart")
    return repo


def test_apply_reports_the_resources_kubectl_applied(project: Path, make_app, fake_bin,
                                                     tmp_path: Path) -> None:
    service = {"kind": "Service", "apiVersion": "v1",
               "metadata": {"name": "web", "namespace": "shop"}}
    applied = {"apiVersion": "v1", "kind": "List", "metadata": {},
               "items": [service, deployment_json()]}
    log = scripted(fake_bin, "kubectl", {"apply": (json.dumps(applied, indent=4), "", 0)})
    client = bearer_client(make_app(TOOL_ENV=isolated_path(tmp_path / "bin",
                                                           first=fake_bin.dir)))
    body = client.post("/k8s/apply", json={"path": "k8s/app.yaml", "namespace": "shop",
                                           "context": "kind-dev", "dry_run": "client"}).get_json()
    assert body["status"] == "ok", body
    assert calls(log) == [["apply", "--filename=k8s/app.yaml", "--namespace=shop",
                           "--context=kind-dev", "--output=json", "--dry-run=client"]]
    assert body["applied"] == 2
    assert [(r["kind"], r["name"]) for r in body["resources"]] == [("Service", "web"),
                                                                    ("Deployment", "web")]
    target = Ledger.open(project).get(body["run_id"])["target"]
    assert target["tool"] == "kubectl" and target["kube_context"] == "kind-dev"
    assert target["namespace"] == "shop"


def test_one_applied_object_comes_back_alone_not_in_a_list(project: Path, make_app, fake_bin,
                                                           tmp_path: Path) -> None:
    scripted(fake_bin, "kubectl", {"apply": (json.dumps(deployment_json()), "", 0)})
    client = bearer_client(make_app(TOOL_ENV=isolated_path(tmp_path / "bin",
                                                           first=fake_bin.dir)))
    body = client.post("/k8s/apply", json={"path": "k8s", "kustomize": True}).get_json()
    assert body["status"] == "ok" and body["applied"] == 1, body
    assert body["argv"][2] == "--kustomize=k8s"


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_real_kubectl_without_a_reachable_cluster_is_tool_unavailable(
        project: Path, make_app, tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "kubectl").symlink_to(KUBECTL)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(CLOSED_CLUSTER)
    env = {**isolated_path(tmp_path / "bin", first=tools), "KUBECONFIG": str(kubeconfig)}
    client = bearer_client(make_app(TOOL_ENV=env))
    body = client.post("/k8s/apply", json={"path": "k8s/app.yaml",
                                           "dry_run": "client"}).get_json()
    assert body["status"] == "failed", body
    assert body["error"]["code"] == "tool_unavailable", body
    assert "127.0.0.1:1" in body["error"]["message"]  # kubectl's own words
    scaled = client.post("/k8s/scale", json={"name": "web", "replicas": 2}).get_json()
    assert scaled["error"]["code"] == "tool_unavailable", scaled


def test_other_kubectl_failures_keep_their_exit_status(project: Path, make_app, fake_bin,
                                                       tmp_path: Path) -> None:
    scripted(fake_bin, "kubectl", {"delete": (
        "", 'Error from server (NotFound): deployments.apps "web" not found\n', 1)})
    client = bearer_client(make_app(TOOL_ENV=isolated_path(tmp_path / "bin",
                                                           first=fake_bin.dir)))
    body = client.post("/k8s/delete", json={"kind": "deployment", "name": "web",
                                            "confirm": True}).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "exit_status", body
    assert "NotFound" in body["error"]["message"]


def test_delete_and_scale_pass_names_after_the_double_dash(project: Path, make_app, fake_bin,
                                                            tmp_path: Path) -> None:
    log = scripted(fake_bin, "kubectl", {"delete": ("cronjob.batch/nightly\n", "", 0),
                                         "scale": ("statefulset.apps/db scaled\n", "", 0)})
    client = bearer_client(make_app(TOOL_ENV=isolated_path(tmp_path / "bin",
                                                           first=fake_bin.dir)))
    deleted = client.post("/k8s/delete", json={
        "kind": "cronjobs.batch", "name": "nightly", "namespace": "ops", "wait": False,
        "ignore_not_found": True, "confirm": True}).get_json()
    scaled = client.post("/k8s/scale", json={"kind": "statefulset", "name": "db", "replicas": 0,
                                             "current_replicas": 3}).get_json()
    assert deleted["deleted"] == ["cronjob.batch/nightly"], deleted
    assert scaled["scaled"] == ["statefulset.apps/db"] and scaled["replicas"] == 0, scaled
    assert calls(log) == [
        ["delete", "--namespace=ops", "--output=name", "--ignore-not-found", "--wait=false",
         "--", "cronjobs.batch", "nightly"],
        ["scale", "--replicas=0", "--current-replicas=3", "--output=name", "--",
         "statefulset/db"]]


@pytest.mark.parametrize(("route", "body", "field"), [
    ("/k8s/apply", {"namespace": "--upload-pack=touch pwned"}, "namespace"),
    ("/k8s/delete", {"kind": "deployment", "name": "-rf", "confirm": True}, "name"),
    ("/k8s/helm/install", {"release": "--upload-pack=touch pwned", "chart": "chart"},
     "release"),
    ("/k8s/helm/template", {"release": "web", "chart": "--post-renderer=sh"}, "chart"),
    ("/k8s/helm/upgrade", {"release": "web", "chart": "chart", "set": ["--x=1"]}, "set.0"),
])
def test_option_like_names_are_refused_before_anything_runs(
        route: str, body: dict, field: str, project: Path, make_app, fake_bin,
        tmp_path: Path) -> None:
    logs = [scripted(fake_bin, tool, {}) for tool in ("kubectl", "helm")]
    client = bearer_client(make_app(TOOL_ENV=isolated_path(tmp_path / "bin",
                                                           first=fake_bin.dir)))
    answer = client.post(route, json=body)
    assert answer.status_code == 422, answer.get_json()
    assert field in answer.get_json()["fields"]
    assert [calls(log) for log in logs] == [[], []]
    assert Ledger.open(project).recent() == []


def test_delete_without_confirmation_is_428_and_runs_nothing(project: Path, make_app, fake_bin,
                                                             tmp_path: Path) -> None:
    log = scripted(fake_bin, "kubectl", {})
    client = bearer_client(make_app(TOOL_ENV=isolated_path(tmp_path / "bin",
                                                           first=fake_bin.dir)))
    answer = client.post("/k8s/delete", json={"kind": "deployment", "name": "web"})
    assert answer.status_code == 428 and calls(log) == []


def release_json(name: str, revision: int, manifest: str) -> str:
    """What ``helm install|upgrade --output=json`` prints: the release record."""
    return json.dumps({
        "name": name, "namespace": "shop", "version": revision, "config": {"replicas": 2},
        "info": {"first_deployed": "2026-11-24T10:00:00Z", "last_deployed": "2026-11-24T10:00:00Z",
                 "deleted": "", "description": "Install complete", "status": "deployed"},
        "chart": {"metadata": {"name": "web", "version": "0.1.0", "appVersion": "1.0"}},
        "manifest": manifest})


def test_helm_install_and_upgrade(project: Path, make_app, fake_bin, tmp_path: Path) -> None:
    manifest = "---\n# Source: web/templates/all.yaml\n" + MANIFEST
    log = scripted(fake_bin, "helm", {"install": (release_json("web", 1, manifest), "", 0),
                                      "upgrade": (release_json("web", 2, manifest), "", 0)})
    client = bearer_client(make_app(TOOL_ENV=isolated_path(tmp_path / "bin",
                                                           first=fake_bin.dir)))
    installed = client.post("/k8s/helm/install", json={
        "release": "web", "chart": "chart", "namespace": "shop", "context": "kind-dev",
        "values": ["chart/values.yaml"], "set": ["replicas=2"], "wait": True,
        "timeout_seconds": 120}).get_json()
    upgraded = client.post("/k8s/helm/upgrade", json={
        "release": "web", "chart": "bitnami/nginx", "version": "15.1.0", "namespace": "shop",
        "install": True, "atomic": True}).get_json()
    assert installed["status"] == "ok", installed
    assert installed["revision"] == 1 and installed["release_status"] == "deployed"
    assert installed["chart"] == "web-0.1.0"
    assert installed["resources"] == [{"kind": "Service", "name": "web", "namespace": None}]
    assert upgraded["revision"] == 2, upgraded
    assert calls(log) == [
        ["install", "--namespace=shop", "--kube-context=kind-dev", "--values=chart/values.yaml",
         "--set=replicas=2", "--wait", "--timeout=120s", "--output=json", "--", "web", "chart"],
        ["upgrade", "--namespace=shop", "--version=15.1.0", "--install", "--atomic",
         "--timeout=300s", "--output=json", "--", "web", "bitnami/nginx"]]


def test_helm_with_an_unreachable_cluster_is_tool_unavailable(project: Path, make_app,
                                                              fake_bin, tmp_path: Path) -> None:
    said = ('Error: INSTALLATION FAILED: Kubernetes cluster unreachable: Get '
            '"https://127.0.0.1:1/version": dial tcp 127.0.0.1:1: connect: connection refused\n')
    scripted(fake_bin, "helm", {"install": ("", said, 1)})
    client = bearer_client(make_app(TOOL_ENV=isolated_path(tmp_path / "bin",
                                                           first=fake_bin.dir)))
    body = client.post("/k8s/helm/install", json={"release": "web", "chart": "chart"}).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "tool_unavailable", body
    assert "Kubernetes cluster unreachable" in body["error"]["message"]


def test_helm_template_lists_the_rendered_resources(project: Path, make_app, fake_bin,
                                                    tmp_path: Path) -> None:
    rendered = ("---\n# Source: web/templates/all.yaml\n" + MANIFEST +
                "---\n# Source: web/templates/all.yaml\napiVersion: v1\nkind: ConfigMap\n"
                "metadata:\n  name: web-config\ndata:\n  replicas: \"1\"\n")
    log = scripted(fake_bin, "helm", {"template": (rendered, "", 0)})
    client = bearer_client(make_app(TOOL_ENV=isolated_path(tmp_path / "bin",
                                                           first=fake_bin.dir)))
    body = client.post("/k8s/helm/template", json={"release": "web", "chart": "./chart/",
                                                   "namespace": "shop"}).get_json()
    assert body["status"] == "ok", body
    assert calls(log) == [["template", "--namespace=shop", "--", "web", "chart"]]
    assert [(r["kind"], r["name"]) for r in body["resources"]] == [("Service", "web"),
                                                                    ("ConfigMap", "web-config")]


@pytest.mark.parametrize("printed", ["kind: [unclosed\n", "a\x0eb\n"],
                         ids=["broken-yaml", "control-character"])
def test_helm_template_output_that_is_not_yaml_fails_the_run_clearly(
        project: Path, make_app, fake_bin, tmp_path: Path, printed: str) -> None:
    scripted(fake_bin, "helm", {"template": (printed, "", 0)})
    client = bearer_client(make_app(TOOL_ENV=isolated_path(tmp_path / "bin",
                                                           first=fake_bin.dir)))
    body = client.post("/k8s/helm/template", json={"release": "web", "chart": "./chart/"}
                       ).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "unparseable_output", body


@pytest.mark.skipif(HELM is None, reason="helm is not installed")
def test_real_helm_template_of_a_local_chart(project: Path, make_app, tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "helm").symlink_to(HELM)
    env = {**isolated_path(tmp_path / "bin", first=tools), "HELM_CACHE_HOME": str(tmp_path / "c"),
           "HELM_CONFIG_HOME": str(tmp_path / "cfg"), "HELM_DATA_HOME": str(tmp_path / "d")}
    client = bearer_client(make_app(TOOL_ENV=env))
    body = client.post("/k8s/helm/template", json={"release": "shop", "chart": "chart",
                                                   "set": ["replicas=3"]}).get_json()
    assert body["status"] == "ok", body
    assert {(r["kind"], r["name"]) for r in body["resources"]} == {("Service", "web"),
                                                                   ("ConfigMap", "shop-config")}
    assert 'replicas: "3"' in body["manifest"]
