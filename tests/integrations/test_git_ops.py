"""Git actions with real git: commit, push and pull between a project, a bare remote and a clone."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.core.actions import REGISTRY, ActionContext, load_integrations
from controlplane.core.errors import InvalidInput
from controlplane.core.integrations._git_porcelain import git_env
from controlplane.core.integrations.git_ops import CommitParams, commit
from controlplane.core.ledger import Ledger
from tests.conftest import bearer_client, git

load_integrations()
PWNED = "--upload-pack=touch pwned"


def head(repo: Path, ref: str = "HEAD") -> str:
    return git(repo, "rev-parse", ref).strip()


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    return remote


def test_commit_push_and_pull_in_a_clone(repo: Path, bare: Path, make_app,
                                         tmp_path: Path) -> None:
    client = bearer_client(make_app())
    added = client.post("/git/remote/add", json={"name": "origin", "url": str(bare)}).get_json()
    assert added["status"] == "ok" and added["remotes"] == {"origin": str(bare)}

    (repo / "app.py").write_text("print('hi')\n")
    (repo / "README.md").write_text("# changed\n")
    done = client.post("/git/commit", json={"message": "feat: add app"}).get_json()
    assert done["status"] == "ok", done
    assert done["commit"] == head(repo) and done["branch"] == "main"
    assert {f["path"]: f["status"] for f in done["files"]} == {"app.py": "??", "README.md": "M"}
    assert git(repo, "log", "-1", "--format=%s").strip() == "feat: add app"
    assert git(repo, "status", "--porcelain") == ""

    pushed = client.post("/git/push", json={"remote": "origin", "branch": "main"}).get_json()
    assert pushed["status"] == "ok", pushed
    assert pushed["new"] == 1 and pushed["refs"][0]["ref"] == "refs/heads/main"
    assert head(bare, "main") == head(repo)
    events = Ledger.open(repo).events(pushed["run_id"])
    lines = [e["data"]["line"] for e in events if e["type"] == "run:output"]
    assert any("[new branch]" in line for line in lines), lines  # git's output is in the run

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    (repo / "app.py").write_text("print('hello')\n")
    client.post("/git/commit", json={"message": "fix: greet", "paths": ["app.py"]})
    assert client.post("/git/push", json={}).get_json()["updated"] == 1  # current branch

    in_clone = bearer_client(make_app(REPO=clone))
    pulled = in_clone.post("/git/pull", json={"remote": "origin"}).get_json()
    assert pulled["status"] == "ok", pulled
    assert pulled["updated"] and pulled["after"] == head(repo) == head(clone)
    assert (clone / "app.py").read_text() == "print('hello')\n"

    # the clone moves on; the project's own new commit is rejected, never forced
    (clone / "other.txt").write_text("x\n")
    git(clone, "add", "other.txt")
    git(clone, "commit", "-q", "-m", "other")
    git(clone, "push", "-q", "origin", "main")
    (repo / "mine.txt").write_text("y\n")
    client.post("/git/commit", json={"message": "mine"})
    rejected = client.post("/git/push", json={"remote": "origin"}).get_json()
    assert rejected["status"] == "failed" and rejected["error"]["code"] == "rejected"
    assert rejected["rejected"] == 1 and head(bare, "main") == head(clone)
    diverged = client.post("/git/pull", json={"remote": "origin"}).get_json()
    assert diverged["status"] == "failed"
    assert diverged["error"]["code"] == "not_fast_forward" and not diverged["updated"]
    merged = client.post("/git/pull", json={"remote": "origin", "ff_only": False}).get_json()
    assert merged["status"] == "ok" and (repo / "other.txt").exists()


def test_nothing_to_commit_is_a_409_and_records_nothing(repo: Path, make_app) -> None:
    client = bearer_client(make_app())
    answer = client.post("/git/commit", json={"message": "nothing"})
    assert answer.status_code == 409 and answer.get_json()["error"] == "nothing_to_commit"
    (repo / "a.txt").write_text("a\n")
    answer = client.post("/git/commit", json={"message": "only b", "paths": ["b.txt"]})
    assert answer.status_code == 409
    assert Ledger.open(repo).recent() == []


def test_commit_of_paths_leaves_the_other_changes(repo: Path, make_app) -> None:
    client = bearer_client(make_app())
    (repo / "a.txt").write_text("a\n")
    (repo / "b.txt").write_text("b\n")
    (repo / "README.md").unlink()
    done = client.post("/git/commit", json={"message": "a and the readme",
                                            "paths": ["a.txt", "README.md"]}).get_json()
    assert done["status"] == "ok", done
    assert sorted(git(repo, "show", "--name-status", "--format=", "HEAD").split()) == \
        ["A", "D", "README.md", "a.txt"]
    assert git(repo, "status", "--porcelain").strip() == "?? b.txt"


def test_remotes_add_rename_set_url_and_remove(repo: Path, bare: Path, make_app) -> None:
    client = bearer_client(make_app())
    assert client.post("/git/remote/add", json={"name": "origin", "url": str(bare)}
                       ).get_json()["status"] == "ok"
    again = client.post("/git/remote/add", json={"name": "origin", "url": str(bare)}).get_json()
    assert again["status"] == "failed" and again["error"]["code"] == "remote_exists"
    renamed = client.post("/git/remote/rename", json={"name": "origin", "new_name": "up"})
    assert renamed.get_json()["remotes"] == {"up": str(bare)}
    url = "git@example.com:team/project.git"
    moved = client.post("/git/remote/set-url", json={"name": "up", "url": url}).get_json()
    assert moved["status"] == "ok" and git(repo, "remote", "get-url", "up").strip() == url
    assert client.post("/git/remote/remove", json={"name": "up"}).status_code == 428
    removed = client.post("/git/remote/remove", json={"name": "up", "confirm": True}).get_json()
    assert removed["status"] == "ok" and removed["remotes"] == {}
    assert git(repo, "remote").strip() == ""
    gone = client.post("/git/remote/remove", json={"name": "up", "confirm": True}).get_json()
    assert gone["error"]["code"] == "no_such_remote"


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/git/remote/add", {"name": PWNED, "url": "../remote.git"}, "name"),
    ("/git/remote/add", {"name": "origin", "url": PWNED}, "url"),
    ("/git/remote/set-url", {"name": "origin", "url": "ext::sh -c touch% pwned"}, "url"),
    ("/git/remote/rename", {"name": "origin", "new_name": PWNED}, "new_name"),
    ("/git/push", {"remote": PWNED}, "remote"),
    ("/git/push", {"branch": "+main"}, "branch"),
    ("/git/pull", {"remote": "origin", "branch": "--upload-pack=touch pwned"}, "branch"),
])
def test_an_option_as_a_name_is_refused_and_nothing_runs(repo: Path, make_app, path: str,
                                                          body: dict, field: str,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    answer = bearer_client(make_app()).post(path, json=body)
    assert answer.status_code == 422 and field in answer.get_json()["fields"]
    assert Ledger.open(repo).recent() == []
    assert not list(tmp_path.rglob("pwned"))
    assert git(repo, "remote").strip() == ""


@pytest.mark.parametrize("url", [
    "https://github.com/example/p.git", "ssh://git@example.com:2222/p.git",
    "git@github.com:example/p.git", "file:///srv/git/p.git", "/srv/git/p.git", "../p.git",
    "remote.git",
])
def test_remote_urls_that_are_accepted(url: str) -> None:
    REGISTRY["/git/remote/add"].validate({"name": "origin", "url": url})


@pytest.mark.parametrize("url", [
    "-u", "ext::sh -c 'touch pwned'", "fd::17", "https://user:token@github.com/p.git",
    "host:path", "ssh://-oProxyCommand=touch%20pwned/x", "https://example.com/a\nb",
    "git@-oProxyCommand=x:p",
])
def test_remote_urls_that_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        REGISTRY["/git/remote/add"].validate({"name": "origin", "url": url})
    assert "url" in refused.value.fields


def test_git_never_waits_for_a_person() -> None:
    env = git_env({"PATH": "/usr/bin", "GIT_SSH_COMMAND": "ssh -i key"})
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_ASKPASS"] == ""
    assert env["GIT_SSH_COMMAND"] == "ssh -i key -o BatchMode=yes"


def test_an_unreachable_ssh_remote_fails_at_once(repo: Path, make_app) -> None:
    client = bearer_client(make_app())
    client.post("/git/remote/add", json={"name": "origin", "url": "ssh://git@127.0.0.1:9/x.git"})
    failed = client.post("/git/push", json={"remote": "origin"}).get_json()
    assert failed["status"] == "failed" and failed["error"]["code"] == "exit_status"
    assert "Could not read from remote repository" in failed["error"]["message"]


def test_the_service_itself_fails_a_commit_with_nothing_in_it(repo: Path) -> None:
    # what a run reports if the change went between the route's 409 check and the run
    answer = commit(ActionContext(project_root=repo, run=None), CommitParams(message="x"))
    assert answer == {"ok": False, "error": {"code": "nothing_to_commit",
                                             "message": "nothing to commit"}}
