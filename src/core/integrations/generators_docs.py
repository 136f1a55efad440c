"""Documentation generators: CHANGELOG.md from the git history, README.md from the facts."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from controlplane.core.actions import ActionContext, Example, ProjectPath, register
from controlplane.core.errors import Conflict
from controlplane.core.integrations._cli_tools import RefName, classify
from controlplane.core.integrations._generated_files import GenerateParams, deliver
from controlplane.core.integrations._project_facts import ProjectFacts, project_facts
from controlplane.core.integrations._project_traits import (
    CHANGELOG_NAMES,
    README_NAMES,
    project_kind,
    towncrier,
)
from controlplane.core.integrations.generators_common import (
    NODE_EXAMPLE,
    generator,
    output_field,
    refuse_second_copy,
    render,
    render_facts,
    same_kind_siblings,
)
from controlplane.core.integrations.generators_docker import run_command

CONVENTIONAL = re.compile(r"^(?P<type>[A-Za-z]+)(?:\((?P<scope>[^)]*)\))?(?P<bang>!)?:\s*"
                          r"(?P<subject>\S.*)$")
GROUPS = {"feat": "Features", "fix": "Bug Fixes", "perf": "Performance",
          "refactor": "Refactoring", "docs": "Documentation", "test": "Tests", "build": "Build",
          "ci": "Continuous Integration", "style": "Style", "chore": "Chores",
          "revert": "Reverts"}
OTHER = "Other"
CONVENTIONAL_SHARE = 0.8  # a history "follows Conventional Commits" from this share on
RECORD, UNIT = "\x1e", "\x1f"


class ChangelogParams(GenerateParams):
    # RefName uses look-arounds, which only the python-re engine supports
    model_config = ConfigDict(regex_engine="python-re")

    output: ProjectPath = output_field("CHANGELOG.md", "file to write")
    since: RefName | None = Field(None, description="tag or commit to start after "
                                                    "(default: the latest tag, if any)")
    version: str = Field("Unreleased", pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$",
                         description="heading of this release")
    max_commits: int = Field(1000, ge=1, le=100_000, description="read at most this many commits")


class ReadmeParams(GenerateParams):
    output: ProjectPath = output_field("README.md", "file to write")
    title: str | None = Field(None, max_length=120, pattern=r"^[^\n\r<>]*$",
                              description="heading (default: the project's name)")


@dataclass
class Commit:
    sha: str
    type: str
    scope: str | None
    subject: str
    breaking: bool


def parse_commit(sha: str, subject: str, body: str) -> Commit:
    """A commit message read as a conventional commit (type ``other`` when it is not one)."""
    found = CONVENTIONAL.match(subject.strip())
    breaking = "BREAKING CHANGE" in body or "BREAKING-CHANGE" in body
    if found is None or found["type"].lower() not in GROUPS:
        return Commit(sha, "other", None, subject.strip(), breaking)
    return Commit(sha, found["type"].lower(), found["scope"] or None, found["subject"].strip(),
                  breaking or bool(found["bang"]))


def grouped(commits: list[Commit]) -> list[dict[str, Any]]:
    """Commits by group, in the usual order (features first, "Other" last)."""
    order = [*GROUPS, "other"]
    groups = []
    for kind in order:
        members = [c for c in commits if c.type == kind]
        if members:
            groups.append({"title": GROUPS.get(kind, OTHER), "commits": members})
    return groups


def git_failure(result: Any) -> dict[str, Any]:
    return {"ok": False, "error": classify("git", result) or {
        "code": "exit_status", "message": result.stderr.strip()}}


def generate_changelog(ctx: ActionContext, params: ChangelogParams) -> dict[str, Any]:
    """CHANGELOG.md from the git history since the latest tag, grouped by conventional-commit type
    (feat, fix, docs, refactor…, then Other); it says whether the history follows Conventional
    Commits (80% of its messages). Refused where the project keeps its changelog under another
    name (CHANGES.rst…) or writes it with towncrier.
    """
    fragments = towncrier(ctx.project_root)
    if fragments:
        return {"ok": False, "error": {"code": "towncrier",
                                       "message": towncrier_message(fragments, params.output)}}
    if params.write:
        check_changelog(ctx.project_root, params)
    head = ctx.tool(["git", "rev-parse", "--verify", "--quiet", "HEAD"])
    if not head.ok:
        if head.error and head.error["code"] == "tool_missing":
            return git_failure(head)
        return {"ok": False, "error": {"code": "no_commits",
                                       "message": "the repository has no commits yet"}}
    since = params.since
    if since is None:
        described = ctx.tool(["git", "describe", "--tags", "--abbrev=0"])
        since = described.stdout.strip() or None if described.ok else None
    else:
        checked = ctx.tool(["git", "rev-parse", "--verify", "--quiet", f"{since}^{{commit}}"])
        if not checked.ok:
            return {"ok": False, "error": {"code": "not_found",
                                           "message": f"{since} is not a tag or commit here"}}
    span = f"{since}..HEAD" if since else "HEAD"
    log = ctx.tool(["git", "log", "--no-merges", f"--max-count={params.max_commits}",
                    f"--format={RECORD}%h{UNIT}%s{UNIT}%b", span, "--"])
    if not log.ok:
        return git_failure(log)
    commits = [parse_commit(*[*record.split(UNIT, 2), "", ""][:3])
               for record in log.stdout.split(RECORD) if record.strip()]
    groups = grouped(commits)
    facts = project_facts(ctx.project_root)
    date = None if params.version == "Unreleased" else datetime.date.today().isoformat()
    matching = sum(c.type != "other" for c in commits)
    follows = bool(commits) and matching >= CONVENTIONAL_SHARE * len(commits)
    content = render("changelog.md.j2", name=facts.name, since=since, version=params.version,
                     date=date, groups=groups, follows=follows, matching=matching,
                     total=len(commits))
    return {"ok": True, "since": since, "commits": len(commits),
            "conventional": {"matching": matching, "follows": follows},
            "groups": {g["title"]: len(g["commits"]) for g in groups},
            **deliver(ctx.project_root, params.output, content, params, "output")}


def towncrier_message(fragments: str, output: str) -> str:
    return (f"this project writes its changelog with towncrier from {fragments}/: add a "
            f"fragment there (towncrier create) instead of generating {output}")


def check_changelog(root: Path, params: BaseModel) -> None:
    """A precheck: 409 for a towncrier project, or beside a changelog of another name or case."""
    fragments = towncrier(root) if getattr(params, "write", False) else None
    if fragments:
        raise Conflict(towncrier_message(fragments, str(vars(params)["output"])),
                       paths=[f"{fragments}/"])
    refuse_second_copy(CHANGELOG_NAMES, "changelog")(root, params)


def how_to_test(facts: ProjectFacts) -> str | None:
    """How the project's tests run, if it has any."""
    if facts.language == "python" and (facts.has_tests or facts.depends_on("pytest")):
        return "pytest"
    script = facts.node_scripts.get("test", "")
    if facts.language == "node" and script and "no test specified" not in script:
        return "npm test"
    return "go test ./..." if facts.language == "go" else None


def generate_readme(ctx: ActionContext, params: ReadmeParams) -> dict[str, Any]:
    """README.md from the project's facts: language, install, the variables its code reads,
    services, how to run (only what the project declares: a library has no command or port) and
    test it. Refused beside an existing readme of another name or case (readme.md, README.rst).
    """
    if params.write:
        refuse_second_copy(README_NAMES, "README")(ctx.project_root, params)
    facts = project_facts(ctx.project_root)
    kind = project_kind(facts)
    command = run_command(facts, kind) if facts.language in ("python", "node") else \
        (["go", "run", "."] if facts.language == "go" else None)
    sections = ["Getting started"] if facts.language in ("python", "node", "go") else []
    sections += [name for name, present in (("Configuration", facts.env_vars),
                                            ("Services", facts.services),
                                            ("Running", command),
                                            ("Tests", how_to_test(facts))) if present]
    content = render_facts("readme.md.j2", facts, title=params.title or facts.name,
                           command=command, test_command=how_to_test(facts), kind=kind.kind,
                           port=kind.port)
    existing = same_kind_siblings(ctx.project_root, params.output, README_NAMES)
    return {"ok": True, "language": facts.language, "kind": kind.kind, "sections": sections,
            "other_readmes": existing,
            **deliver(ctx.project_root, params.output, content, params, "output")}


register(
    generator(path="/docs/generate/changelog", subtype="generate:changelog",
              title="Generate CHANGELOG", params=ChangelogParams, service=generate_changelog,
              precheck=check_changelog,
              example=Example(params={"version": "1.0.0"}, files={"notes.txt": "hello\n"},
                              note="the walk's project has two commits: 'initial commit' and "
                                   "'example files', neither conventional",
                              expect={"since": None, "commits": 2, "groups": {"Other": 2},
                                      "written": False, "path": "CHANGELOG.md"},
                              invalid={"since": "--output=/tmp/x"}, invalid_field="since")),
    generator(path="/docs/generate/readme", subtype="generate:readme", title="Generate README",
              params=ReadmeParams, service=generate_readme,
              precheck=refuse_second_copy(README_NAMES, "README"),
              example=Example(params={"output": "docs/README.md", "write": True},
                              files=NODE_EXAMPLE,
                              expect={"language": "node", "written": True,
                                      "sections": ["Getting started", "Configuration", "Services",
                                                   "Running"]},
                              invalid={"output": "../README.md"}, invalid_field="output")),
)
