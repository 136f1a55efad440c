"""GitHub actions (the "git" page) through a fake gh: argv, JSON read back, not logged in.

gh is not installed here; the fake prints what gh prints when not attached to a
terminal: the URL of a created repository, ``--json`` output of ``run list`` and
``repo view``, and gh's own message when no one is logged in.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.core.actions import REGISTRY, load_integrations
from controlplane.core.ledger import Ledger
from tests.conftest import bearer_client, isolated_path, python_script

load_integrations()
RUN_URL = "https://github.com/acme/shop/actions/runs/11223344"
NOT_LOGGED_IN = ("To get started with GitHub CLI, please run:  gh auth login\n"
                 "Alternatively, populate the GH_TOKEN environment variable with a GitHub API "
                 "authentication token.\n", 4)
VIEW = {"nameWithOwner": "acme/shop", "url": "https://github.com/acme/shop",
        "visibility": "PUBLIC", "defaultBranchRef": {"name": "trunk"}}


def gh_fake(fake_bin, replies: dict[str, tuple[str, int]], failure: tuple[str, int] | None = None
            ) -> Path:
    """A gh that logs its argv and answers ``<group> <command>`` from *replies*; *failure*
    (stderr, exit) answers everything instead."""
    log = fake_bin.dir / "gh.argv"
    fake_bin("gh", python_script(f"""
        import json, sys
        args = sys.argv[1:]
        with open({str(log)!r}, "a") as handle:
            handle.write(json.dumps(args) + "\\n")
        failure = {failure!r}
        if failure:
            sys.stderr.write(failure[0])
            sys.exit(failure[1])
        out, code = {replies!r}.get(" ".join(args[:2]), ("", 0))
        sys.stdout.write(out)
        sys.exit(code)
    """))
    return log


def calls(log: Path) -> list[list[str]]:
    seen = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return [argv for argv in seen if argv != ["--version"]]


@pytest.fixture
def gh(repo: Path, make_app, fake_bin, tmp_path: Path):
    def start(replies: dict[str, tuple[str, int]] | None = None,
              failure: tuple[str, int] | None = None):
        log = gh_fake(fake_bin, replies or {}, failure)
        env = isolated_path(tmp_path / "bin", first=fake_bin.dir)
        return bearer_client(make_app(TOOL_ENV=env)), log
    return start


def test_the_routes_belong_to_the_git_page() -> None:
    assert {REGISTRY[p].integration for p in REGISTRY if p.startswith("/gh/")} == {"git"}


def test_dispatch_answers_the_runs_url(gh) -> None:
    runs = json.dumps([{"databaseId": 11223344, "status": "queued", "url": RUN_URL}])
    client, log = gh({"run list": (runs, 0)})
    body = client.post("/gh/actions/dispatch", json={
        "workflow": "deploy.yml", "ref": "release/1.2", "repo": "acme/shop",
        "inputs": {"environment": "staging", "dry_run": "true", "note": "a=b, c"}}).get_json()
    assert body["status"] == "ok", body
    assert body["run_url"] == RUN_URL and body["workflow_run_id"] == 11223344
    assert calls(log) == [
        ["workflow", "run", "--repo=acme/shop", "--ref=release/1.2",
         "--raw-field=dry_run=true", "--raw-field=environment=staging", "--raw-field=note=a=b, c",
         "--", "deploy.yml"],
        ["run", "list", "--repo=acme/shop", "--workflow=deploy.yml", "--event=workflow_dispatch",
         "--json=url,databaseId,status", "--limit=1"]]


def test_dispatch_before_the_run_is_listed_still_succeeds(gh) -> None:
    client, _ = gh({"run list": ("[]", 0)})
    body = client.post("/gh/actions/dispatch", json={"workflow": "CI Build"}).get_json()
    assert body["status"] == "ok" and body["run_url"] is None, body


def test_a_failed_run_lookup_does_not_undo_the_dispatch(gh) -> None:
    client, log = gh({"run list": ("", 1)})
    body = client.post("/gh/actions/dispatch", json={"workflow": "ci.yml"}).get_json()
    assert body["status"] == "ok" and body["run_url"] is None, body
    assert body["lookup_error"]["code"] == "exit_status"
    assert [argv[:2] for argv in calls(log)] == [["workflow", "run"], ["run", "list"]]


def test_not_logged_in_is_tool_unavailable_and_stops_there(gh, repo: Path) -> None:
    client, log = gh(failure=NOT_LOGGED_IN)
    body = client.post("/gh/actions/dispatch", json={"workflow": "ci.yml"}).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "tool_unavailable", body
    assert "GH_TOKEN" in body["error"]["message"]  # gh's own last words
    assert [argv[:2] for argv in calls(log)] == [["workflow", "run"]]
    visibility = client.post("/gh/repo/visibility", json={"visibility": "public",
                                                          "confirm": True}).get_json()
    assert visibility["error"]["code"] == "tool_unavailable"
    assert Ledger.open(repo).get(body["run_id"])["target"]["tool"] == "gh"


def test_no_gh_is_tool_missing_with_a_hint(repo: Path, make_app, tmp_path: Path) -> None:
    client = bearer_client(make_app(TOOL_ENV=isolated_path(tmp_path / "bin", exclude=("gh",))))
    body = client.post("/gh/repo/create", json={"name": "shop"}).get_json()
    assert body["error"]["code"] == "tool_missing", body
    assert "gh auth login" in body["error"]["message"]


def test_create_from_the_project(gh) -> None:
    client, log = gh({"repo create": ("https://github.com/acme/shop\n", 0)})
    body = client.post("/gh/repo/create", json={
        "name": "acme/shop", "visibility": "internal", "description": "Shop: orders & stock",
        "remote": "github", "push": True}).get_json()
    assert body["status"] == "ok", body
    assert body["url"] == "https://github.com/acme/shop" and body["visibility"] == "internal"
    assert calls(log) == [["repo", "create", "--internal", "--description=Shop: orders & stock",
                           "--source=.", "--remote=github", "--push", "--", "acme/shop"]]


def test_visibility_needs_confirmation_then_reads_it_back(gh) -> None:
    client, log = gh({"repo view": (json.dumps(VIEW), 0)})
    assert client.post("/gh/repo/visibility", json={"visibility": "public"}).status_code == 428
    assert calls(log) == []
    body = client.post("/gh/repo/visibility", json={"visibility": "public", "repo": "acme/shop",
                                                    "confirm": True}).get_json()
    assert body["status"] == "ok" and body["visibility"] == "PUBLIC", body
    assert calls(log) == [
        ["repo", "edit", "--visibility=public", "--accept-visibility-change-consequences", "--",
         "acme/shop"],
        ["repo", "view", "--json=nameWithOwner,url,visibility", "--", "acme/shop"]]


def test_default_branch_is_read_back(gh) -> None:
    client, log = gh({"repo view": (json.dumps(VIEW), 0)})
    body = client.post("/gh/repo/default-branch", json={"branch": "trunk"}).get_json()
    assert body["status"] == "ok" and body["default_branch"] == "trunk", body
    assert calls(log) == [["repo", "edit", "--default-branch=trunk"],
                          ["repo", "view", "--json=nameWithOwner,url,defaultBranchRef"]]


def test_a_failed_edit_is_not_read_back(gh) -> None:
    client, log = gh({"repo edit": ("", 1)})
    body = client.post("/gh/repo/default-branch", json={"branch": "trunk"}).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "exit_status", body
    assert [argv[:2] for argv in calls(log)] == [["repo", "edit"]]


@pytest.mark.parametrize(("route", "body", "field"), [
    ("/gh/repo/create", {"name": "shop", "remote": "--upload-pack=touch pwned"}, "remote"),
    ("/gh/repo/create", {"name": "-rf"}, "name"),
    ("/gh/actions/dispatch", {"workflow": "--repo=evil/x"}, "workflow"),
    ("/gh/actions/dispatch", {"workflow": "ci.yml", "ref": "--upload-pack=x"}, "ref"),
    ("/gh/actions/dispatch", {"workflow": "ci.yml", "inputs": {"-F": "@/etc/passwd"}},
     "inputs.-F.[key]"),
    ("/gh/repo/visibility", {"visibility": "public", "repo": "-rf/x", "confirm": True}, "repo"),
    ("/gh/repo/default-branch", {"branch": "--upload-pack=touch pwned"}, "branch"),
])
def test_option_like_names_are_refused_and_nothing_runs(route: str, body: dict, field: str,
                                                        gh, repo: Path) -> None:
    client, log = gh()
    answer = client.post(route, json=body)
    assert answer.status_code == 422 and field in answer.get_json()["fields"], answer.get_json()
    assert calls(log) == [] and Ledger.open(repo).recent() == []
