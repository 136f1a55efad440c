"""Ledger push and pull as actions (``/git/ledger/push``, ``/git/ledger/pull``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from controlplane.core.actions import Action, ActionContext, Example, register
from controlplane.core.integrations._cli_tools import Name
from controlplane.core.ledger import Ledger
from controlplane.core.ledger.sync import LedgerSync, SyncError


class PullParams(BaseModel):
    remote: Name | None = Field(None, description="remote to sync with (default: the "
                                                  "ledger_remote setting, origin)")


class PushParams(PullParams):
    include_unpublished: bool = Field(False, description="also push run tags whose code "
                                                         "commit is not on the remote yet "
                                                         "(publishes those commits)")


def _sync(ctx: ActionContext, params: PullParams) -> LedgerSync:
    remote = params.remote or ctx.settings.get("ledger_remote") or "origin"
    ctx.run.target.update(remote=remote)
    return LedgerSync(Ledger.open(ctx.project_root), remote)


def _answer(work: Any) -> dict[str, Any]:
    try:
        return {"ok": True, **work().to_dict()}
    except SyncError as exc:
        return {"ok": False, "error": {"code": exc.code, "message": str(exc)}}


def pull(ctx: ActionContext, params: PullParams) -> dict[str, Any]:
    """Fetch and merge the remote's ledger: a pull never drops a local run."""
    return _answer(_sync(ctx, params).pull)


def push(ctx: ActionContext, params: PushParams) -> dict[str, Any]:
    """Merge what the remote has, then push the ledger and publishable run tags, never forcing."""
    sync = _sync(ctx, params)
    return _answer(lambda: sync.push(include_unpublished=params.include_unpublished))


register(
    Action(path="/git/ledger/push", subtype="git:ledger_push", integration="git",
           title="Push the ledger branch and run tags", params=PushParams, service=push,
           lock_key="ledger-sync",
           example=Example(params={"remote": "origin"}, remote="origin",
                           invalid={"remote": "--upload-pack=touch pwned"},
                           invalid_field="remote")),
    Action(path="/git/ledger/pull", writes=True, subtype="git:ledger_pull", integration="git",
           title="Pull and merge the ledger branch and run tags", params=PullParams,
           service=pull, lock_key="ledger-sync",
           example=Example(params={"remote": "origin"}, remote="origin",
                           invalid={"remote": "-x"}, invalid_field="remote")),
)
