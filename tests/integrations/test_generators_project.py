"""Pages CI workflow, .gitignore and quality tool configuration, fitted to each project."""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
import tomllib

import yaml

from controlplane.core.integrations._project_facts import node_lts_within
from tests.conftest import git
from tests.integrations import fixtures_projects
from tests.integrations.fixtures_projects import Project, write_project

# the fixtures, by the names tests ask for
flask_project, node_project, projects = fixtures_projects.FIXTURES

PAGES = "/pages/ci"
GITIGNORE = "/security/generate/gitignore"
QUALITY = "/quality/generate/config"


def steps(workflow: dict) -> list[str]:
    return [s.get("uses") or s.get("run") for s in workflow["jobs"]["build"]["steps"]]


def test_the_pages_workflow_builds_the_way_each_project_does(projects) -> None:
    flask, node = projects["flask"], projects["node"]
    write_project(flask.root, {"mkdocs.yml": "site_name: Shop\n", "docs/index.md": "# Shop\n"})
    package = (node.root / "package.json").read_text().replace(
        '"start": "node server.js"', '"start": "node server.js",\n    "build": "vite build"')
    write_project(node.root, {"package.json": package})

    docs = flask.ok(PAGES, write=True, branch="release/docs")
    site = node.ok(PAGES, write=True)
    assert (docs["builder"], docs["site_dir"]) == ("mkdocs", "_site")
    assert (site["builder"], site["site_dir"]) == ("npm", "dist")
    mk = yaml.safe_load((flask.root / ".github/workflows/pages.yml").read_text())
    js = yaml.safe_load((node.root / ".github/workflows/pages.yml").read_text())
    for workflow in (mk, js):
        assert set(workflow) >= {"on", "jobs", "permissions"} and list(workflow["jobs"]) == [
            "build", "deploy"]
        assert workflow["permissions"] == {"contents": "read", "pages": "write",
                                           "id-token": "write"}
        assert workflow["jobs"]["deploy"]["steps"][0]["uses"] == "actions/deploy-pages@v4"
    assert mk["on"]["push"]["branches"] == ["release/docs"]
    assert "mkdocs build --strict --site-dir \"_site\"" in steps(mk)
    assert "actions/setup-python@v5" in steps(mk) and "actions/setup-node@v4" not in steps(mk)
    assert "npm run build" in steps(js) and "actions/setup-node@v4" in steps(js)
    node_step = next(s for s in js["jobs"]["build"]["steps"] if s.get("with", {}).get(
        "node-version"))
    assert node_step["with"]["node-version"] == node_lts_within(">=18")  # not the EOL 18
    # the preview a user reads is the file, not a redacted version of it
    assert yaml.safe_load(docs["content"]) == mk


def test_a_static_site_and_bad_branches(flask_project: Project) -> None:
    body = flask_project.ok(PAGES, site_dir="public")
    assert body["builder"] == "static" and yaml.safe_load(body["content"])["jobs"]["build"][
        "steps"][-1]["with"]["path"] == "public"
    assert "branch" in flask_project.post(PAGES, status=422, branch="--force")["fields"]
    assert "site_dir" in flask_project.post(PAGES, status=422, site_dir="/etc")["fields"]


def test_gitignore_fits_the_language_and_always_hides_secrets(projects) -> None:
    for name, project in projects.items():
        body = project.ok(GITIGNORE, write=True)
        lines = (project.root / ".gitignore").read_text().splitlines()
        assert {".env", ".scp-ledger/"} <= set(lines) and "!.env.example" in lines
        assert ("node_modules/" in lines) == (name == "node")
        assert ("__pycache__/" in lines) == (name == "flask")
        assert body["framework"] == {"flask": "flask", "node": "express"}[name]
        (project.root / ".env").write_text("SECRET_KEY=x\n")
        (project.root / ".env.example").write_text("SECRET_KEY=\n")
        ignored = git(project.root, "check-ignore", ".env", ".env.example", check=False)
        assert ignored.split() == [".env"]  # real git agrees: .env hidden, the example kept
    assert projects["node"].post(GITIGNORE, status=409, write=True)["paths"] == [".gitignore"]


def test_quality_config_merges_into_pyproject(flask_project: Project) -> None:
    original = '[project]\nname = "shop"\nrequires-python = ">=3.10"\n\n[tool.black]\n' \
               'line-length = 88\n'
    write_project(flask_project.root, {"pyproject.toml": original})
    body = flask_project.ok(QUALITY, write=True, strict=True, line_length=88)
    text = (flask_project.root / "pyproject.toml").read_text()
    assert text.startswith(original) and body["kept_sections"] == []
    # .python-version (3.11.7) pins the version more closely than requires-python
    tool = tomllib.loads(text)["tool"]
    assert tool["ruff"]["line-length"] == 88 and tool["ruff"]["target-version"] == "py311"
    assert tool["mypy"] == {"python_version": "3.11", "strict": True,
                            "ignore_missing_imports": True}
    assert tool["pytest"]["ini_options"]["testpaths"] == ["tests"]
    assert tool["black"] == {"line-length": 88}

    refused = flask_project.post(QUALITY, status=409, write=True, tools=["mypy"])
    assert refused["paths"] == ["pyproject.toml [tool.mypy]"]
    preview = flask_project.ok(QUALITY, tools=["mypy", "ruff"])
    assert preview["kept_sections"] == ["mypy", "ruff"] and preview["tools"] == []
    flask_project.ok(QUALITY, write=True, overwrite=True, tools=["mypy"])
    tool = tomllib.loads((flask_project.root / "pyproject.toml").read_text())["tool"]
    assert "strict" not in tool["mypy"] and tool["mypy"]["check_untyped_defs"] is True
    assert tool["ruff"]["line-length"] == 88 and tool["black"] == {"line-length": 88}

    # the real tools read what was written
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "--show-settings", "app.py"],
                          cwd=flask_project.root, capture_output=True, text=True, check=False)
    assert ruff.returncode == 0 and "line_length = 88" in ruff.stdout, ruff.stderr
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=flask_project.root, capture_output=True, text=True, check=False)
    assert "1 passed" in tests.stdout, tests.stdout + tests.stderr


def test_quality_config_in_separate_files(flask_project: Project) -> None:
    body = flask_project.ok(QUALITY, write=True, target="separate", tools=["ruff", "mypy"])
    assert [f["path"] for f in body["files"]] == ["ruff.toml", "mypy.ini"]
    ruff = tomllib.loads((flask_project.root / "ruff.toml").read_text())
    assert ruff["target-version"] == "py311" and ruff["lint"]["select"][0] == "E"
    mypy = configparser.ConfigParser()
    mypy.read(flask_project.root / "mypy.ini")
    assert mypy["mypy"]["python_version"] == "3.11" and mypy["mypy"]["check_untyped_defs"]
    assert flask_project.post(QUALITY, status=409, write=True, target="separate",
                              tools=["ruff"])["paths"] == ["ruff.toml"]


def test_a_node_project_gets_eslint_and_prettier(node_project: Project) -> None:
    body = node_project.ok(QUALITY, write=True, line_length=90)
    assert body["tools"] == ["eslint", "prettier"]
    eslint = (node_project.root / "eslint.config.mjs").read_text()
    assert 'sourceType: "commonjs"' in eslint and "globals.node" in eslint
    prettier = (node_project.root / ".prettierrc.json").read_text()
    assert json.loads(prettier) == {"printWidth": 90, "singleQuote": True, "semi": True,
                                    "trailingComma": "all"}
    assert not (node_project.root / "pyproject.toml").exists()
