""".env.example from the variables the code reads; .env filled in, its values never shown."""

from __future__ import annotations

import json

from controlplane.core.ledger import Ledger
from tests.conftest import bearer_client, git, isolated_path
from tests.integrations import fixtures_projects
from tests.integrations.fixtures_projects import Project, write_project

# the fixtures, by the names tests ask for
flask_project, node_project, projects = fixtures_projects.FIXTURES

EXAMPLE = "/infra/env/generate-example"
ENV = "/infra/env/generate-env"
SECRET = "s3cr3t-Value-0042"
REDIS = "redis://:hunter2-pass@cache:6379/0"


def test_each_project_lists_what_its_code_reads(projects) -> None:
    flask = projects["flask"].ok(EXAMPLE, write=True)
    node = projects["node"].ok(EXAMPLE, write=True)
    assert flask["variables"] == ["REDIS_URL", "SECRET_KEY"]
    assert node["variables"] == ["DATABASE_URL"]
    assert flask["sensitive"] == ["SECRET_KEY"] and node["sensitive"] == ["DATABASE_URL"]
    text = (projects["flask"].root / ".env.example").read_text()
    assert "# read in app.py:8\nREDIS_URL=\n" in text
    assert "# read in app.py:7 (a secret)\nSECRET_KEY=\n" in text
    assert "# read in server.js:4 (a secret)\nDATABASE_URL=\n" in node["content"]


def prepared(project: Project) -> Project:
    """The Flask project with its .env.example, and a .gitignore that hides .env."""
    project.ok(EXAMPLE, write=True)
    write_project(project.root, {".gitignore": ".env\n"}, "ignore .env")
    return project


def test_env_values_are_written_and_never_shown(flask_project: Project) -> None:
    project = prepared(flask_project)
    body = project.ok(ENV, write=True, values={"SECRET_KEY": SECRET, "REDIS_URL": REDIS,
                                               "EXTRA_NOTE": "two words"})
    env = (project.root / ".env").read_text()
    assert f"SECRET_KEY={SECRET}\n" in env and f"REDIS_URL={REDIS}\n" in env
    assert "EXTRA_NOTE='two words'\n" in env and "# read in app.py:7 (a secret)\n" in env
    assert body["keys"] == ["REDIS_URL", "SECRET_KEY", "EXTRA_NOTE"] and body["empty"] == []
    assert body["written"] is True and body["ignored_by_git"] is True
    assert "SECRET_KEY=***" in body["content"] and "REDIS_URL=***" in body["content"]
    answer = json.dumps(body)
    assert SECRET not in answer and "hunter2" not in answer and "two words" not in answer
    assert "sha256" not in body
    # nothing of the values in the ledger either: not in params, result or events
    ledger = git(project.root, "grep", "-I", "-e", SECRET, "-e", "hunter2", "scp-ledger",
                 check=False)
    assert ledger == ""
    stored = Ledger.open(project.root).get(body["run_id"])
    assert set(stored["params"]["values"]) == {"SECRET_KEY", "REDIS_URL", "EXTRA_NOTE"}
    assert set(stored["params"]["values"].values()) <= {"**********", "***"}
    # a rerun cannot write the stored masks as values
    rerun = project.client.post(f"/api/runs/{body['run_id']}/rerun", json={})
    assert rerun.status_code == 422 and "values" in rerun.get_json()["fields"]


def test_values_that_need_quoting(flask_project: Project) -> None:
    project = prepared(flask_project)
    project.ok(ENV, write=True, values={"SECRET_KEY": "it's a \"quoted\" $HOME\nline"})
    env = (project.root / ".env").read_text()
    assert 'SECRET_KEY="it\'s a \\"quoted\\" \\$HOME\\nline"\n' in env


def test_a_env_that_git_would_commit_is_refused(node_project: Project) -> None:
    node_project.ok(EXAMPLE, write=True)
    preview = node_project.ok(ENV, values={"DATABASE_URL": "postgres://u:pw-123456@db/x"})
    assert preview["ignored_by_git"] is False and "not covered by .gitignore" in \
        preview["warnings"][0]
    refused = node_project.post(ENV, write=True, values={"DATABASE_URL": "postgres://db/x"})
    assert refused["status"] == "failed" and refused["error"]["code"] == "not_ignored"
    assert not (node_project.root / ".env").exists()

    write_project(node_project.root, {".env": "DATABASE_URL=\n"}, "oops, a committed .env")
    write_project(node_project.root, {".gitignore": ".env\n"}, "ignore it now")
    tracked = node_project.post(ENV, write=True, overwrite=True,
                                values={"DATABASE_URL": "postgres://db/x"})
    assert tracked["status"] == "failed" and tracked["error"]["code"] == "tracked_by_git"
    assert (node_project.root / ".env").read_text() == "DATABASE_URL=\n"


def test_bad_input_is_refused(flask_project: Project) -> None:
    project = prepared(flask_project)
    assert "values.bad-name.[key]" in project.post(ENV, status=422,
                                                   values={"bad-name": "x"})["fields"]
    assert "output" in project.post(ENV, status=422, output="../.env")["fields"]
    for mask in ("**********", "***"):
        assert "values" in project.post(ENV, status=422, values={"A": mask})["fields"]
    missing = project.post(ENV, source="config/none.example")
    assert missing["status"] == "failed" and missing["error"]["code"] == "not_found"
    project.ok(ENV, write=True)
    assert project.post(ENV, status=409, write=True)["paths"] == [".env"]


def test_without_git_the_check_is_reported(flask_project: Project, make_app, tmp_path) -> None:
    flask_project.ok(EXAMPLE, write=True)
    client = bearer_client(make_app(TOOL_ENV=isolated_path(tmp_path / "nogit",
                                                           exclude=("git",))))
    body = client.post(ENV, json={"write": True, "values": {"SECRET_KEY": SECRET}}).get_json()
    assert body["status"] == "ok" and body["ignored_by_git"] is False
    assert "was not checked" in body["warnings"][0]
    assert f"SECRET_KEY={SECRET}" in (flask_project.root / ".env").read_text()
