"""Porcelain git through GitPython: non-interactive, output into the run, failures classified.

GitPython starts git in subprocesses of its own (not through ``core.tools``), so
this module gives it what the tool runner gives every other tool: the action's
environment made non-interactive (no terminal or askpass prompts, ssh in
``BatchMode``), stdin closed, a timeout, every output line streamed (redacted)
into the run, and the run error codes of ``run_cli`` (``tool_missing``,
``timeout``, ``exit_status``). The ledger's own git work uses pygit2, not this.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# without a git binary GitPython would refuse to import, taking every integration with it;
# quiet, a missing git is found when an action runs it (tool_missing)
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import git
from git.exc import GitCommandNotFound
from git.refs.symbolic import SymbolicReference

from controlplane.core.actions import ActionContext
from controlplane.core.integrations._cli_tools import tool_target
from controlplane.core.redact import redact
from controlplane.core.tools import _gated, _open_gate, missing_message, tool_env

_POLL = 0.1  # how often a running git is checked for its deadline or a cancel


def git_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """*env* (default ``os.environ``) with every way git could wait for a person shut."""
    result = tool_env(env)  # GIT_TERMINAL_PROMPT=0, GIT_SSH_COMMAND default
    ssh = result.get("GIT_SSH_COMMAND") or "ssh"
    if "batchmode" not in ssh.lower():
        result["GIT_SSH_COMMAND"] = f"{ssh} -o BatchMode=yes"
    # an empty GIT_ASKPASS wins over core.askPass and SSH_ASKPASS: no password dialog
    result.update(GIT_ASKPASS="", SSH_ASKPASS_REQUIRE="never", GCM_INTERACTIVE="never")
    return result


@dataclass
class GitResult:
    """What one git command did."""

    argv: list[str]  # without the executable
    exit_code: int | None
    stdout: str
    stderr: str
    error: dict[str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def answer(self, **fields: Any) -> dict[str, Any]:
        """The action's result: ``ok``, exit code and argv, *fields*, ``error`` if any."""
        result: dict[str, Any] = {"ok": self.ok, "exit_code": self.exit_code,
                                  "argv": ["git", *self.argv], **fields}
        if self.error is not None:
            result.update(ok=False, error=self.error)
        return result


def execute(root: Path, args: Iterable[str], env: Mapping[str, str] | None = None,
            timeout: float | None = None, run: Any = None) -> GitResult:
    """Run ``git *args`` in *root* through GitPython; never raises for git's own failures.

    git leads a process group of its own, noted in *run* (the action's run, if any), so a
    timeout, a cancel of the run or the server's death also stops its ssh. Like every tool
    of a run, it starts behind ``core.tools``' gate: it runs only once its group is journaled.
    """
    argv = list(args)
    environment = git_env(env)
    executable = git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git"
    tracked = hasattr(run, "attach_process")
    command = [executable, *argv]
    if tracked:  # git waits behind the tool runner's gate until its group is journaled
        found = shutil.which(executable, path=environment.get("PATH"))
        if found is None:
            return GitResult(argv, None, "", "", {"code": "tool_missing",
                                                  "message": missing_message("git")})
        command = _gated([found, *argv], found, keep_stdin=False)
    try:
        handle = git.Git(str(root)).execute(command, as_process=True, env=environment,
                                            start_new_session=True,
                                            istream=subprocess.PIPE if tracked else None)
    except GitCommandNotFound:
        return GitResult(argv, None, "", "", {"code": "tool_missing",
                                              "message": missing_message("git")})
    process = handle.proc
    assert process is not None  # as_process: the started git (or its gate)
    cancel: threading.Event | None = getattr(run, "cancel_requested", None)
    if tracked:
        run.attach_process(process.pid, process.pid)  # journaled: a crash from here is found
        _open_gate(process, keep_stdin=False)
        process.stdin = None  # closed by the gate: communicate() must not flush it
    try:
        out, err, stopped = _wait(process, timeout, cancel)
    finally:
        if tracked:
            run.detach_process(process.pid)
    result = GitResult(argv, process.returncode, _text(out), _text(err), stopped)
    if stopped is None and process.returncode != 0:
        message = f"git {argv[0]} exited with status {process.returncode}"
        result.error = {"code": "exit_status", "message": redact(_said(message, result.stderr))}
    return result


def _wait(process: subprocess.Popen[bytes], timeout: float | None,
          cancel: threading.Event | None) -> tuple[bytes, bytes, dict[str, str] | None]:
    """Its output once git exits; killed (its whole group) at the deadline or on a cancel."""
    deadline = None if timeout is None else time.monotonic() + timeout
    stopped = None
    while True:
        try:
            out, err = process.communicate(timeout=_POLL)
            break
        except subprocess.TimeoutExpired:
            if cancel is not None and cancel.is_set():
                stopped = {"code": "cancelled", "message": "git was cancelled"}
            elif deadline is not None and time.monotonic() > deadline:
                stopped = {"code": "timeout", "message": f"git timed out after {timeout:g}s"}
            if stopped:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
    return out, err, stopped


def _said(message: str, stderr: str) -> str:
    """*message* with git's own reason: its ``fatal:``/``error:`` lines, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    reasons = [line for line in lines if re.match(r"(fatal|error|ssh|remote):", line)]
    said = "; ".join(reasons[:3]) if reasons else (lines[-1] if lines else "")
    return f"{message}: {said}" if said else message


def _text(data: bytes | str | None) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data or ""


def run_git(ctx: ActionContext, *args: str, quiet: bool = False, **target: Any) -> GitResult:
    """``git *args`` for an action: in its project, its environment, output into its run.

    *quiet* keeps stdout (e.g. a file list) out of the run's output; stderr always goes in.
    """
    if ctx.run is not None and (target or "tool" not in ctx.run.target):
        tool_target(ctx, "git", **target)
    result = execute(ctx.project_root, args, ctx.env, ctx.timeout, ctx.run)
    if ctx.run is not None:
        streams = (("stderr", result.stderr),) if quiet else \
            (("stdout", result.stdout), ("stderr", result.stderr))
        for stream, text in streams:
            for line in text.splitlines():
                ctx.run.output(line, stream)
    return result


def open_repo(root: Path) -> git.Repo | None:
    """The repository *root* belongs to, or None if it is not in one."""
    try:
        return git.Repo(str(root), search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def not_a_repository(root: Path) -> dict[str, Any]:
    return {"ok": False, "error": {"code": "not_a_repository",
                                   "message": f"{root} is not inside a git repository"}}


def head_sha(repo: git.Repo) -> str | None:
    """HEAD's commit id read from the refs (no git process); None on an unborn branch."""
    try:
        return SymbolicReference.dereference_recursive(repo, "HEAD")
    except (ValueError, OSError):
        return None


def current_branch(repo: git.Repo) -> str | None:
    """The checked-out branch, or None on a detached HEAD."""
    try:
        return repo.active_branch.name
    except TypeError:
        return None


def literal(paths: Iterable[str]) -> list[str]:
    """Pathspecs matched as plain paths (no globs or ``:(magic)`` from the user)."""
    return [f":(literal){os.path.normpath(path)}" for path in paths]


def null_separated(text: str) -> list[str]:
    """The items of ``-z`` output."""
    return [item for item in text.split("\0") if item]
