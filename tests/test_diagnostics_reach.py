"""Diagnostics for tools installed but unreachable: docker without an engine socket,
kubectl/helm without a kubeconfig.

Fake executables on a real PATH; the tools' environment (HOME, KUBECONFIG, DOCKER_HOST) is
the test's own; the socket is a real listening unix socket.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.core.actions import load_integrations
from controlplane.core.diagnostics import needed_tools
from tests.conftest import bearer_client, git, isolated_path

DOCKER_DOWN = ("docker is installed but no engine answers at {}: start Docker or set "
               "DOCKER_HOST")
NO_CLUSTER = ("kubectl and helm installed but no cluster configured: no kubeconfig at {}; "
              "set KUBECONFIG or write ~/.kube/config (kubectl config set-cluster ...)")


@pytest.fixture
def engine_socket() -> Iterator[Path]:
    """A real listening unix socket (in a short directory: socket paths are limited)."""
    with tempfile.TemporaryDirectory(prefix="scp-sock-") as directory:
        path = Path(directory) / "docker.sock"
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        server.listen(1)
        try:
            yield path
        finally:
            server.close()


def tool_env(fake_bin: Any, tmp_path: Path, **env: str) -> dict[str, str]:
    """Every tool an action needs faked on PATH; HOME is an empty directory."""
    for tool in needed_tools(load_integrations()):
        fake_bin(tool, "#!/bin/sh\nexit 0\n")
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    base = isolated_path(tmp_path / "basic", first=fake_bin.dir)
    base = {k: v for k, v in base.items() if k not in ("DOCKER_HOST", "KUBECONFIG")}
    return {**base, "HOME": str(home), **env}


def unreachable(client: Any) -> list[str]:
    found = client.get("/api/diagnostics").json["diagnostics"]
    return [d["message"] for d in found if d["code"] == "tool_unreachable"]


def app_for(make_app: Any, repo: Path, env: dict[str, str]) -> Any:
    git(repo, "remote", "add", "origin", "https://example.com/shop.git")
    return make_app(TOOL_ENV=env)


def test_docker_with_a_missing_unix_socket_names_it(make_app: Any, repo: Path, fake_bin: Any,
                                                    tmp_path: Path) -> None:
    gone = tmp_path / "run" / "docker.sock"
    kube = tmp_path / "kubeconfig"
    kube.write_text("apiVersion: v1\n")
    env = tool_env(fake_bin, tmp_path, DOCKER_HOST=f"unix://{gone}", KUBECONFIG=str(kube))
    client = bearer_client(app_for(make_app, repo, env))

    assert unreachable(client) == [DOCKER_DOWN.format(gone)]
    assert [d["code"] for d in client.get("/api/diagnostics").json["diagnostics"]] == [
        "tool_unreachable"]


def test_docker_without_docker_host_checks_the_default_socket(make_app: Any, repo: Path,
                                                              fake_bin: Any,
                                                              tmp_path: Path) -> None:
    env = tool_env(fake_bin, tmp_path, KUBECONFIG=str(tmp_path / "none"))
    env.pop("DOCKER_HOST", None)
    client = bearer_client(app_for(make_app, repo, env))

    found = unreachable(client)
    default = Path("/var/run/docker.sock")
    expected = [] if default.is_socket() else [DOCKER_DOWN.format(default)]
    assert [m for m in found if m.startswith("docker")] == expected


def test_a_listening_engine_socket_and_a_tcp_host_are_fine(make_app: Any, repo: Path,
                                                           fake_bin: Any, tmp_path: Path,
                                                           engine_socket: Path) -> None:
    kube = tmp_path / "kubeconfig"
    kube.write_text("apiVersion: v1\n")
    on_socket = tool_env(fake_bin, tmp_path, DOCKER_HOST=f"unix://{engine_socket}",
                         KUBECONFIG=str(kube))
    client = bearer_client(app_for(make_app, repo, on_socket))
    over_tcp = bearer_client(make_app(TOOL_ENV={**on_socket,
                                                "DOCKER_HOST": "tcp://10.0.0.1:2376"}))

    assert unreachable(client) == []
    assert unreachable(over_tcp) == []


def test_a_directory_where_the_socket_should_be_is_not_an_engine(make_app: Any, repo: Path,
                                                                 fake_bin: Any,
                                                                 tmp_path: Path) -> None:
    # what a bind mount of a missing socket leaves behind
    stray = tmp_path / "docker.sock"
    stray.mkdir()
    kube = tmp_path / "kubeconfig"
    kube.write_text("apiVersion: v1\n")
    env = tool_env(fake_bin, tmp_path, DOCKER_HOST=f"unix://{stray}", KUBECONFIG=str(kube))

    assert unreachable(bearer_client(app_for(make_app, repo, env))) == [
        DOCKER_DOWN.format(stray)]


def test_kubectl_and_helm_without_a_kubeconfig_in_home(make_app: Any, repo: Path,
                                                       fake_bin: Any, tmp_path: Path,
                                                       engine_socket: Path) -> None:
    env = tool_env(fake_bin, tmp_path, DOCKER_HOST=f"unix://{engine_socket}")
    client = bearer_client(app_for(make_app, repo, env))

    assert unreachable(client) == [NO_CLUSTER.format(tmp_path / "home" / ".kube" / "config")]


def test_missing_kubeconfig_files_are_all_named(make_app: Any, repo: Path, fake_bin: Any,
                                                tmp_path: Path, engine_socket: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    env = tool_env(fake_bin, tmp_path, DOCKER_HOST=f"unix://{engine_socket}",
                   KUBECONFIG=f"{a}:{b}")
    client = bearer_client(app_for(make_app, repo, env))

    assert unreachable(client) == [NO_CLUSTER.format(f"{a}, {b}")]


def test_a_tool_missing_from_path_is_not_also_unreachable(make_app: Any, repo: Path,
                                                          fake_bin: Any,
                                                          tmp_path: Path) -> None:
    for tool in needed_tools(load_integrations()):
        if tool not in ("docker", "kubectl", "helm"):
            fake_bin(tool, "#!/bin/sh\nexit 0\n")
    env = {**isolated_path(tmp_path / "basic", exclude=("docker", "kubectl", "helm"),
                           first=fake_bin.dir),
           "HOME": str(tmp_path), "DOCKER_HOST": f"unix://{tmp_path / 'gone.sock'}"}
    env.pop("KUBECONFIG", None)
    client = bearer_client(app_for(make_app, repo, env))

    codes = [d["code"] for d in client.get("/api/diagnostics").json["diagnostics"]]
    assert codes == ["tools_missing"]


def test_starting_the_engine_and_writing_a_kubeconfig_clear_them(make_app: Any, repo: Path,
                                                                 fake_bin: Any,
                                                                 tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="scp-sock-") as directory:
        sock_path = Path(directory) / "docker.sock"
        env = tool_env(fake_bin, tmp_path, DOCKER_HOST=f"unix://{sock_path}")
        app = app_for(make_app, repo, env)
        client = bearer_client(app)
        diagnostics = app.extensions["controlplane"].extra
        for _ in range(3):
            assert len(unreachable(client)) == 2
        assert diagnostics["diagnostics"].computed == 1

        engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        engine.bind(str(sock_path))
        engine.listen(1)
        try:
            assert unreachable(client) == [
                NO_CLUSTER.format(tmp_path / "home" / ".kube" / "config")]
            kube = tmp_path / "home" / ".kube"
            kube.mkdir()
            (kube / "config").write_text("apiVersion: v1\n")
            assert unreachable(client) == []
            assert diagnostics["diagnostics"].computed == 3
        finally:
            engine.close()
