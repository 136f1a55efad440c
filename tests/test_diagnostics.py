"""Settings diagnostics: ``GET /api/diagnostics`` and the dashboard's warning banners.

Real repositories and real PATHs: a repo without a remote, a project file with a refused
key, a PATH without terraform each give one exact line saying what is wrong and what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controlplane.core.actions import load_integrations
from controlplane.core.diagnostics import needed_tools
from tests.conftest import bearer_client, git, isolated_path

NO_REMOTE = ("No git remote: ledger sync cannot push or pull runs. "
             "Add one with: git remote add origin <url>")
REFUSED = ("Setting ignored: executor_limit: refused from .controlplane.yaml (anyone who can "
           "push writes it); set it with CONTROLPLANE_EXECUTOR_LIMIT or the user file")
NO_TERRAFORM = ("Not on the server's PATH: terraform (needed by terraform). Install them or "
                "add their directory to PATH; their actions fail until then.")


def every_tool_but(fake_bin: Any, tmp_path: Path, *left_out: str) -> dict[str, str]:
    """A tool PATH with a fake of every tool an action needs, except *left_out*."""
    for tool in needed_tools(load_integrations()):
        if tool not in left_out:
            fake_bin(tool, "#!/bin/sh\nexit 0\n")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    # docker and kubectl reachable (the unreachable checks: tests/test_diagnostics_reach.py)
    return {**isolated_path(tmp_path / "basic", exclude=left_out, first=fake_bin.dir),
            "DOCKER_HOST": "tcp://127.0.0.1:2375", "KUBECONFIG": str(kubeconfig)}


def messages(client: Any, code: str | None = None) -> list[str]:
    found = client.get("/api/diagnostics").json["diagnostics"]
    return [d["message"] for d in found if code is None or d["code"] == code]


def test_a_repo_without_a_remote_says_how_to_add_one(make_app: Any, fake_bin: Any,
                                                     tmp_path: Path) -> None:
    client = bearer_client(make_app(TOOL_ENV=every_tool_but(fake_bin, tmp_path)))

    assert messages(client) == [NO_REMOTE]


def test_another_remote_than_the_ledger_remote_is_named(make_app: Any, repo: Path) -> None:
    git(repo, "remote", "add", "upstream", "https://example.com/shop.git")
    client = bearer_client(make_app())

    assert messages(client, "no_remote") == [
        "The ledger sync remote 'origin' does not exist (remotes: upstream). Add it with: "
        "git remote add origin <url>, or set CONTROLPLANE_LEDGER_REMOTE to one of them."]


def test_a_refused_project_setting_is_one_banner(make_app: Any, repo: Path) -> None:
    (repo / ".controlplane.yaml").write_text("executor_limit: 9\naction_timeout: 60\n")
    git(repo, "remote", "add", "origin", "https://example.com/shop.git")
    client = bearer_client(make_app())

    assert messages(client, "setting_refused") == [REFUSED]
    assert messages(client, "no_remote") == []


def test_a_committed_secret_is_named_never_shown(make_app: Any, repo: Path) -> None:
    (repo / ".controlplane.yaml").write_text("token: hunter2-committed-secret\n")
    client = bearer_client(make_app())

    answer = client.get("/api/diagnostics").get_data(as_text=True)
    page = client.get("/").get_data(as_text=True)

    assert messages(client, "setting_refused") == [
        "Setting ignored: token: a secret committed to .controlplane.yaml is ignored; treat it "
        "as leaked, rotate it and set CONTROLPLANE_TOKEN"]
    assert "hunter2" not in answer and "hunter2" not in page


def test_a_path_without_terraform_lists_it_with_its_integration(make_app: Any, fake_bin: Any,
                                                                 tmp_path: Path) -> None:
    env = every_tool_but(fake_bin, tmp_path, "terraform")
    client = bearer_client(make_app(TOOL_ENV=env))

    assert messages(client, "tools_missing") == [NO_TERRAFORM]


def test_several_missing_tools_make_one_banner(make_app: Any, fake_bin: Any,
                                               tmp_path: Path) -> None:
    env = every_tool_but(fake_bin, tmp_path, "terraform", "helm", "kubectl", "docker")
    client = bearer_client(make_app(TOOL_ENV=env))

    assert messages(client, "tools_missing") == [
        "Not on the server's PATH: docker (needed by docker), helm (needed by k8s), kubectl "
        "(needed by k8s), terraform (needed by terraform). Install them or add their "
        "directory to PATH; their actions fail until then."]


def test_computed_once_then_again_only_when_a_setting_changes(make_app: Any, repo: Path,
                                                              fake_bin: Any,
                                                              tmp_path: Path) -> None:
    env = every_tool_but(fake_bin, tmp_path, "terraform")
    app = make_app(TOOL_ENV=env)
    client = bearer_client(app)
    plane = app.extensions["controlplane"]
    for _ in range(5):
        assert messages(client) == [NO_TERRAFORM, NO_REMOTE]
    assert plane.extra["diagnostics"].computed == 1

    git(repo, "remote", "add", "origin", "https://example.com/shop.git")
    (repo / ".controlplane.yaml").write_text("executor_limit: 9\n")
    fake_bin("terraform", "#!/bin/sh\nexit 0\n")  # installed while the server runs

    assert messages(client) == [REFUSED]
    assert plane.extra["diagnostics"].computed == 2


def test_the_dashboard_shows_the_banners_without_javascript(make_app: Any, fake_bin: Any,
                                                            tmp_path: Path) -> None:
    client = bearer_client(make_app(TOOL_ENV=every_tool_but(fake_bin, tmp_path, "terraform")))

    page = client.get("/").get_data(as_text=True)

    banners = page.split("data-diagnostics", 1)[1].split("</section>", 1)[0]
    assert NO_TERRAFORM.replace("'", "&#39;") in banners
    assert NO_REMOTE.replace("<", "&lt;").replace(">", "&gt;") in banners
    assert banners.count('class="banner banner--warning') == 2


def test_no_banner_when_all_is_well(make_app: Any, repo: Path, fake_bin: Any,
                                    tmp_path: Path) -> None:
    git(repo, "remote", "add", "origin", "https://example.com/shop.git")
    client = bearer_client(make_app(TOOL_ENV=every_tool_but(fake_bin, tmp_path)))

    assert messages(client) == []
    assert "data-diagnostics hidden" in client.get("/").get_data(as_text=True)
