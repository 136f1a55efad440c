"""CHANGELOG from the real git history, README from each project's facts."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import bearer_client, git, isolated_path
from tests.integrations import fixtures_projects
from tests.integrations.fixtures_projects import Project

# the fixtures, by the names tests ask for
flask_project, node_project, projects = fixtures_projects.FIXTURES

CHANGELOG = "/docs/generate/changelog"
README = "/docs/generate/readme"
HISTORY = ("feat(api): add order totals", "fix: crash on an empty cart",
           "docs: explain REDIS_URL", "refactor!: split the app module",
           "chore(deps): bump flask", "tweak the styles", "perf: cache lookups")


def commit(root: Path, message: str, body: str = "") -> None:
    git(root, "commit", "-q", "--allow-empty", "-m", message, *(["-m", body] if body else []))


def test_the_changelog_groups_commits_since_the_latest_tag(flask_project: Project) -> None:
    root = flask_project.root
    git(root, "tag", "v0.1.0")
    for message in HISTORY:
        commit(root, message, "BREAKING CHANGE: the cache must be configured"
               if message.startswith("perf") else "")
    flask_project.ok(README)  # a recorded run tags HEAD under refs/scp/run: not a release tag

    body = flask_project.ok(CHANGELOG, version="0.2.0", write=True)
    assert body["since"] == "v0.1.0" and body["commits"] == len(HISTORY)
    assert body["groups"] == {"Features": 1, "Bug Fixes": 1, "Performance": 1,
                              "Refactoring": 1, "Documentation": 1, "Chores": 1, "Other": 1}
    text = (root / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n")
    assert "## 0.2.0 - " in text and "since v0.1.0" in text
    headings = [line for line in text.splitlines() if line.startswith("### ")]
    assert headings == ["### Features", "### Bug Fixes", "### Performance", "### Refactoring",
                        "### Documentation", "### Chores", "### Other"]
    assert "- **api:** add order totals (" in text
    assert "- **BREAKING:** split the app module (" in text
    assert "- **BREAKING:** cache lookups (" in text
    assert "- tweak the styles (" in text
    assert "add the project" not in text and "initial commit" not in text  # before the tag


def test_since_a_given_commit_and_unknown_refs(flask_project: Project) -> None:
    root = flask_project.root
    first = git(root, "rev-list", "--max-parents=0", "HEAD").strip()
    commit(root, "feat: one more thing")
    body = flask_project.ok(CHANGELOG, since=first)
    assert body["commits"] == 2 and body["groups"] == {"Features": 1, "Other": 1}
    assert "## Unreleased\n" in body["content"]
    missing = flask_project.post(CHANGELOG, since="v9.9.9")
    assert missing["status"] == "failed" and missing["error"]["code"] == "not_found"
    assert "since" in flask_project.post(CHANGELOG, status=422, since="--all")["fields"]


def test_a_repository_without_commits(empty_repo: Path, make_app) -> None:
    client = bearer_client(make_app(REPO=empty_repo))
    body = client.post(CHANGELOG, json={}).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "no_commits"


def test_each_project_gets_its_own_readme(projects) -> None:
    flask = projects["flask"].ok(README)
    node = projects["node"].ok(README)
    assert flask["exists"] is True  # the fixture repository has a README: preview only
    py, js = flask["content"], node["content"]
    assert py.startswith("# project\n") and js.startswith("# orders-service\n")
    assert "Orders over HTTP, kept in PostgreSQL" in js
    assert "pip install -r requirements.txt" in py and "npm install" in js
    assert "python app.py" in py and "npm start" in js
    assert "http://localhost:5000/" in py and "http://localhost:3000/" in js
    assert "| `REDIS_URL` | app.py:8 |" in py and "| `DATABASE_URL` | server.js:4 |" in js
    assert "docker compose up -d redis" in py and "docker compose up -d postgres" in js
    assert "pytest" in py and "npm test" in js
    assert flask["sections"] == node["sections"] == [
        "Getting started", "Configuration", "Services", "Running", "Tests"]

    refused = projects["node"].post(README, status=409, write=True)
    assert refused["paths"] == ["README.md"]
    written = projects["node"].ok(README, write=True, overwrite=True, title="Orders")
    assert (projects["node"].root / "README.md").read_text().startswith("# Orders\n")
    assert written["written"] is True


def test_without_git_the_changelog_says_so(flask_project: Project, make_app, tmp_path) -> None:
    env = isolated_path(tmp_path / "nogit", exclude=("git",))
    client = bearer_client(make_app(TOOL_ENV=env))
    body = client.post(CHANGELOG, json={}).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "tool_missing"
    assert "git" in body["error"]["message"]
