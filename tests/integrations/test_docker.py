"""Docker actions: the real docker client without an engine, and fakes for the argv contract.

This machine has the docker CLI but no engine, and no compose plugin: the real
client must come back as ``tool_unavailable`` (with docker's own "Cannot connect
to the Docker daemon") and compose as ``tool_missing``. A fake docker records
its argv, writes the ``--iidfile`` and prints what docker prints.
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
DOCKER = shutil.which("docker")
IMAGE_ID = "sha256:" + "3b" * 32
COMPOSE = "services:\n  web:\n    build: .\n  redis:\n    image: redis:7\n"


@pytest.fixture
def project(repo: Path) -> Path:
    (repo / "Dockerfile").write_text("FROM python:3.12-slim\nCOPY . /app\n")
    (repo / "docker").mkdir()
    (repo / "docker" / "Dockerfile.prod").write_text("FROM python:3.12-slim AS runtime\n")
    (repo / "compose.yaml").write_text(COMPOSE)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "docker files")
    return repo


@pytest.fixture
def no_engine(tmp_path: Path) -> dict[str, str]:
    """The real docker client, pointed at a socket nobody listens on."""
    if DOCKER is None:
        pytest.skip("the docker CLI is not installed")
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "docker").symlink_to(DOCKER)
    return {**isolated_path(tmp_path / "bin", first=tools),
            "DOCKER_HOST": f"unix://{tmp_path}/nothing.sock",
            "DOCKER_CONFIG": str(tmp_path / "docker-config")}


@pytest.mark.parametrize(("route", "body"), [
    ("/docker/build", {"tags": ["shop:dev"]}),
    ("/docker/pull", {"image": "redis:7"}),
    ("/docker/exec", {"container": "shop-web-1", "command": ["true"]}),
    ("/docker/rm", {"containers": ["shop-web-1"], "confirm": True}),
    ("/docker/prune", {"scope": "system", "confirm": True}),
])
def test_no_engine_is_tool_unavailable_in_dockers_words(route: str, body: dict, project: Path,
                                                        make_app, no_engine) -> None:
    client = bearer_client(make_app(TOOL_ENV=no_engine))
    answer = client.post(route, json=body).get_json()
    assert answer["status"] == "failed", answer
    assert answer["error"]["code"] == "tool_unavailable", answer
    assert "Cannot connect to the Docker daemon" in answer["error"]["message"]
    run = Ledger.open(project).get(answer["run_id"])
    assert run["target"]["tool"] == "docker" and run["target"]["tool_version"].startswith("Docker")


def test_compose_without_its_plugin_is_tool_missing(project: Path, make_app, no_engine) -> None:
    has_plugin = subprocess.run([DOCKER or "docker", "compose", "version"], capture_output=True,
                                env=no_engine, timeout=60, check=False).returncode == 0
    client = bearer_client(make_app(TOOL_ENV=no_engine))
    answer = client.post("/docker/up", json={"file": "compose.yaml",
                                             "project_name": "shop"}).get_json()
    assert answer["status"] == "failed", answer
    assert answer["error"]["code"] == ("tool_unavailable" if has_plugin else "tool_missing")
    if not has_plugin:
        assert "docker compose" in answer["error"]["message"]


FAKE = """
import json, sys
args = sys.argv[1:]
with open({log!r}, "a") as handle:
    handle.write(json.dumps(args) + "\\n")
for arg in args:
    if arg.startswith("--iidfile="):
        open(arg.split("=", 1)[1], "w").write({image_id!r})
replies = {replies!r}
words = [a for a in args if not a.startswith("-")]
out, err, code = next((reply for key, reply in replies.items()
                       if words[:len(key.split())] == key.split()), ("", "", 0))
sys.stdout.write(out)
sys.stderr.write(err)
sys.exit(code)
"""


def fake_docker(fake_bin, replies: dict[str, tuple[str, str, int]] | None = None) -> Path:
    """A docker that logs its argv, writes any --iidfile and answers by its subcommand."""
    log = fake_bin.dir / "docker.argv"
    fake_bin("docker", python_script(FAKE.format(log=str(log), image_id=IMAGE_ID,
                                                 replies=replies or {})))
    return log


def calls(log: Path) -> list[list[str]]:
    seen = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return [argv for argv in seen if argv != ["--version"]]


@pytest.fixture
def client(project: Path, make_app, fake_bin, tmp_path: Path):
    def build(replies: dict[str, tuple[str, str, int]] | None = None):
        log = fake_docker(fake_bin, replies)
        env = isolated_path(tmp_path / "bin", first=fake_bin.dir)
        return bearer_client(make_app(TOOL_ENV=env)), log
    return build


def test_build_reads_the_image_id_from_the_iidfile(client) -> None:
    http, log = client()
    body = http.post("/docker/build", json={
        "context": ".", "dockerfile": "docker/Dockerfile.prod", "tags": ["shop:1.0", "shop:latest"],
        "build_args": {"PYTHON_VERSION": "3.12"}, "target": "runtime", "no_cache": True}).get_json()
    assert body["status"] == "ok", body
    assert body["image_id"] == IMAGE_ID and body["tags"] == ["shop:1.0", "shop:latest"]
    [argv] = calls(log)
    assert argv[0] == "build" and argv[1].startswith("--iidfile=")
    assert argv[2:] == ["--file=docker/Dockerfile.prod", "--tag=shop:1.0", "--tag=shop:latest",
                        "--build-arg=PYTHON_VERSION=3.12", "--target=runtime", "--no-cache",
                        "--", "."]
    assert not Path(argv[1].split("=", 1)[1]).exists()  # the temporary iidfile is cleaned up


def test_compose_up_then_lists_containers(client) -> None:
    # docker compose >= 2.21 prints one JSON object per line; older v2 a JSON array
    lines = ('{"Name":"shop-web-1","Service":"web","State":"running","Status":"Up 1 second",'
             '"Health":"","ExitCode":0}\n{"Name":"shop-redis-1","Service":"redis","State":'
             '"running","Status":"Up 2 seconds","Health":"","ExitCode":0}\n')
    http, log = client({"compose ps": (lines, "", 0),
                        "compose up": ("", " Container shop-web-1  Started\n", 0)})
    body = http.post("/docker/up", json={"file": "compose.yaml", "project_name": "shop",
                                         "services": ["web", "redis"], "build": True,
                                         "wait": True}).get_json()
    assert body["status"] == "ok", body
    assert [(c["service"], c["state"]) for c in body["containers"]] == [("web", "running"),
                                                                        ("redis", "running")]
    base = ["compose", "--ansi=never", "--file=compose.yaml", "--project-name=shop"]
    assert calls(log) == [[*base, "up", "--detach", "--build", "--wait", "--", "web", "redis"],
                          [*base, "ps", "--all", "--format=json"]]


def test_compose_restart_reads_an_older_compose_json_array(client) -> None:
    array = json.dumps([{"Name": "shop-web-1", "Service": "web", "State": "running",
                         "Status": "Up 1 second"}])
    http, log = client({"compose ps": (array, "", 0)})
    body = http.post("/docker/restart", json={"services": ["web"], "timeout": 3}).get_json()
    assert body["containers"] == [{"name": "shop-web-1", "service": "web", "state": "running",
                                   "status": "Up 1 second"}], body
    assert calls(log)[0] == ["compose", "--ansi=never", "restart", "--timeout=3", "--", "web"]


def test_compose_down_reports_what_it_removed(client) -> None:
    progress = (" Container shop-web-1  Stopping\n Container shop-web-1  Stopped\n"
                " Container shop-web-1  Removing\n Container shop-web-1  Removed\n"
                " Volume shop_data  Removed\n Network shop_default  Removed\n")
    http, log = client({"compose down": ("", progress, 0)})
    body = http.post("/docker/down", json={"project_name": "shop", "volumes": True,
                                           "rmi": "local", "confirm": True}).get_json()
    assert body["status"] == "ok", body
    assert body["removed"] == [{"kind": "container", "name": "shop-web-1"},
                               {"kind": "volume", "name": "shop_data"},
                               {"kind": "network", "name": "shop_default"}]
    assert calls(log) == [["compose", "--ansi=never", "--project-name=shop", "down",
                           "--volumes", "--rmi=local"]]


def test_exec_passes_the_command_list_after_the_container(client) -> None:
    http, log = client({"exec": ("migrating…\n", "error: table exists\n", 3)})
    body = http.post("/docker/exec", json={
        "container": "shop-web-1", "command": ["sh", "-c", "flask db upgrade; exit 3"],
        "workdir": "/app", "env": {"FLASK_APP": "app.py"}}).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "exit_status", body
    assert body["output"] == "migrating…\n" and body["exit_code"] == 3
    assert calls(log) == [["exec", "--workdir=/app", "--env=FLASK_APP=app.py", "--",
                           "shop-web-1", "sh", "-c", "flask db upgrade; exit 3"]]


def test_pull_rm_rmi_and_prune(client) -> None:
    digest = "sha256:" + "a1" * 32
    http, log = client({
        "pull": (f"7: Pulling from library/redis\nDigest: {digest}\nStatus: Image is up to date "
                 "for redis:7\ndocker.io/library/redis:7\n", "", 0),
        "rm": ("shop-web-1\nshop-redis-1\n", "", 0),
        "rmi": (f"Untagged: shop:0.9\nUntagged: shop@{digest}\nDeleted: {IMAGE_ID}\n", "", 0),
        "system prune": ("Deleted Containers:\n4f0c1e2d3a5b\n\nDeleted Networks:\nshop_default"
                         "\n\nTotal reclaimed space: 1.2GB\n", "", 0)})
    pulled = http.post("/docker/pull", json={"image": "redis:7",
                                             "platform": "linux/arm64"}).get_json()
    removed = http.post("/docker/rm", json={"containers": ["shop-web-1", "shop-redis-1"],
                                            "volumes": True, "confirm": True}).get_json()
    untagged = http.post("/docker/rmi", json={"images": ["shop:0.9"], "force": True,
                                              "confirm": True}).get_json()
    pruned = http.post("/docker/prune", json={"scope": "system", "volumes": True,
                                              "confirm": True}).get_json()
    assert (pulled["digest"], pulled["updated"]) == (digest, False), pulled
    assert removed["removed"] == ["shop-web-1", "shop-redis-1"], removed
    assert untagged["untagged"] == ["shop:0.9", f"shop@{digest}"]
    assert untagged["deleted"] == [IMAGE_ID]
    assert pruned["removed"] == ["4f0c1e2d3a5b", "shop_default"], pruned
    assert pruned["reclaimed"] == "1.2GB"
    assert calls(log) == [
        ["pull", "--platform=linux/arm64", "--", "redis:7"],
        ["rm", "--volumes", "--", "shop-web-1", "shop-redis-1"],
        ["rmi", "--force", "--", "shop:0.9"],
        ["system", "prune", "--force", "--volumes"]]


@pytest.mark.parametrize(("route", "body", "field"), [
    ("/docker/exec", {"container": "-rf", "command": ["ls"]}, "container"),
    ("/docker/pull", {"image": "--upload-pack=touch pwned"}, "image"),
    ("/docker/up", {"project_name": "--upload-pack=touch pwned"}, "project_name"),
    ("/docker/restart", {"services": ["-rf"]}, "services.0"),
    ("/docker/build", {"tags": ["--output=/etc"]}, "tags.0"),
    ("/docker/build", {"dockerfile": "../../etc/Dockerfile"}, "dockerfile"),
    ("/docker/rmi", {"images": ["-f"], "confirm": True}, "images.0"),
])
def test_option_like_names_are_refused_and_nothing_runs(route: str, body: dict, field: str,
                                                        client, project: Path) -> None:
    http, log = client()
    answer = http.post(route, json=body)
    assert answer.status_code == 422 and field in answer.get_json()["fields"], answer.get_json()
    assert calls(log) == [] and Ledger.open(project).recent() == []
