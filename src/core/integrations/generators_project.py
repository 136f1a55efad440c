"""Project-wide generators: the GitHub Pages CI workflow and a language-fitting .gitignore."""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field

from controlplane.core.actions import ActionContext, Example, ProjectPath, register
from controlplane.core.integrations._cli_tools import RefName
from controlplane.core.integrations._generated_files import GenerateParams, deliver
from controlplane.core.integrations._project_facts import ProjectFacts, project_facts
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


def site_builder(facts: ProjectFacts, wanted: str) -> str:
    """The builder the project uses: mkdocs, sphinx, npm (a build script) or static files."""
    if wanted != "auto":
        return wanted
    root = facts.root
    if (root / "mkdocs.yml").exists() or (root / "mkdocs.yaml").exists() or \
            facts.depends_on("mkdocs"):
        return "mkdocs"
    if (root / "docs" / "conf.py").exists():
        return "sphinx"
    if "build" in facts.node_scripts:
        return "npm"
    return "static"


def default_site_dir(facts: ProjectFacts, builder: str) -> str:
    if builder in ("mkdocs", "sphinx"):
        return "_site"
    if builder == "npm":
        return "build" if facts.depends_on("react-scripts") else "dist"
    return next((d for d in ("public", "docs", "site") if (facts.root / d).is_dir()), "public")


def generate_pages_ci(ctx: ActionContext, params: PagesCIParams) -> dict[str, Any]:
    """A GitHub Actions workflow that builds the site (mkdocs, sphinx, the npm build script or
    static files) and deploys it to GitHub Pages.
    """
    facts = project_facts(ctx.project_root)
    builder = site_builder(facts, params.builder)
    site_dir = params.site_dir or default_site_dir(facts, builder)
    content = render_facts("pages_workflow.yml.j2", facts, builder=builder, site_dir=site_dir,
                           branch=params.branch)
    workflow = yaml.safe_load(content)
    return {"ok": True, "builder": builder, "site_dir": site_dir, "branch": params.branch,
            "jobs": list(workflow["jobs"]),
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
