"""Git: commit, pull, push and remotes of the project, with real git through GitPython.

User names (remotes, branches) are checked by pattern and every operand follows
``--``, so ``--upload-pack=…`` can never reach git as an option; remote URLs are
limited to https, ssh, scp-like ``user@host:path``, ``file://`` and plain paths.
Nothing ever forces: push sends no ``--force`` and refuses ``+refspec``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from controlplane.core.actions import Action, ActionContext, Example, ProjectPath, register
from controlplane.core.errors import Conflict
from controlplane.core.integrations._cli_tools import Name, RefName
from controlplane.core.integrations._git_porcelain import (
    GitResult,
    current_branch,
    execute,
    head_sha,
    literal,
    not_a_repository,
    null_separated,
    open_repo,
    run_git,
)

_HOST = r"[A-Za-z0-9][A-Za-z0-9.-]*"
_URL_FORMS = (
    rf"https://{_HOST}(:\d{{1,5}})?(/\S*)?",  # no user@: credentials belong in a helper
    rf"ssh://([A-Za-z0-9][\w.-]*@)?{_HOST}(:\d{{1,5}})?/\S*",
    rf"[A-Za-z0-9][\w.-]*@{_HOST}:[^\s:]\S*",  # scp-like git@host:path
    r"file:///?[^:]+",
    r"(/|\.{1,2}/|[\w.])[^:]*",  # a path; no ':' (git would read host:path as ssh)
)


def _remote_url(value: str) -> str:
    if value.startswith("-") or re.search(r"[\x00-\x1f\x7f]", value):
        raise ValueError("must not start with '-' or contain control characters")
    if not any(re.fullmatch(form, value) for form in _URL_FORMS):
        raise ValueError("expected https://host/path, ssh://[user@]host/path, user@host:path, "
                         "file:///path or a path")
    return value


RemoteURL = Annotated[str, Field(max_length=2048, description="https://…, ssh://…, "
                                 "git@host:path, file://… or a path"),
                      AfterValidator(_remote_url)]


class NothingToCommit(Conflict):
    code = "nothing_to_commit"


# --- commit --------------------------------------------------------------------------------

class CommitParams(BaseModel):
    message: str = Field(..., min_length=1, max_length=10_000, description="the commit message")
    paths: list[ProjectPath] | None = Field(
        None, max_length=1000, description="files or directories to commit (default: every "
                                           "change, untracked files included)")
    allow_empty: bool = Field(False, description="record a commit even without changes")

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the message is empty")
        return value


def _status_args(params: CommitParams) -> list[str]:
    return ["status", "--porcelain=v1", "-z", "--untracked-files=all", "--",
            *literal(params.paths or [])]


def parse_status(output: str) -> list[dict[str, str]]:
    """``git status --porcelain=v1 -z`` as ``[{"path", "status"}]`` (a rename's source skipped)."""
    items, entries = null_separated(output), []
    index = 0
    while index < len(items):
        code, path = items[index][:2], items[index][3:]
        entries.append({"path": path, "status": code.strip()})
        index += 2 if code[0] in "RC" else 1
    return entries


def refuse_empty_commit(root: Any, params: Any) -> None:
    """Precheck: 409 ``nothing_to_commit`` before any run (git trouble is left to the run)."""
    if params.allow_empty:
        return
    status = execute(root, _status_args(params), timeout=60)
    if status.ok and not parse_status(status.stdout):
        raise NothingToCommit("nothing to commit: the working tree has no change"
                              + (" in the given paths" if params.paths else ""))


def commit(ctx: ActionContext, params: CommitParams) -> dict[str, Any]:
    """Stage the changes (all, or *paths*) and commit them; hooks run as usual."""
    repo = open_repo(ctx.project_root)
    if repo is None:
        return not_a_repository(ctx.project_root)
    status = run_git(ctx, *_status_args(params), quiet=True, branch=current_branch(repo))
    changes = parse_status(status.stdout)
    if not status.ok:
        return status.answer()
    if not changes and not params.allow_empty:  # it went between the precheck and now
        return {"ok": False, "error": {"code": "nothing_to_commit",
                                       "message": "nothing to commit"}}
    pathspec = literal(params.paths or [])
    added = run_git(ctx, "add", "--all", "--", *pathspec)
    if not added.ok:
        return added.answer()
    done = run_git(ctx, "commit", f"--message={params.message}",
                   *(["--allow-empty"] if params.allow_empty else []),
                   *(["--", *pathspec] if params.paths else []))
    sha = head_sha(repo) if done.ok else None
    if sha and ctx.run is not None:
        ctx.run.summary = f"commit {sha[:10]}: {params.message.splitlines()[0][:100]}"
    return done.answer(commit=sha, branch=current_branch(repo), files_changed=len(changes),
                       files=changes[:200])


# --- pull and push -------------------------------------------------------------------------

class SyncParams(BaseModel):
    model_config = ConfigDict(regex_engine="python-re")  # RefName's pattern has lookaheads

    remote: Name = Field("origin", description="the remote's name")
    branch: RefName | None = Field(None, description="the branch (default: the current one)")


class PullParams(SyncParams):
    ff_only: bool = Field(True, description="only fast-forward (--ff-only); off: merge")


class PushParams(SyncParams):
    set_upstream: bool = Field(False, description="make it the branch's upstream (-u)")


def _branch(ctx: ActionContext, params: SyncParams) -> tuple[Any, str | None, dict[str, Any]]:
    repo = open_repo(ctx.project_root)
    if repo is None:
        return None, None, not_a_repository(ctx.project_root)
    branch = params.branch or current_branch(repo)
    if branch is None:
        return repo, None, {"ok": False, "error": {"code": "detached_head", "message":
                                                   "HEAD is detached: name the branch"}}
    return repo, branch, {}


def pull(ctx: ActionContext, params: PullParams) -> dict[str, Any]:
    """``git pull`` of one branch of one remote: fast-forward only unless told to merge."""
    repo, branch, refusal = _branch(ctx, params)
    if refusal:
        return refusal
    before = head_sha(repo)
    mode = ["--ff-only"] if params.ff_only else ["--ff", "--no-edit"]
    done = run_git(ctx, "pull", *mode, "--no-rebase", "--", params.remote, str(branch),
                   remote=params.remote, branch=branch)
    if done.error and re.search(r"Not possible to fast-forward|diverg", done.stderr):
        done.error = {"code": "not_fast_forward",
                      "message": f"{branch} and {params.remote}/{branch} have diverged: "
                                 "merge (ff_only: false) or rebase locally"}
    elif done.error and "CONFLICT" in done.stdout:
        done.error = {"code": "merge_conflict", "message": "the merge stopped on conflicts: "
                      "resolve them and commit, or run git merge --abort"}
    after = head_sha(repo)
    return done.answer(remote=params.remote, branch=branch, before=before, after=after,
                       updated=before != after)


PUSH_FLAGS = {" ": "updated", "+": "forced", "-": "deleted", "*": "new", "!": "rejected",
              "=": "up_to_date"}


def parse_push(output: str) -> dict[str, Any]:
    """``git push --porcelain``: one ``flag<TAB>from:to<TAB>summary`` line per ref."""
    refs = []
    for line in output.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and len(parts[0]) == 1 and parts[0] in PUSH_FLAGS:
            refs.append({"ref": parts[1].split(":")[-1], "flag": PUSH_FLAGS[parts[0]],
                         "summary": parts[2]})
    counts = {name: sum(ref["flag"] == name for ref in refs) for name in PUSH_FLAGS.values()}
    return {"refs": refs, **counts}


def push(ctx: ActionContext, params: PushParams) -> dict[str, Any]:
    """``git push`` of one branch, never forced; a rejected ref fails the run."""
    repo, branch, refusal = _branch(ctx, params)
    if refusal:
        return refusal
    done = run_git(ctx, "push", "--porcelain", *(["--set-upstream"] if params.set_upstream
                                                  else []),
                   "--", params.remote, str(branch), remote=params.remote, branch=branch)
    parsed = parse_push(done.stdout)
    if parsed["rejected"]:
        done.error = {"code": "rejected", "message": "; ".join(
            f"{ref['ref']}: {ref['summary']}" for ref in parsed["refs"] if ref["flag"] ==
            "rejected")}
    return done.answer(remote=params.remote, branch=branch, commit=head_sha(repo), **parsed)


# --- remotes -------------------------------------------------------------------------------

class RemoteParams(BaseModel):
    name: Name = Field(..., description="the remote's name")


class RemoteAddParams(RemoteParams):
    url: RemoteURL


class RemoteRenameParams(RemoteParams):
    new_name: Name = Field(..., description="its new name")


class RemoteURLParams(RemoteAddParams):
    push: bool = Field(False, description="set the push URL only (--push)")


REMOTE_ERRORS = (("already exists", "remote_exists"), ("No such remote", "no_such_remote"))


def remote_urls(repo: Any) -> dict[str, str]:
    """Every remote and its fetch URL, from the config (no git process)."""
    reader = repo.config_reader()
    urls = {}
    for section in reader.sections():
        found = re.fullmatch(r'remote "(.+)"', section)
        if found and reader.has_option(section, "url"):
            urls[found.group(1)] = reader.get_value(section, "url")
    return urls


def _remote(ctx: ActionContext, *args: str, name: str) -> dict[str, Any]:
    repo = open_repo(ctx.project_root)
    if repo is None:
        return not_a_repository(ctx.project_root)
    done: GitResult = run_git(ctx, "remote", *args, remote=name)
    for said, code in REMOTE_ERRORS:
        if done.error and said in done.stderr:
            done.error = {**done.error, "code": code}
    return done.answer(remote=name, remotes=remote_urls(repo))


def remote_add(ctx: ActionContext, params: RemoteAddParams) -> dict[str, Any]:
    return _remote(ctx, "add", "--", params.name, params.url, name=params.name)


def remote_remove(ctx: ActionContext, params: RemoteParams) -> dict[str, Any]:
    return _remote(ctx, "remove", "--", params.name, name=params.name)


def remote_rename(ctx: ActionContext, params: RemoteRenameParams) -> dict[str, Any]:
    return _remote(ctx, "rename", "--", params.name, params.new_name, name=params.new_name)


def remote_set_url(ctx: ActionContext, params: RemoteURLParams) -> dict[str, Any]:
    return _remote(ctx, "set-url", *(["--push"] if params.push else []), "--", params.name,
                   params.url, name=params.name)


PWNED = "--upload-pack=touch pwned"
URL = "https://github.com/example/project.git"
PUSHED = "To /srv/git/project.git\n*\trefs/heads/main:refs/heads/main\t[new branch]\nDone\n"

register(
    Action(path="/git/commit", subtype="git:commit", title="Git commit", params=CommitParams,
           writes=True,
           service=commit, lock_key="git:worktree", precheck=refuse_empty_commit,
           description="Stages every change (or the given paths) and commits. Nothing to "
                       "commit → 409 nothing_to_commit before any run starts.",
           example=Example(params={"message": "chore: checkpoint", "allow_empty": True},
                           tool="git", argv=("commit", "--message=chore: checkpoint",
                                             "--allow-empty"),
                           expect={"ok": True, "files_changed": 0, "branch": "main"},
                           invalid={"paths": ["../outside.txt"]}, invalid_field="paths.0")),
    Action(path="/git/pull", writes=True, subtype="git:pull", title="Git pull", params=PullParams,
           service=pull, lock_key="git:worktree",
           description="Pulls one branch of a remote, fast-forward only by default "
                       "(ff_only: false merges).",
           example=Example(params={"remote": "origin", "branch": "main"}, tool="git",
                           tool_output="Already up to date.\n",
                           argv=("pull", "--ff-only", "--no-rebase", "--", "origin", "main"),
                           expect={"updated": False, "remote": "origin"},
                           invalid={"remote": PWNED}, invalid_field="remote")),
    Action(path="/git/push", subtype="git:push", title="Git push", params=PushParams,
           service=push, lock_key="git:push:{remote}",
           description="Pushes one branch (never forced); refs parsed from --porcelain.",
           example=Example(params={"remote": "origin", "branch": "main"}, tool="git",
                           tool_output=PUSHED,
                           argv=("push", "--porcelain", "--", "origin", "main"),
                           expect={"new": 1, "rejected": 0, "branch": "main"},
                           invalid={"branch": "+main"}, invalid_field="branch")),
    Action(path="/git/remote/add", subtype="setup:git_remote", title="Add remote",
           params=RemoteAddParams, service=remote_add, lock_key="git:remotes",
           example=Example(params={"name": "upstream", "url": URL}, tool="git",
                           argv=("remote", "add", "--", "upstream", URL),
                           expect={"ok": True, "remote": "upstream"},
                           invalid={"name": PWNED}, invalid_field="name")),
    Action(path="/git/remote/remove", subtype="destroy:git_remote", title="Remove remote",
           params=RemoteParams, service=remote_remove, lock_key="git:remotes",
           destructive=True,
           example=Example(params={"name": "upstream"}, tool="git",
                           argv=("remote", "remove", "--", "upstream"),
                           expect={"ok": True, "remote": "upstream"},
                           invalid={"name": "-x"}, invalid_field="name")),
    Action(path="/git/remote/rename", subtype="setup:git_remote_rename", title="Rename remote",
           params=RemoteRenameParams, service=remote_rename, lock_key="git:remotes",
           example=Example(params={"name": "origin", "new_name": "upstream"}, tool="git",
                           argv=("remote", "rename", "--", "origin", "upstream"),
                           expect={"ok": True, "remote": "upstream"},
                           invalid={"new_name": "up stream"}, invalid_field="new_name")),
    Action(path="/git/remote/set-url", subtype="setup:git_remote_url", title="Set remote URL",
           params=RemoteURLParams, service=remote_set_url, lock_key="git:remotes",
           example=Example(params={"name": "origin", "url": "git@github.com:example/p.git"},
                           tool="git", argv=("remote", "set-url", "--", "origin",
                                             "git@github.com:example/p.git"),
                           expect={"ok": True, "remote": "origin"},
                           invalid={"url": PWNED}, invalid_field="url")),
)
