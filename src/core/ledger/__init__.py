"""The git-backed ledger of runs: store (git), journal, view, index and their facade.

The facade is imported on first use of one of these names: ``runs list`` reads a current
index through :mod:`.index_read` without importing the ledger (issue 18 item 8).
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from controlplane.core.ledger.ledger import Ledger, NotARepository, find_git_dir
    from controlplane.core.ledger.store import BRANCH, TAG_PREFIX, LedgerWriteError

__all__ = ["BRANCH", "TAG_PREFIX", "Ledger", "LedgerWriteError", "NotARepository", "find_git_dir"]

_LAZY = {"Ledger": "ledger", "NotARepository": "ledger", "find_git_dir": "ledger",
         "BRANCH": "store", "TAG_PREFIX": "store", "LedgerWriteError": "store"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
