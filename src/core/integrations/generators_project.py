"""Project-wide generators: the GitHub Pages CI workflow and a language-fitting .gitignore."""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field

from controlplane.core.actions import ActionContext, Example, ProjectPath, register
from controlplane.core.integrations._cli_tools import RefName
from controlplane.core.integrations._generated_files import GenerateParams, deliver
from controlplane.core.integrations._project_facts import ProjectFacts, project_facts
from controlplane.core.integrations._project_traits import (
    SITE_BUILDERS,
    docs_requirements,
    site_builder_dependency,
    sphinx_source,
)
from controlplane.core.integrations.generators_common import (
    NODE_EXAMPLE,
    generator,
    output_field,
    render_facts,
)

Builder = Literal["auto", "mkdocs", "sphinx", "npm", "static"]


class PagesCIParams(GenerateParams):
    # RefName uses look-arounds, which only the python-re engine supports
    model_config = ConfigDict(regex_engine="python-re")

    output: ProjectPath = output_field(".github/workflows/pages.yml", "workflow file to write")
    branch: RefName = Field("main", description="branch whose pushes deploy the site")
    builder: Builder = Field("auto", description="how the site is built (auto: from the "
                                                 "project: mkdocs.yml, docs/conf.py, npm build)")
    site_dir: ProjectPath | None = Field(None, max_length=300,
                                         description="directory the build leaves the site in "
                                                     "(default: the builder's)")


class GitignoreParams(GenerateParams):
    output: ProjectPath = output_field(".gitignore", ".gitignore to write")


NPM_SITE_SCRIPTS = ("docs:build", "build:docs", "docs", "build")
STATIC_DIRS = ("public", "site", "_site", "docs")


def npm_site_script(facts: ProjectFacts) -> str | None:
    """The npm script that builds a site: a docs script, or a build run by a site builder."""
    for name in NPM_SITE_SCRIPTS:
        script = facts.node_scripts.get(name, "")
        if script and (name != "build" or site_builder_dependency(facts) or any(
                word.split("/")[-1] in script for word in SITE_BUILDERS)):
            return name
    return None


def static_site(facts: ProjectFacts) -> str | None:
    """A directory holding a ready site (its index.html), if the project has one."""
    return next((d for d in STATIC_DIRS if (facts.root / d / "index.html").is_file()), None)


def site_builder(facts: ProjectFacts, wanted: str) -> str | None:
    """The builder the project uses: mkdocs, sphinx, npm (a site build script) or a static
    site; None when it has no docs system."""
    if wanted != "auto":
        return wanted
    root = facts.root
    if (root / "mkdocs.yml").exists() or (root / "mkdocs.yaml").exists():
        return "mkdocs"
    if sphinx_source(root):
        return "sphinx"
    if npm_site_script(facts):
        return "npm"
    return "static" if static_site(facts) else None


def default_site_dir(facts: ProjectFacts, builder: str) -> str:
    if builder in ("mkdocs", "sphinx"):
        return "_site"
    if builder == "npm":
        return "build" if facts.depends_on("react-scripts", "@docusaurus/core") else "dist"
    return static_site(facts) or "public"


def python_steps(facts: ProjectFacts, builder: str, site_dir: str) -> tuple[str, str]:
    """The install and build commands of a Python docs build: the project itself and its docs
    dependencies (requirements file, ``docs`` extra or group, tox docs env), then the build."""
    root = facts.root
    own = any((root / m).exists() for m in ("pyproject.toml", "setup.py", "setup.cfg"))
    docs = docs_requirements(root)
    if docs is None:
        packages = ["sphinx"] if builder == "sphinx" else \
            ["mkdocs", *(["mkdocs-material"] if facts.depends_on("mkdocs-material") else [])]
        install = " ".join(["pip install", *(["."] if own else []), *packages])
    elif docs["kind"] == "requirements":
        install = " ".join(["pip install", *(["."] if own else []), "-r", docs["path"]])
    elif docs["kind"] == "extra":
        install = f'pip install ".[{docs["name"]}]"'
    elif docs["kind"] == "group":
        install = f"pip install . --group {docs['name']}"  # pip 25.1+
    else:
        install = " ".join(["pip install", *(["."] if own else []), *docs["packages"]])
    if builder == "sphinx":
        return install, f"sphinx-build -b html {sphinx_source(root) or 'docs'} \"{site_dir}\""
    return install, f'mkdocs build --strict --site-dir "{site_dir}"'


def generate_pages_ci(ctx: ActionContext, params: PagesCIParams) -> dict[str, Any]:
    """A GitHub Actions workflow that builds the site the way the project does (mkdocs or sphinx
    with the project and its docs dependencies, the npm script building its site, or a ready
    static site) and deploys it to GitHub Pages; refused when the project has no docs system.
    """
    facts = project_facts(ctx.project_root)
    builder = site_builder(facts, params.builder) or ("static" if params.site_dir else None)
    if builder is None:
        return {"ok": False, "error": {"code": "no_docs_system", "message": (
            "found no mkdocs.yml, Sphinx conf.py, npm script building a site, or ready site "
            f"(index.html in {', '.join(STATIC_DIRS)}): send \"builder\" and \"site_dir\"")}}
    site_dir = params.site_dir or default_site_dir(facts, builder)
    notes = []
    if builder == "static" and not (ctx.project_root / site_dir).is_dir():
        notes.append(f"{site_dir}/ does not exist yet: the workflow uploads it as it is")
    install, build = python_steps(facts, builder, site_dir) \
        if builder in ("mkdocs", "sphinx") else ("", "")
    if builder == "npm":
        build = f"npm run {npm_site_script(facts) or 'build'}"
    content = render_facts("pages_workflow.yml.j2", facts, builder=builder, site_dir=site_dir,
                           branch=params.branch, install=install, build=build)
    workflow = yaml.safe_load(content)
    return {"ok": True, "builder": builder, "site_dir": site_dir, "branch": params.branch,
            "jobs": list(workflow["jobs"]), "install": install, "build": build, "notes": notes,
            **deliver(ctx.project_root, params.output, content, params, "output")}


def generate_gitignore(ctx: ActionContext, params: GitignoreParams) -> dict[str, Any]:
    """A .gitignore for the project's language and framework; it always ignores .env files and the
    .scp-ledger/ view.
    """
    facts = project_facts(ctx.project_root)
    terraform = any(ctx.project_root.glob("*.tf")) or any(ctx.project_root.glob("*/*.tf"))
    content = render_facts("gitignore.j2", facts, terraform=terraform)
    return {"ok": True, "language": facts.language, "framework": facts.framework,
            **deliver(ctx.project_root, params.output, content, params, "output")}


register(
    generator(path="/pages/ci", subtype="generate:pages_ci", title="Generate CI workflow",
              params=PagesCIParams, service=generate_pages_ci,
              example=Example(params={"branch": "main", "write": True},
                              files={"mkdocs.yml": "site_name: Demo\n",
                                     "docs/index.md": "# Demo\n"},
                              expect={"builder": "mkdocs", "site_dir": "_site",
                                      "jobs": ["build", "deploy"], "written": True,
                                      "path": ".github/workflows/pages.yml"},
                              invalid={"branch": "--upload-pack=x"}, invalid_field="branch")),
    generator(path="/security/generate/gitignore", subtype="generate:gitignore",
              title="Generate .gitignore", params=GitignoreParams, service=generate_gitignore,
              example=Example(params={}, files=NODE_EXAMPLE,
                              expect={"language": "node", "framework": "express", "written": False,
                                      "path": ".gitignore"},
                              invalid={"output": "../.gitignore"}, invalid_field="output")),
)
