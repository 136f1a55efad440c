"""Two small projects the generators must tell apart: a Flask app with Redis, a Node service.

``projects`` gives a client per project (each its own git repository and app),
so a test posts the same action to both and compares the answers.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import bearer_client, git, make_repo

FLASK_REDIS = {
    "requirements.txt": "flask>=3.0\nredis>=5.0\n",
    ".python-version": "3.11.7\n",
    "app.py": textwrap.dedent("""\
        import os

        import redis
        from flask import Flask

        app = Flask(__name__)
        app.config["SECRET_KEY"] = os.getenv("SECRET_KEY")
        cache = redis.Redis.from_url(os.environ["REDIS_URL"])


        @app.get("/")
        def index():
            return {"hits": cache.incr("hits")}


        if __name__ == "__main__":
            app.run(host="0.0.0.0", port=5000)
        """),
    "tests/test_app.py": "def test_truth():\n    assert True\n",
}

NODE_PG = {
    "package.json": json.dumps({
        "name": "orders-service", "version": "1.0.0", "main": "server.js",
        "description": "Orders over HTTP, kept in PostgreSQL",
        "engines": {"node": ">=18"},
        "scripts": {"start": "node server.js", "test": "node --test"},
        "dependencies": {"express": "^4.19.2", "pg": "^8.11.3"},
    }, indent=2) + "\n",
    "server.js": textwrap.dedent("""\
        const express = require('express');
        const { Pool } = require('pg');

        const pool = new Pool({ connectionString: process.env.DATABASE_URL });
        const app = express();

        app.get('/orders', async (req, res) => {
          const { rows } = await pool.query('SELECT * FROM orders');
          res.json(rows);
        });

        app.listen(3000, () => console.log('listening on 3000'));
        """),
}

PROJECTS = {"flask": FLASK_REDIS, "node": NODE_PG}


def write_project(root: Path, files: dict[str, str], message: str = "add the project") -> Path:
    """*files* written into the git repository *root* (created if needed) and committed."""
    if not (root / ".git").exists():
        make_repo(root)
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return root


class Project:
    """One fixture project: its root and a client of its own app."""

    def __init__(self, root: Path, client: Any) -> None:
        self.root = root
        self.client = client

    def post(self, path: str, status: int = 200, **params: Any) -> dict[str, Any]:
        """POST *params* to the action *path*; checks the HTTP status, returns the body."""
        answer = self.client.post(path, json=params)
        assert answer.status_code == status, answer.get_json()
        return answer.get_json()

    def ok(self, path: str, **params: Any) -> dict[str, Any]:
        """POST and expect a run that ended ok."""
        body = self.post(path, **params)
        assert body["status"] == "ok", body
        return body


@pytest.fixture
def flask_project(repo: Path, make_app) -> Project:
    """The Flask + Redis project in the test's repository."""
    write_project(repo, FLASK_REDIS)
    return Project(repo, bearer_client(make_app()))


@pytest.fixture
def node_project(tmp_path: Path, make_app) -> Project:
    """The Node + PostgreSQL project, in a repository of its own."""
    root = write_project(tmp_path / "orders-service", NODE_PG)
    return Project(root, bearer_client(make_app(REPO=root)))


@pytest.fixture
def projects(flask_project: Project, node_project: Project) -> dict[str, Project]:
    return {"flask": flask_project, "node": node_project}


FIXTURES = (flask_project, node_project, projects)
"""For a test module: ``flask_project, node_project, projects = FIXTURES``."""
