"""Docker generators: Dockerfile, .dockerignore and compose fitted to each project."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from controlplane.core.integrations._project_facts import node_lts_within
from tests.conftest import bearer_client
from tests.integrations import fixtures_projects
from tests.integrations.fixtures_projects import Project, write_project

# the fixtures, by the names tests ask for
flask_project, node_project, projects = fixtures_projects.FIXTURES

DOCKERFILE = "/docker/generate/dockerfile"
COMPOSE = "/docker/generate/compose"


def instructions(dockerfile: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in dockerfile.splitlines():
        if line and not line.startswith((" ", "#")):
            word, _, rest = line.partition(" ")
            found.setdefault(word, []).append(rest)
    return found


def test_dockerfiles_fit_each_language(projects) -> None:
    flask = projects["flask"].ok(DOCKERFILE)
    node = projects["node"].ok(DOCKERFILE)
    py, js = instructions(flask["content"]), instructions(node["content"])
    assert py["FROM"] == ["python:3.11-slim"]  # from .python-version
    node_image = f"node:{node_lts_within('>=18')}-alpine"  # the newest LTS engines allow
    assert js["FROM"] == [node_image]
    assert (py["EXPOSE"], js["EXPOSE"]) == (["5000"], ["3000"])
    assert py["CMD"] == ['["python", "app.py"]'] and js["CMD"] == ['["npm", "start"]']
    assert "pip install -r requirements.txt" in py["RUN"]
    assert any("npm install" in run for run in js["RUN"]) and "pip" not in node["content"]
    assert (flask["base_image"], node["base_image"]) == ("python:3.11-slim", node_image)


def test_a_base_image_can_be_chosen_and_bad_ones_refused(flask_project: Project) -> None:
    body = flask_project.ok(DOCKERFILE, base_image="python:3.12-bookworm")
    assert instructions(body["content"])["FROM"] == ["python:3.12-bookworm"]
    refused = flask_project.post(DOCKERFILE, status=422, base_image="--privileged")
    assert "base_image" in refused["fields"]


def test_a_project_of_unknown_language_gets_a_clear_failure(repo: Path, make_app) -> None:
    body = bearer_client(make_app()).post(DOCKERFILE, json={}).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "unsupported_project"


def test_compose_runs_the_services_each_project_uses(projects) -> None:
    flask = yaml.safe_load(projects["flask"].ok(COMPOSE)["content"])
    node = yaml.safe_load(projects["node"].ok(COMPOSE)["content"])
    assert list(flask["services"]) == ["project", "redis"]
    assert list(node["services"]) == ["orders-service", "postgres"]
    app, api = flask["services"]["project"], node["services"]["orders-service"]
    assert (app["ports"], api["ports"]) == (["5000:5000"], ["3000:3000"])
    assert app["environment"] == ["REDIS_URL=redis://redis:6379/0"]
    assert api["environment"] == ["DATABASE_URL=postgresql://postgres@postgres:5432/app"]
    assert app["depends_on"] == ["redis"] and api["depends_on"] == ["postgres"]
    # SECRET_KEY is read by the Flask app but set by nobody: it comes from an optional .env
    assert app["env_file"] == [{"path": ".env", "required": False}] and "env_file" not in api
    assert node["volumes"] == {"postgres-data": None} and "volumes" not in flask


def test_the_dockerignore_keeps_secrets_and_the_ledger_out(projects) -> None:
    for name, project in projects.items():
        body = project.ok("/docker/generate/dockerignore", write=True)
        lines = (project.root / ".dockerignore").read_text().splitlines()
        assert {".env", ".git", ".scp-ledger/"} <= set(lines)
        assert ("node_modules/" in lines) == (name == "node")
        assert ("__pycache__/" in lines) == (name == "flask")
        assert body["language"] == {"flask": "python", "node": "node"}[name]


def test_the_compose_wizard(flask_project: Project) -> None:
    body = flask_project.ok("/docker/generate/compose-wizard", name="shop", port=8000,
                            image="ghcr.io/acme/shop:2", services=["postgres", "redis"],
                            env=["SECRET_KEY", "DATABASE_URL"], output="deploy/compose.yaml",
                            write=True)
    assert body["services"] == ["shop", "postgres", "redis"]
    doc = yaml.safe_load((flask_project.root / "deploy" / "compose.yaml").read_text())
    shop = doc["services"]["shop"]
    assert shop["image"] == "ghcr.io/acme/shop:2" and "build" not in shop
    assert shop["environment"] == ["DATABASE_URL=postgresql://postgres@postgres:5432/app",
                                   "REDIS_URL=redis://redis:6379/0", "SECRET_KEY"]


def test_write_generates_and_writes_each_kind(projects) -> None:
    node = projects["node"]
    for kind, file in (("dockerfile", "Dockerfile"), ("dockerignore", ".dockerignore"),
                       ("compose", "compose.yaml")):
        body = node.ok("/docker/generate/write", kind=kind)
        assert (body["kind"], body["path"], body["written"]) == (kind, file, True)
        assert (node.root / file).read_text() == body["content"]
    refused = node.post("/docker/generate/write", status=409, kind="dockerfile")
    assert refused["paths"] == ["Dockerfile"]
    again = node.ok("/docker/generate/write", kind="compose", overwrite=True,
                    output="ops/compose.yaml")
    assert again["path"] == "ops/compose.yaml" and (node.root / "ops" / "compose.yaml").exists()
    assert node.post("/docker/generate/write", status=422, kind="compose",
                     output="../../compose.yaml")["fields"].keys() == {"output"}


def docker_compose_works() -> bool:
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30,
                          check=False)
    return done.returncode == 0


@pytest.mark.skipif(not docker_compose_works(),
                    reason="the docker compose plugin is not installed (docker compose config "
                           "needs no engine, but needs the plugin)")
def test_docker_compose_config_accepts_the_files(projects) -> None:
    for project in projects.values():
        project.ok(COMPOSE, write=True)
        done = subprocess.run(["docker", "compose", "-f", "compose.yaml", "config", "--quiet"],
                              cwd=project.root, capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stderr


def test_every_backing_service_gives_a_loadable_compose_file(flask_project: Project) -> None:
    every = ["redis", "postgres", "mysql", "mongodb", "rabbitmq"]
    body = flask_project.ok("/docker/generate/compose-wizard", name="all", services=every,
                            env=["MONGO_URI", "CELERY_BROKER_URL"], write=True)
    assert body["services"] == ["all", *every]
    doc = yaml.safe_load(body["content"])  # the preview, as the client sees it, still loads
    assert set(doc["volumes"]) == {"postgres-data", "mysql-data", "mongodb-data"}
    environment = doc["services"]["all"]["environment"]
    assert "MONGO_URI=mongodb://mongodb:27017/app" in environment
    # a URL's password never reaches an answer or the ledger; the written file keeps it
    assert "CELERY_BROKER_URL=amqp://guest:***@rabbitmq:5672/" in environment
    written = yaml.safe_load((flask_project.root / body["path"]).read_text())
    assert "CELERY_BROKER_URL=amqp://guest:guest@rabbitmq:5672/" in \
        written["services"]["all"]["environment"]


def test_a_go_service_gets_a_two_stage_build(repo: Path, make_app) -> None:
    write_project(repo, {"go.mod": "module example.com/inventory\n\ngo 1.23\n",
                         "main.go": 'package main\n\nimport "net/http"\n\nfunc main() {\n'
                                    '\thttp.ListenAndServe(":9090", nil)\n}\n'})
    body = bearer_client(make_app()).post(DOCKERFILE, json={}).get_json()
    found = instructions(body["content"])
    assert found["FROM"] == ["golang:1.23-alpine AS build", "gcr.io/distroless/static-debian12"]
    assert found["EXPOSE"] == ["9090"] and found["ENTRYPOINT"] == ['["/app"]']
