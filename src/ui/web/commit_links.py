"""Where a commit can be seen on the web: the project's ``origin`` on a GitHub- or
GitLab-like host (``https://host/owner/repo/commit/<sha>``, GitLab ``/-/commit/``)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pygit2

SCP_LIKE = re.compile(r"^(?:[\w.-]+@)?([\w.-]+):(?!//)(.+)$")  # git@github.com:owner/repo.git
URL_LIKE = re.compile(r"^(?:https?|ssh|git)://(?:[^@/]+@)?([\w.-]+)(?::\d+)?/(.+)$")
PROJECT = re.compile(r"^[\w.-]+(?:/[\w.-]+)+$")


def web_base(remote_url: str) -> str | None:
    """The commit page prefix for a remote URL, or None for a host we cannot tell."""
    remote_url = remote_url.strip()
    found = URL_LIKE.match(remote_url) or SCP_LIKE.match(remote_url)
    if not found:
        return None
    host, path = found.group(1).lower(), found.group(2).strip("/")
    path = path[:-4] if path.endswith(".git") else path
    if not PROJECT.match(path):
        return None
    if "gitlab" in host:
        return f"https://{host}/{path}/-/commit/"
    if "github" in host or "gitea" in host or "codeberg" in host:
        return f"https://{host}/{path}/commit/"
    return None


@functools.lru_cache(maxsize=32)
def commit_base(root: Path) -> str | None:
    """The commit page prefix of *root*'s ``origin`` (read once per process), or None."""
    try:
        url = pygit2.Repository(str(root)).remotes["origin"].url or ""
    except (KeyError, pygit2.GitError, ValueError):
        return None
    return web_base(url)
