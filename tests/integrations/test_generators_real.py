"""Generators on projects shaped like click, attrs and slugify (issue 15): what they write keeps
the project working, says only what is true of it, and refuses what does not apply.

The fixtures copy the parts of the real projects that tripped the generators: click's
``tests/test_utils/`` package, ruff isort settings, terminal variables and docs dependency group;
attrs' hatch-vcs version and pytest 9 ``[tool.pytest]``; slugify's ``readme.md`` and ``engines``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from controlplane.core.integrations._project_facts import node_lts_within, project_facts
from tests.conftest import bearer_client, git, make_repo
from tests.integrations.fixtures_projects import Project

CLICK_PYPROJECT = textwrap.dedent("""\
    [project]
    name = "click"
    version = "8.2.0"
    description = "Composable command line interface toolkit"
    requires-python = "<4.0,>=3.9"
    dependencies = ["colorama; platform_system == 'Windows'"]

    [dependency-groups]
    docs = ["pallets-sphinx-themes", "sphinx", "sphinx-tabs"]

    [build-system]
    requires = ["flit_core<4"]
    build-backend = "flit_core.buildapi"

    [tool.pytest.ini_options]
    testpaths = ["tests"]
    filterwarnings = ["error"]

    [tool.mypy]
    python_version = "3.9"
    files = ["src/click"]

    [tool.ruff]
    src = ["src"]

    [tool.ruff.lint]
    select = ["B", "E", "F", "I", "UP", "W"]
    ignore = ["E402", "E731"]

    [tool.ruff.lint.isort]
    force-single-line = true
    order-by-type = false
    """)

CLICK = {
    "pyproject.toml": CLICK_PYPROJECT,
    "CHANGES.rst": "Version 8.2.0\n-------------\n\n-   Drop support for Python 3.7.\n",
    "src/click/__init__.py": "from .utils import echo as echo\n",
    "src/click/utils.py": textwrap.dedent("""\
        import os
        import sys
        import typing as t


        def echo(message: t.Any = None, file: t.IO[t.Any] | None = None) -> None:
            print(message, file=file or sys.stdout)


        def get_app_dir(app_name: str) -> str:
            home = os.environ.get("XDG_CONFIG_HOME", os.path.expanduser("~/.config"))
            return os.path.join(home, app_name)


        def format_filename(filename: str) -> str:
            return os.fsdecode(filename)


        class LazyFile:
            pass


        class KeepOpenFile:
            pass
        """),
    "src/click/termui.py": textwrap.dedent("""\
        import os


        def pager() -> str:
            term = os.environ.get("TERM")
            less = os.environ.get("LESS", "")
            return os.environ.get("PAGER", "less") + (term or "") + less


        def editor() -> str | None:
            return os.environ.get("USER")
        """),
    "src/click/shell_completion.py": textwrap.dedent("""\
        import os


        def words() -> list[str]:
            return os.environ["COMP_WORDS"].split()
        """),
    "tests/conftest.py": "import pytest\n\n\n@pytest.fixture\ndef runner():\n    return 1\n",
    "tests/test_basic.py": textwrap.dedent("""\
        import os

        import click


        def test_echo():
            assert os.environ.get("CLICK_TEST_ONLY", "x")
            click.echo("hi")
        """),
    "tests/test_utils/__init__.py": "",
    "tests/test_utils/test_echo.py": "from click.utils import echo\n\n\n"
                                     "def test_echo():\n    echo('hi')\n",
    "docs/conf.py": "project = 'Click'\nextensions = ['pallets_sphinx_themes']\n",
    "docs/index.rst": "Click\n=====\n",
}

ATTRS = {
    "pyproject.toml": textwrap.dedent("""\
        [build-system]
        requires = ["hatchling", "hatch-vcs", "hatch-fancy-pypi-readme>=23.2.0"]
        build-backend = "hatchling.build"

        [project]
        name = "attrs"
        dynamic = ["version", "readme"]
        requires-python = ">=3.8"

        [project.optional-dependencies]
        docs = ["furo", "myst-parser", "sphinx", "sphinx-notfound-page"]

        [tool.hatch.version]
        source = "vcs"

        [tool.pytest]
        addopts = ["-ra", "--strict-markers"]
        testpaths = ["tests"]
        pythonpath = ["src"]
        """),
    "src/attr/__init__.py": "def define(cls):\n    return cls\n",
    "src/attrs/__init__.py": "from attr import define\n\n__all__ = ['define']\n",
    "tests/test_make.py": "import attr\n\n\ndef test_define():\n    assert attr.define\n",
    "changelog.d/towncrier_template.md.jinja": "{{ versiondata.version }}\n",
    "changelog.d/1234.change.md": "A change.\n",
    "CHANGELOG.md": "# Changelog\n\n## 24.2.0\n\n- Things.\n",
    "README.md": "# attrs\n",
}

SLUGIFY = {
    "package.json": json.dumps({
        "name": "@sindresorhus/slugify", "version": "2.2.1", "type": "module",
        "description": "Slugify a string", "exports": "./index.js", "main": "./index.js",
        "engines": {"node": ">=12"}, "scripts": {"test": "xo && ava && tsd"},
        "dependencies": {"@sindresorhus/transliterate": "^1.0.0", "escape-string-regexp": "^5.0.0"},
        "devDependencies": {"ava": "^3.15.0", "tsd": "^0.14.0", "xo": "^0.38.2"},
    }, indent=2) + "\n",
    "index.js": "export default function slugify(string) {\n  return string.toLowerCase();\n}\n",
    "test.js": "import test from 'ava';\nimport slugify from './index.js';\n\n"
               "test('main', t => {\n  t.is(slugify('Foo'), 'foo');\n});\n",
    "readme.md": "# slugify\n\n> Slugify a string\n",
    "license": "MIT\n",
}


def checkout(root: Path, files: dict[str, str], tag: str | None = None) -> Path:
    """*files* as a git checkout (one commit, optionally tagged), like the corpus prepares."""
    make_repo(root, commit=False)
    for relative, content in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(content)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Import the release")
    if tag:
        git(root, "tag", tag)
    return root


@pytest.fixture
def click(tmp_path: Path, make_app) -> Project:
    root = checkout(tmp_path / "click", CLICK, tag="8.1.7")
    return Project(root, bearer_client(make_app(REPO=root)))


@pytest.fixture
def attrs(tmp_path: Path, make_app) -> Project:
    root = checkout(tmp_path / "attrs", ATTRS, tag="24.2.0")
    return Project(root, bearer_client(make_app(REPO=root)))


@pytest.fixture
def slugify(tmp_path: Path, make_app) -> Project:
    root = checkout(tmp_path / "slugify", SLUGIFY, tag="v2.2.1")
    return Project(root, bearer_client(make_app(REPO=root)))


def status(root: Path) -> str:
    return git(root, "status", "--porcelain", "--untracked-files=all")


# --- versions from the right bound -----------------------------------------------------------

def test_versions_come_from_the_lower_bound_and_a_supported_lts(tmp_path: Path) -> None:
    click_facts = project_facts(checkout(tmp_path / "click", CLICK))
    assert click_facts.python_version == "3.9"  # "<4.0,>=3.9" once gave 4.0
    slug = project_facts(checkout(tmp_path / "slugify", SLUGIFY))
    assert slug.node_version == node_lts_within(">=12") and slug.node_version != "12"
    assert int(slug.node_version) >= 22


# --- defect 7: only the variables the application reads, defaults kept ----------------------

def test_env_example_lists_only_what_the_application_reads(click: Project) -> None:
    body = click.ok("/infra/env/generate-example")
    assert body["variables"] == []  # TERM, USER, PAGER, LESS, COMP_WORDS, XDG_…, tests' ones
    for name in ("TERM", "USER", "PAGER", "LESS", "COMP_WORDS", "XDG_CONFIG_HOME",
                 "CLICK_TEST_ONLY"):
        assert name not in body["content"]


def test_a_variable_with_a_default_is_commented_out_with_it(tmp_path: Path, make_app) -> None:
    root = checkout(tmp_path / "svc", {
        "requirements.txt": "flask\n",
        "app.py": "import os\nfrom flask import Flask\napp = Flask(__name__)\n"
                  "LEVEL = os.environ.get('LOG_LEVEL', 'info')\n"
                  "WORKERS = int(os.getenv('WORKERS', str(4)))\n"
                  "CACHE = os.environ['REDIS_URL']\n",
        "tests/test_app.py": "import os\nTOKEN = os.environ['TEST_ONLY_TOKEN']\n",
    })
    project = Project(root, bearer_client(make_app(REPO=root)))
    body = project.ok("/infra/env/generate-example", write=True)
    assert body["variables"] == ["LOG_LEVEL", "REDIS_URL", "WORKERS"]
    assert body["defaults"] == {"LOG_LEVEL": "info", "WORKERS": "str(4)"}
    text = (root / ".env.example").read_text()
    assert "\n# LOG_LEVEL=info\n" in text and "\nREDIS_URL=\n" in text
    assert "\nLOG_LEVEL=" not in text and "TEST_ONLY_TOKEN" not in text
    manifests = project.ok("/k8s/generate/manifests")["content"]
    config = next(d for d in yaml.safe_load_all(manifests) if d and d["kind"] == "ConfigMap")
    assert config["data"] == {"REDIS_URL": ""}  # "" for LOG_LEVEL would override "info"
    assert "LOG_LEVEL (info)" in manifests
    (root / ".gitignore").write_text(".env\n")
    filled = project.ok("/infra/env/generate-env", values={"LOG_LEVEL": "debug"}, write=True)
    assert "LOG_LEVEL" in filled["set"]
    env = (root / ".env").read_text()
    assert "\nLOG_LEVEL=debug\n" in env and "# WORKERS=str(4)" in env


# --- defect 5: Dockerfiles that install, and no invented command or port ---------------------

def test_a_library_gets_no_invented_command_or_port(click: Project) -> None:
    body = click.post("/docker/generate/dockerfile", write=True)
    assert body["status"] == "failed" and body["error"]["code"] == "nothing_to_run"
    assert "library" in body["error"]["message"] and '"command"' in body["error"]["message"]
    assert not (click.root / "Dockerfile").exists()  # never `CMD python -m click`, `EXPOSE 8000`
    given = click.ok("/docker/generate/dockerfile", command=["python", "-c", "import click"])
    assert given["command"] == ["python", "-c", "import click"] and given["port"] is None
    assert "EXPOSE" not in given["content"] and "python:3.9-slim" in given["content"]


def test_a_cli_runs_its_declared_command(tmp_path: Path, make_app) -> None:
    files = {**CLICK, "pyproject.toml": CLICK_PYPROJECT.replace(
        "[dependency-groups]", '[project.scripts]\nclick-demo = "click.utils:echo"\n\n'
                               "[dependency-groups]")}
    root = checkout(tmp_path / "cli", files)
    body = Project(root, bearer_client(make_app(REPO=root))).ok("/docker/generate/dockerfile")
    assert body["command"] == ["click-demo"] and body["port"] is None
    assert 'CMD ["click-demo"]' in body["content"] and "EXPOSE" not in body["content"]


def test_a_version_from_git_tags_is_pinned_for_the_build(attrs: Project) -> None:
    body = attrs.ok("/docker/generate/dockerfile", command=["python", "-c", "import attrs"])
    assert "ENV SETUPTOOLS_SCM_PRETEND_VERSION=24.2.0\n" in body["content"]
    assert any("hatch-vcs" in note for note in body["notes"])
    text = body["content"]
    assert text.index("PRETEND_VERSION") < text.index("pip install .")


# --- defect 6: READMEs true of the project, never a second one ------------------------------

def test_a_library_readme_claims_no_port_or_command(click: Project) -> None:
    body = click.ok("/docs/generate/readme")
    assert body["kind"] == "library" and "Running" not in body["sections"]
    assert "listens on port" not in body["content"] and "8000" not in body["content"]
    assert "A Python 3.9 library" in body["content"]


def test_readme_beside_an_existing_lowercase_readme_is_refused(slugify: Project) -> None:
    refused = slugify.post("/docs/generate/readme", status=409, write=True)
    assert refused["paths"] == ["readme.md"] and '"output": "readme.md"' in refused["message"]
    assert status(slugify.root) == ""  # no README.md beside readme.md
    preview = slugify.ok("/docs/generate/readme")
    assert preview["other_readmes"] == ["readme.md"] and preview["kind"] == "library"
    assert "listens on port" not in preview["content"]
    replaced = slugify.ok("/docs/generate/readme", output="readme.md", write=True,
                          overwrite=True)
    assert replaced["written"] and not (slugify.root / "README.md").exists()


# --- defect 11: the changelog says what the history is -------------------------------------

def test_a_changelog_does_not_claim_conventional_commits_it_does_not_have(
        click: Project) -> None:
    for message in ("Fix the pager on Windows", "feat: add a flag", "Update docs",
                    "Merge pull request #1 from x/y", "Bump version"):
        git(click.root, "commit", "-q", "--allow-empty", "-m", message)
    body = click.ok("/docs/generate/changelog", output="docs/CHANGELOG.md")
    assert body["conventional"] == {"matching": 1, "follows": False}
    assert "do not follow [Conventional Commits]" in body["content"]
    assert "(1 of 5 do)" in body["content"]
    refused = click.post("/docs/generate/changelog", status=409, write=True)
    assert refused["paths"] == ["CHANGES.rst"]  # click keeps its changelog there
    assert status(click.root) == ""


def test_towncrier_projects_get_no_generated_changelog(attrs: Project) -> None:
    refused = attrs.post("/docs/generate/changelog", status=409, output="NEW.md", write=True)
    assert refused["paths"] == ["changelog.d/"] and "towncrier" in refused["message"]
    body = attrs.post("/docs/generate/changelog", output="NEW.md")
    assert body["status"] == "failed" and body["error"]["code"] == "towncrier"
    assert status(attrs.root) == ""


# --- defect 3: tool config only where missing, never shadowing pyproject --------------------

def pytest_starts(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p",
                           "no:cacheprovider"], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
                               # the fixture's own "attr" would break installed plugins
                               "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}, check=False)


def test_quality_config_leaves_pytest_9_native_table_alone(attrs: Project) -> None:
    refused = attrs.post("/quality/generate/config", status=409, write=True)
    assert refused["paths"] == ["pyproject.toml [tool.pytest]"]
    assert status(attrs.root) == ""
    body = attrs.ok("/quality/generate/config", tools=["ruff", "mypy"], write=True)
    text = (attrs.root / "pyproject.toml").read_text()
    assert "[tool.pytest.ini_options]" not in text  # pytest refuses both tables
    assert body["tools"] == ["ruff", "mypy"]
    assert '[tool.ruff]\nline-length = 100\ntarget-version = "py38"' in text  # not py40
    started = pytest_starts(attrs.root)
    assert started.returncode == 0, started.stdout + started.stderr


def test_separate_files_never_shadow_the_pyproject_settings(click: Project) -> None:
    body = click.ok("/quality/generate/config", target="separate", write=True)
    assert body["files"] == [] and set(body["configured_in"]) == {"ruff", "mypy", "pytest"}
    assert body["configured_in"]["ruff"] == "pyproject.toml [tool.ruff]"
    assert status(click.root) == ""  # no ruff.toml / mypy.ini / pytest.ini


# --- defect 8: the Pages workflow builds the project's docs, or refuses ---------------------

def test_pages_ci_installs_the_project_and_its_docs_dependencies(click: Project,
                                                                 attrs: Project) -> None:
    body = click.ok("/pages/ci")
    assert body["builder"] == "sphinx"
    assert body["install"] == "pip install . --group docs"  # click's [dependency-groups] docs
    assert body["build"] == 'sphinx-build -b html docs "_site"'
    workflow = yaml.safe_load(body["content"])
    runs = [s.get("run") for s in workflow["jobs"]["build"]["steps"]]
    assert body["install"] in runs and "pip install sphinx" not in runs
    (attrs.root / "docs").mkdir()
    (attrs.root / "docs" / "conf.py").write_text("project = 'attrs'\n")
    assert attrs.ok("/pages/ci")["install"] == 'pip install ".[docs]"'


def test_pages_ci_refuses_a_project_without_a_docs_system(slugify: Project) -> None:
    body = slugify.post("/pages/ci", write=True)
    assert body["status"] == "failed" and body["error"]["code"] == "no_docs_system"
    assert '"site_dir"' in body["error"]["message"]
    assert status(slugify.root) == ""  # never a workflow uploading a public/ that is not there


# --- defect 2: a test template that shadows nothing and passes the project's ruff -----------

def test_the_test_template_keeps_clicks_suite_collecting(click: Project) -> None:
    body = click.ok("/testing/generate/template", module="src/click/utils.py", write=True)
    assert body["path"] == "tests/test_click_utils.py"  # not beside tests/test_utils/
    assert not (click.root / "tests" / "test_utils.py").exists()
    text = (click.root / body["path"]).read_text()
    assert "from click.utils import KeepOpenFile\nfrom click.utils import LazyFile\n" in text
    for argv in (["check", "--no-fix", body["path"]], ["format", "--check", body["path"]]):
        ruff = subprocess.run(["ruff", *argv], cwd=click.root, capture_output=True, text=True,
                              check=False)
        assert ruff.returncode == 0, ruff.stdout + ruff.stderr  # click's own config
    env = {**os.environ, "PYTHONPATH": str(click.root / "src"),
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p",
                                "no:cacheprovider"], cwd=click.root, capture_output=True,
                               text=True, env=env, check=False)
    assert collected.returncode == 0, collected.stdout
    shadowing = click.post("/testing/generate/template", module="src/click/utils.py",
                           output="tests/test_utils.py", write=True)
    assert shadowing["status"] == "failed" and shadowing["error"]["code"] == "shadows_module"
    assert "tests/test_utils/" in shadowing["error"]["message"]
