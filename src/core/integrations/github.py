"""GitHub with the gh CLI: dispatch a workflow, create a repository, change its visibility
and its default branch (the "git" page).

Each gh call is followed by one that reads back, as JSON, what it changed: the
dispatched workflow's run (``gh run list --json``), the repository's visibility or
default branch (``gh repo view --json``). Not logged in is ``tool_unavailable``.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from controlplane.core.actions import Action, ActionContext, Example, register
from controlplane.core.integrations._cli_tools import (
    Name,
    RefName,
    call_cli,
    flag_values,
    option,
    switches,
)

Repo = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$",
                            description="OWNER/REPO (default: the project's GitHub remote)")]
NewRepo = Annotated[str, Field(
    pattern=r"^([A-Za-z0-9][A-Za-z0-9-]{0,38}/)?[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$",
    description="NAME or OWNER/NAME of the repository to create")]
Workflow = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,127}$",
                                description="workflow file (ci.yml), name or id")]
InputKey = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$")]
Visibility = Literal["private", "public", "internal"]


def read_back(ctx: ActionContext, argv: list[str], done: dict[str, Any],
              fields: str, repo: str | None) -> dict[str, Any]:
    """After a change *done*, ask gh for *fields* of the repository as JSON."""
    if not done["ok"]:
        return done
    shown, _ = call_cli(ctx, ["gh", "repo", "view", f"--json={fields}",
                              *(["--", repo] if repo else [])], parse=json.loads)
    return {**shown, "changed_by": argv}


# --- actions --------------------------------------------------------------------------------

class DispatchParams(BaseModel):
    workflow: Workflow
    ref: RefName | None = Field(None, description="branch or tag to run on (default: the "
                                                  "repository's default branch)")
    inputs: dict[InputKey, Annotated[str, Field(max_length=10_000)]] = Field(
        default_factory=dict, max_length=25, description="workflow_dispatch inputs")
    repo: Repo | None = Field(None, description="OWNER/REPO (default: the project's remote)")


def parse_runs(stdout: str) -> dict[str, Any]:
    runs = json.loads(stdout or "[]")
    latest = runs[0] if runs else {}
    return {"run_url": latest.get("url"), "workflow_run_id": latest.get("databaseId"),
            "run_status": latest.get("status")}


def dispatch(ctx: ActionContext, params: DispatchParams) -> dict[str, Any]:
    """``gh workflow run`` with raw-string inputs, then the newest dispatched run's URL."""
    where = option("--repo", params.repo)
    inputs = flag_values("--raw-field", [f"{k}={v}" for k, v in sorted(params.inputs.items())])
    argv = ["gh", "workflow", "run", *where, *option("--ref", params.ref), *inputs, "--",
            params.workflow]
    answer, _ = call_cli(ctx, argv, repo=params.repo)
    if not answer["ok"]:
        return answer
    listed, _ = call_cli(ctx, ["gh", "run", "list", *where, f"--workflow={params.workflow}",
                               "--event=workflow_dispatch", "--json=url,databaseId,status",
                               "--limit=1"], parse=parse_runs)
    if not listed["ok"]:  # dispatched all the same: say so, and why the URL is missing
        listed = {"ok": True, "run_url": None, "lookup_error": listed["error"]}
    return {**listed, "argv": argv, "workflow": params.workflow}


class CreateParams(BaseModel):
    name: NewRepo
    visibility: Visibility = Field("private", description="who can see it")
    description: str | None = Field(None, max_length=350, pattern=r"^[^\x00-\x1f]*$",
                                    description="one-line description")
    from_project: bool = Field(True, description="create it from this project and add it as "
                                                 "a remote")
    remote: Name = Field("origin", description="remote name to add (with from_project)")
    push: bool = Field(False, description="push the project's commits (with from_project)")


def create(ctx: ActionContext, params: CreateParams) -> dict[str, Any]:
    """``gh repo create``; the new repository's URL."""
    argv = ["gh", "repo", "create", f"--{params.visibility}",
            *option("--description", params.description)]
    if params.from_project:
        argv += ["--source=.", f"--remote={params.remote}", *switches(params, push="--push")]

    def parse(stdout: str) -> dict[str, Any]:
        url = re.search(r"https://\S+", stdout)
        return {"url": url and url.group(0), "visibility": params.visibility}

    return call_cli(ctx, [*argv, "--", params.name], parse=parse, repo=params.name)[0]


class VisibilityParams(BaseModel):
    visibility: Visibility = Field(..., description="the new visibility")
    repo: Repo | None = Field(None, description="OWNER/REPO (default: the project's remote)")


def set_visibility(ctx: ActionContext, params: VisibilityParams) -> dict[str, Any]:
    """``gh repo edit --visibility``, then the visibility GitHub reports."""
    argv = ["gh", "repo", "edit", f"--visibility={params.visibility}",
            "--accept-visibility-change-consequences", *(["--", params.repo] if params.repo
                                                         else [])]
    done, _ = call_cli(ctx, argv, repo=params.repo)
    return read_back(ctx, argv, done, "nameWithOwner,url,visibility", params.repo)


class DefaultBranchParams(BaseModel):
    branch: RefName = Field(..., description="the branch to make the default")
    repo: Repo | None = Field(None, description="OWNER/REPO (default: the project's remote)")


def set_default_branch(ctx: ActionContext, params: DefaultBranchParams) -> dict[str, Any]:
    """``gh repo edit --default-branch``, then the default branch GitHub reports."""
    argv = ["gh", "repo", "edit", f"--default-branch={params.branch}",
            *(["--", params.repo] if params.repo else [])]
    done, _ = call_cli(ctx, argv, repo=params.repo)
    answer = read_back(ctx, argv, done, "nameWithOwner,url,defaultBranchRef", params.repo)
    if "defaultBranchRef" in answer:
        answer["default_branch"] = answer.pop("defaultBranchRef").get("name")
    return answer


# --- declarations ---------------------------------------------------------------------------

RUNS = json.dumps([{"databaseId": 9876543210, "status": "queued",
                    "url": "https://github.com/acme/shop/actions/runs/9876543210"}])
VIEWED = json.dumps({"nameWithOwner": "acme/shop", "url": "https://github.com/acme/shop",
                     "visibility": "PUBLIC", "defaultBranchRef": {"name": "trunk"}})

register(
    Action(path="/gh/actions/dispatch", subtype="ci:gh_dispatch", title="Dispatch workflow",
           params=DispatchParams, service=dispatch, integration="git",
           lock_key="gh:dispatch:{repo}:{workflow}", description=dispatch.__doc__ or "",
           example=Example(
               params={"workflow": "ci.yml", "ref": "main", "inputs": {"env": "staging"}},
               tool="gh", tool_output=RUNS,
               argv=("workflow", "run", "--ref=main", "--raw-field=env=staging", "--", "ci.yml"),
               expect={"run_url": "https://github.com/acme/shop/actions/runs/9876543210",
                       "workflow_run_id": 9876543210},
               invalid={"ref": "--upload-pack=touch pwned"}, invalid_field="ref")),
    Action(path="/gh/repo/create", subtype="setup:gh_repo", title="Create repo",
           params=CreateParams, service=create, integration="git", lock_key="gh:repo:{name}",
           description=create.__doc__ or "",
           example=Example(
               params={"name": "acme/shop", "description": "The shop"}, tool="gh",
               tool_output="https://github.com/acme/shop\n",
               argv=("repo", "create", "--private", "--description=The shop", "--source=.",
                     "--remote=origin", "--", "acme/shop"),
               expect={"url": "https://github.com/acme/shop", "visibility": "private"},
               invalid={"remote": "--upload-pack=touch pwned"}, invalid_field="remote")),
    Action(path="/gh/repo/visibility", subtype="setup:gh_visibility", title="Change visibility",
           params=VisibilityParams, service=set_visibility, integration="git",
           lock_key="gh:repo:{repo}", destructive=True, description=set_visibility.__doc__ or "",
           example=Example(
               params={"visibility": "public", "repo": "acme/shop"}, tool="gh",
               tool_output=VIEWED, argv=("repo", "view", "--json=nameWithOwner,url,visibility",
                                         "--", "acme/shop"),
               expect={"visibility": "PUBLIC", "nameWithOwner": "acme/shop"},
               invalid={"repo": "-rf/x"}, invalid_field="repo")),
    Action(path="/gh/repo/default-branch", subtype="setup:gh_default_branch",
           title="Set default branch", params=DefaultBranchParams, service=set_default_branch,
           integration="git", lock_key="gh:repo:{repo}",
           description=set_default_branch.__doc__ or "",
           example=Example(
               params={"branch": "trunk"}, tool="gh", tool_output=VIEWED,
               argv=("repo", "edit", "--default-branch=trunk"),
               expect={"default_branch": "trunk", "url": "https://github.com/acme/shop"},
               invalid={"branch": "-rf"}, invalid_field="branch")),
)
