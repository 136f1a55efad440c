"""Committing a directory to a branch with git plumbing, leaving the user's work tree alone.

``git add`` runs against a temporary index (``GIT_INDEX_FILE``) with the site
directory as the work tree, then ``write-tree``, ``commit-tree`` and an
``update-ref`` that only moves the branch if it still points where it did
(compare and swap). The user's index, work tree and HEAD are never touched.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from controlplane.core.actions import ActionContext
from controlplane.core.tools import ToolResult

ZERO = "0" * 40


class DeployFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _git(ctx: ActionContext, *args: str, ok_codes: tuple[int, ...] = (0,), **options: Any
         ) -> ToolResult:
    result = ctx.tool(["git", *args], **options)
    if result.error and result.error["code"] in ("tool_missing", "timeout", "cancelled"):
        raise DeployFailed(result.error["code"], result.error["message"])
    if result.exit_code not in ok_codes:
        said = (result.stderr or result.stdout).strip().splitlines()
        raise DeployFailed("git_failed", f"git {args[0]}: {said[-1] if said else 'failed'}")
    return result


def commit_directory(ctx: ActionContext, site: Path, branch: str, message: str
                     ) -> dict[str, Any]:
    """Commit the tree of *site* on ``refs/heads/<branch>``; the result names the commit."""
    ref = f"refs/heads/{branch}"
    git_dir = _git(ctx, "rev-parse", "--absolute-git-dir").stdout.strip()
    head = _git(ctx, "symbolic-ref", "-q", "HEAD", ok_codes=(0, 1)).stdout.strip()
    if head == ref:
        raise DeployFailed("branch_checked_out", f"{branch} is checked out here: deploying "
                                                 "would change your work tree; switch first")
    with tempfile.TemporaryDirectory(prefix="scp-pages-index-") as tmp:
        env = {"GIT_DIR": git_dir, "GIT_WORK_TREE": str(site),
               "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(ctx, "add", "--all", "--force", "--", ".", cwd=site, extra_env=env)
        tree = _git(ctx, "write-tree", cwd=site, extra_env=env).stdout.strip()
        files = _git(ctx, "ls-files", "-z", cwd=site, extra_env=env).stdout.count("\0")
    found = _git(ctx, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", ok_codes=(0, 1))
    parent = found.stdout.strip() or None
    if parent and _git(ctx, "rev-parse", f"{parent}^{{tree}}").stdout.strip() == tree:
        return {"commit": parent, "tree": tree, "files": files, "changed": False}
    argv = ["commit-tree", tree, *(["-p", parent] if parent else [])]
    commit = _git(ctx, *argv, stdin_data=message + "\n").stdout.strip()
    _git(ctx, "update-ref", "-m", f"controlplane: {message}", ref, commit, parent or ZERO)
    return {"commit": commit, "tree": tree, "files": files, "changed": True, "parent": parent}


def push_branch(ctx: ActionContext, remote: str, branch: str) -> dict[str, Any]:
    """Push the branch to *remote* (never forced); the porcelain status line."""
    ref = f"refs/heads/{branch}"
    result = _git(ctx, "push", "--porcelain", "--", remote, f"{ref}:{ref}", ok_codes=(0, 1))
    status = next((line for line in result.stdout.splitlines() if f"{ref}:" in line), "")
    if result.exit_code != 0:
        said = (result.stderr or status or "push failed").strip().splitlines()[-1]
        raise DeployFailed("push_rejected" if status.startswith("!") else "git_failed",
                           f"git push {remote}: {said}")
    return {"remote": remote, "pushed": True, "push_status": status}
