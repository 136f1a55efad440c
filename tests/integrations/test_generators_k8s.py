"""Kubernetes generators: manifests fitted to each project, a wizard, preview and write."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from controlplane.core.ledger import Ledger
from tests.integrations import fixtures_projects
from tests.integrations.fixtures_projects import Project

# the fixtures, by the names tests ask for
flask_project, node_project, projects = fixtures_projects.FIXTURES

MANIFESTS = "/k8s/generate/manifests"
WIZARD = "/k8s/generate/wizard"


def documents(text: str) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all(text) if d}


def container(docs: dict[str, dict]) -> dict:
    return docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def test_each_project_gets_its_own_port_name_and_environment(projects) -> None:
    flask = projects["flask"].ok(MANIFESTS)
    node = projects["node"].ok(MANIFESTS)
    flask_docs, node_docs = documents(flask["content"]), documents(node["content"])

    assert (flask["port"], node["port"]) == (5000, 3000)
    assert container(flask_docs)["ports"][0]["containerPort"] == 5000
    assert container(node_docs)["ports"][0]["containerPort"] == 3000
    assert flask_docs["Service"]["metadata"]["name"] == "project"
    assert node_docs["Service"]["metadata"]["name"] == "orders-service"
    assert container(node_docs)["image"] == "orders-service:latest"
    # REDIS_URL is plain configuration; SECRET_KEY and a database URL come from a Secret
    assert flask_docs["ConfigMap"]["data"] == {"REDIS_URL": ""}
    assert [e["name"] for e in container(flask_docs)["env"]] == ["SECRET_KEY"]
    assert "ConfigMap" not in node_docs
    assert container(node_docs)["env"][0]["valueFrom"]["secretKeyRef"] == {
        "name": "orders-service-secrets", "key": "DATABASE_URL", "optional": True}
    assert flask["kinds"] == ["ConfigMap", "Deployment", "Service"]
    assert node["kinds"] == ["Deployment", "Service"]
    service = node_docs["Service"]["spec"]
    assert service["ports"][0]["targetPort"] == "http"
    assert service["selector"] == node_docs["Deployment"]["spec"]["selector"]["matchLabels"]


def test_preview_writes_nothing_and_write_refuses_to_overwrite(flask_project: Project) -> None:
    root = flask_project.root
    preview = flask_project.ok(MANIFESTS, namespace="shop", replicas=3)
    assert preview["written"] is False and not (root / "k8s").exists()
    assert documents(preview["content"])["Deployment"]["spec"]["replicas"] == 3

    written = flask_project.ok(MANIFESTS, namespace="shop", replicas=3, write=True)
    target = root / "k8s" / "manifests.yaml"
    assert written["written"] is True and target.read_text() == preview["content"]
    assert documents(target.read_text())["Service"]["metadata"]["namespace"] == "shop"

    runs = len(Ledger.open(root).recent())
    refused = flask_project.post(MANIFESTS, status=409, write=True, replicas=1)
    assert refused["error"] == "conflict" and "overwrite" in refused["message"]
    assert len(Ledger.open(root).recent()) == runs  # a refusal records no run
    assert documents(target.read_text())["Deployment"]["spec"]["replicas"] == 3

    flask_project.ok(MANIFESTS, write=True, overwrite=True, replicas=1)
    assert documents(target.read_text())["Deployment"]["spec"]["replicas"] == 1


def test_paths_outside_the_project_are_refused(flask_project: Project, tmp_path: Path) -> None:
    for output in ("../evil.yaml", str(tmp_path / "evil.yaml")):
        body = flask_project.post(MANIFESTS, status=422, output=output, write=True)
        assert "output" in body["fields"]
    assert not (tmp_path / "evil.yaml").exists()
    assert flask_project.post(MANIFESTS, status=422, name="--all")["fields"].keys() == {"name"}


def test_the_wizard_builds_what_it_is_told(flask_project: Project) -> None:
    body = flask_project.ok(WIZARD, name="shop", image="ghcr.io/acme/shop:1.2", port=8000,
                            replicas=2, env=["LOG_LEVEL", "API_TOKEN"], namespace="prod",
                            ingress_host="shop.example.com", service_type="NodePort",
                            write=True)
    assert body["path"] == "k8s/shop.yaml" and body["written"] is True
    docs = documents((flask_project.root / "k8s" / "shop.yaml").read_text())
    assert list(docs) == ["ConfigMap", "Deployment", "Service", "Ingress"]
    assert container(docs)["image"] == "ghcr.io/acme/shop:1.2"
    assert container(docs)["ports"][0]["containerPort"] == 8000
    assert docs["ConfigMap"]["data"] == {"LOG_LEVEL": ""}
    assert [e["name"] for e in container(docs)["env"]] == ["API_TOKEN"]
    assert docs["Service"]["spec"]["type"] == "NodePort"
    assert docs["Ingress"]["spec"]["rules"][0]["host"] == "shop.example.com"
    assert {d["metadata"]["namespace"] for d in docs.values()} == {"prod"}
    bad = flask_project.post(WIZARD, status=422, name="shop", image="x:1",
                             env=["NOT-A-NAME"], ingress_host="-bad-.example.com")
    assert {"env.0", "ingress_host"} <= set(bad["fields"])


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_reads_the_manifests(projects) -> None:
    """The real kubectl, offline: kustomize parses every resource and keeps them all."""
    for project in projects.values():
        project.ok(MANIFESTS, write=True)
        (project.root / "k8s" / "kustomization.yaml").write_text("resources:\n- manifests.yaml\n")
        done = subprocess.run(["kubectl", "kustomize", str(project.root / "k8s")],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        kinds = sorted(d["kind"] for d in yaml.safe_load_all(done.stdout) if d)
        expected = ["Deployment", "Service"] + (["ConfigMap"] if project is projects["flask"]
                                                else [])
        assert kinds == sorted(expected)
