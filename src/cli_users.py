"""``controlplane users add|list|remove``: a token per person (runs record who started them).

Registered on the ``controlplane`` group by :mod:`controlplane.cli` once that is loaded.
"""

from __future__ import annotations

from pathlib import Path

import click

from controlplane.cli import Fail, _repo_root, repo_option, say
from controlplane.core import settings as settings_module
from controlplane.core.users import Users, UsersError, users_for


def _users(repo: str | None) -> Users:
    root, git_dir = _repo_root(repo)
    try:
        return users_for(Path(git_dir) / "scp", settings_module.values(root))
    except settings_module.SettingsError as exc:
        raise Fail(str(exc)) from None


@click.group("users")
def users_group() -> None:
    """People's own tokens: the runs they start record their name."""


@users_group.command("add")
@click.argument("name")
@repo_option
def users_add(name: str, repo: str | None) -> None:
    """Create NAME and print their token once (only its SHA-256 is kept)."""
    try:
        token = _users(repo).add(name)
    except (UsersError, OSError) as exc:
        raise Fail(str(exc)) from None
    click.echo(token)
    click.echo(f"Give this token to {name}; it is not stored and cannot be shown again.",
               err=True)


@users_group.command("list")
@repo_option
def users_list(repo: str | None) -> None:
    """The user names, one per line."""
    try:
        for name in _users(repo).names():
            say(name)  # the users file may come from elsewhere: no terminal controls
    except UsersError as exc:
        raise Fail(str(exc)) from None


@users_group.command("remove")
@click.argument("name")
@repo_option
def users_remove(name: str, repo: str | None) -> None:
    """Forget NAME: their token and their logins are refused from the next request on."""
    try:
        _users(repo).remove(name)
    except (UsersError, OSError) as exc:
        raise Fail(str(exc)) from None
