"""Pages: a site made of segments, built, merged and deployed to the ``gh-pages`` branch.

``.controlplane/pages.yaml`` lists the segments (name, source directory,
builder: the built-in ``static`` Markdown renderer or ``mkdocs``). Each
segment builds into ``.controlplane/pages/build/<name>/``; merge puts them
side by side under ``.controlplane/pages/site/`` with an index; deploy commits
that tree to ``gh-pages`` with git plumbing (the user's index and work tree
untouched) and can push it.
"""

from __future__ import annotations

import html
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from controlplane.core.actions import (
    Action,
    ActionContext,
    Example,
    project_path,
    register,
    validate_model,
)
from controlplane.core.errors import InvalidInput
from controlplane.core.integrations import _pages_render as render
from controlplane.core.integrations._atomic_files import replace_dir, write_atomic
from controlplane.core.integrations._pages_config import (
    BUILD,
    CONFIG,
    SITE,
    WORK,
    BuildAllParams,
    BuilderParams,
    DeployParams,
    InitParams,
    MergeParams,
    PagesConfig,
    Segment,
    SegmentParams,
    check_config,
    check_init,
    check_segment,
    load_config,
    segment,
)
from controlplane.core.integrations._pages_deploy import DeployFailed, commit_directory, push_branch
from controlplane.core.integrations._python_tools import python_tool

BUILDER_PACKAGES: dict[str, list[str]] = {"static": [], "mkdocs": ["mkdocs"]}


def failure(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}, **extra}


def init_pages(ctx: ActionContext, params: InitParams) -> dict[str, Any]:
    """Write ``.controlplane/pages.yaml`` with the given segments (default: the project's
    mkdocs.yml, else docs/ with the static builder)."""
    root = ctx.project_root
    segments = params.segments
    if segments is None:
        if (root / "mkdocs.yml").exists() or (root / "mkdocs.yaml").exists():
            segments = [Segment(name="docs", source=".", builder="mkdocs")]
        elif (root / "docs").is_dir():
            segments = [Segment(name="docs", source="docs", builder="static")]
        else:
            return failure("no_segments", "the project has neither mkdocs.yml nor docs/: send "
                                          "\"segments\" (name, source, builder)")
    try:
        config = validate_model(PagesConfig, {"segments": [s.model_dump() for s in segments]},
                                {"project_root": root})
    except InvalidInput as exc:
        return failure("invalid_segments", "; ".join(f"{k}: {v}" for k, v in exc.fields.items()))
    if (root / CONFIG).exists() and not params.overwrite:
        return failure("exists", f"{CONFIG} exists: send \"overwrite\": true")
    text = "# Site segments built by the control plane (/pages/build/<name>).\n" + \
        yaml.safe_dump(config.model_dump(), sort_keys=False)
    write_atomic(root / CONFIG, text.encode(), root=root)
    ctx.run.output(f"wrote {CONFIG}")
    return {"ok": True, "path": CONFIG, "segments": config.model_dump()["segments"]}


def install_builder(ctx: ActionContext, params: BuilderParams) -> dict[str, Any]:
    """Install a builder's packages into the project's environment (static needs none)."""
    packages = BUILDER_PACKAGES[params.name]
    if not packages:
        return {"ok": True, "builder": params.name, "installed": [],
                "message": "the static builder is built in: nothing to install"}
    argv = [*python_tool(ctx.project_root, "pip"), "install", "--disable-pip-version-check",
            *packages]
    result = ctx.tool(argv)
    answer: dict[str, Any] = {"ok": result.ok, "builder": params.name, "argv": argv,
                              "installed": packages if result.ok else [],
                              "exit_code": result.exit_code}
    if result.error:
        answer["error"] = result.error
    return answer


def build_segment(ctx: ActionContext, seg: Segment, progress: bool = False) -> dict[str, Any]:
    """Build one segment into ``.controlplane/pages/build/<name>/`` (swapped in when done)."""
    root = ctx.project_root
    source = project_path(root, seg.source, "source")
    if not source.is_dir():
        return failure("no_source", f"{seg.source} is not a directory", segment=seg.name)
    target = project_path(root, f"{BUILD}/{seg.name}", "name")
    target.parent.mkdir(parents=True, exist_ok=True)
    (root / WORK / ".gitignore").write_text("# build output of /pages\n*\n")
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{seg.name}."))
    try:
        if seg.builder == "mkdocs":
            answer = build_mkdocs(ctx, source, staging)
            if not answer["ok"]:
                return {**answer, "segment": seg.name}
            written = sorted(p.relative_to(staging).as_posix()
                             for p in staging.rglob("*") if p.is_file())
        else:
            def emit(name: str, done: int, total: int) -> None:
                ctx.run.output(f"{seg.name}: {name}")
                if progress:
                    ctx.run.progress(done, total)

            written = render.build_static(source, staging, seg.name, emit)
        replace_dir(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"ok": True, "segment": seg.name, "builder": seg.builder, "output": f"{BUILD}/"
            f"{seg.name}", "files": written, "count": len(written)}


def build_mkdocs(ctx: ActionContext, source: Path, out: Path) -> dict[str, Any]:
    """``mkdocs build`` of the segment's mkdocs.yml into *out*, through the tool runner."""
    config = next((source / n for n in ("mkdocs.yml", "mkdocs.yaml") if (source / n).exists()),
                  None)
    if config is None:
        return failure("no_mkdocs_config", f"no mkdocs.yml in {source.name}")
    argv = [*python_tool(ctx.project_root, "mkdocs"), "build", "--clean",
            f"--config-file={config}", f"--site-dir={out}"]
    result = ctx.tool(argv)
    answer: dict[str, Any] = {"ok": result.ok, "argv": argv}
    if result.error:
        answer["error"] = result.error
    return answer


def build_one(ctx: ActionContext, params: SegmentParams) -> dict[str, Any]:
    """Build the segment named in the URL."""
    return build_segment(ctx, segment(ctx.project_root, params.name))


def build_stream(ctx: ActionContext, params: SegmentParams) -> dict[str, Any]:
    """The same build, reporting progress as each file is written (for async clients)."""
    return build_segment(ctx, segment(ctx.project_root, params.name), progress=True)


def build_all(ctx: ActionContext, params: BuildAllParams) -> dict[str, Any]:
    """Build every segment in order; failed ones are named."""
    results, failed = {}, []
    for seg in load_config(ctx.project_root).segments:
        answer = build_segment(ctx, seg)
        results[seg.name] = {k: v for k, v in answer.items() if k != "files"}
        if not answer["ok"]:
            failed.append(seg.name)
            if params.fail_fast:
                break
    answer = {"ok": not failed, "built": [n for n, r in results.items() if r["ok"]],
              "failed": failed, "segments": results}
    if failed:
        answer["error"] = {"code": "build_failed", "message": f"failed: {', '.join(failed)}"}
    return answer


def merge_site(ctx: ActionContext, params: MergeParams) -> dict[str, Any]:
    """Put every segment's build under ``site/<name>/`` with an index page linking them."""
    root = ctx.project_root
    segments = load_config(root).segments
    missing = [s.name for s in segments if not (root / BUILD / s.name).is_dir()]
    if missing:
        return failure("not_built", f"build first (/pages/build-all): {', '.join(missing)}",
                       missing=missing)
    site = root / SITE
    site.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=site.parent, prefix=".site."))
    try:
        for seg in segments:
            shutil.copytree(root / BUILD / seg.name, staging / seg.name)
        links = "\n".join(f'<li><a href="{html.escape(s.name)}/index.html">'
                          f"{html.escape(s.name)}</a></li>" for s in segments)
        index = render.page(params.title, f"<h1>{html.escape(params.title)}</h1>\n"
                                          f"<ul>\n{links}\n</ul>\n")
        (staging / "index.html").write_text(index, encoding="utf-8")
        (staging / ".nojekyll").write_text("")
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*")
                       if p.is_file())
        replace_dir(staging, site)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ctx.run.output(f"merged {len(segments)} segments into {SITE} ({len(files)} files)")
    return {"ok": True, "site": SITE, "segments": [s.name for s in segments],
            "files": len(files)}


def deploy_site(ctx: ActionContext, params: DeployParams) -> dict[str, Any]:
    """Commit the merged site on the branch (and push it); the work tree is not touched."""
    site = ctx.project_root / SITE
    if not site.is_dir():
        return failure("not_merged", f"no merged site in {SITE}: run /pages/merge first")
    try:
        answer = {"ok": True, "branch": params.branch,
                  **commit_directory(ctx, site, params.branch, params.message)}
        if params.remote:
            answer.update(push_branch(ctx, params.remote, params.branch))
    except DeployFailed as exc:
        return failure(exc.code, str(exc), branch=params.branch)
    return answer


EXAMPLE_CONFIG = "segments:\n- name: docs\n  source: docs\n  builder: static\n"
EXAMPLE_DOCS = {"docs/index.md": "# Docs\n\nSee the [guide](guide.md).\n",
                "docs/guide.md": "# Guide\n\n```sh\nmake\n```\n"}
BUILT = {CONFIG: EXAMPLE_CONFIG, **EXAMPLE_DOCS}

register(
    Action(path="/pages/init", subtype="setup:pages", title="Initialize pages", params=InitParams,
           writes=True,
           service=init_pages, lock_key="pages", precheck=check_init,
           description=f"Write {CONFIG}: the site's segments (name, source directory, builder).",
           example=Example(params={}, files=EXAMPLE_DOCS,
                           expect={"path": CONFIG, "segments": [
                               {"name": "docs", "source": "docs", "builder": "static"}]},
                           invalid={"segments": [{"name": "-docs", "source": "docs"}]},
                           invalid_field="segments.0.name")),
    Action(path="/pages/builders/<name>/install", writes=True, subtype="install:pages_builder",
           title="Install builder deps", params=BuilderParams, service=install_builder,
           integration="pages", lock_key="pages:builder:{name}",
           description="Install a builder's packages with the project's pip (mkdocs); the "
                       "static builder is built in.",
           example=Example(params={"name": "mkdocs"}, tool="pip",
                           argv=("install", "--disable-pip-version-check", "mkdocs"),
                           tool_output="Successfully installed mkdocs-1.6.1\n",
                           expect={"builder": "mkdocs", "installed": ["mkdocs"]},
                           invalid={"name": "sphinx"}, invalid_field="name")),
    Action(path="/pages/build/<name>", subtype="build:pages_segment", title="Build single segment",
           writes=True,
           params=SegmentParams, service=build_one, lock_key="pages", precheck=check_segment,
           description=f"Build one segment into {BUILD}/<name>/ (Markdown rendered to HTML by "
                       "the static builder, or mkdocs).",
           example=Example(params={"name": "docs"}, files=BUILT,
                           expect={"segment": "docs", "files": ["guide.html", "index.html"]},
                           invalid={"name": "-docs"}, invalid_field="name")),
    Action(path="/pages/build-all", subtype="build:pages_all", title="Build all segments",
           writes=True,
           params=BuildAllParams, service=build_all, lock_key="pages", precheck=check_config,
           description="Build every segment of the site in order.",
           example=Example(params={}, files=BUILT, expect={"built": ["docs"], "failed": []},
                           invalid={"fail_fast": "maybe"}, invalid_field="fail_fast")),
    Action(path="/pages/merge", writes=True, subtype="build:pages_merge", title="Merge segments",
           params=MergeParams, service=merge_site, lock_key="pages", precheck=check_config,
           description=f"Put the segments' builds side by side in {SITE}/ with an index page.",
           example=Example(params={"title": "Demo"},
                           files={CONFIG: EXAMPLE_CONFIG,
                                  f"{BUILD}/docs/index.html": "<h1>Docs</h1>\n"},
                           expect={"segments": ["docs"], "files": 3},
                           invalid={"title": ""}, invalid_field="title")),
    Action(path="/pages/deploy", writes=True, subtype="deploy:pages", title="Deploy to gh-pages",
           params=DeployParams, service=deploy_site, lock_key="pages",
           description="Commit the merged site to the gh-pages branch with git plumbing (your "
                       "index and work tree untouched); optionally push it to a remote.",
           example=Example(params={"message": "Publish"},
                           files={f"{SITE}/index.html": "<h1>Site</h1>\n"},
                           expect={"branch": "gh-pages", "files": 1, "changed": True},
                           invalid={"remote": "--upload-pack=touch pwned"},
                           invalid_field="remote")),
    Action(path="/pages/build-stream/<name>", writes=True, subtype="build:pages_stream",
           title="Build with SSE stream", params=SegmentParams, service=build_stream,
           lock_key="pages", precheck=check_segment,
           description="The segment build for async clients: answers 202 under "
                       "Prefer: respond-async; each file built streams as output and progress.",
           example=Example(params={"name": "docs"}, files=BUILT,
                           expect={"segment": "docs", "count": 2},
                           invalid={"name": ".hidden"}, invalid_field="name")),
)
