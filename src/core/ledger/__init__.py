"""The git-backed ledger of runs: store (git), journal, view, index and their facade.

The facade is imported on first use of one of these names: ``runs list`` reads a current
index through :mod:`.index_read` without importing the ledger (issue 18 item 8).
"""

from __future__ import annotations

from controlplane.core import lazy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from controlplane.core.ledger.ledger import Ledger, NotARepository, find_git_dir
    from controlplane.core.ledger.store import BRANCH, TAG_PREFIX, LedgerWriteError

__all__ = ["BRANCH", "TAG_PREFIX", "Ledger", "LedgerWriteError", "NotARepository", "find_git_dir"]

_FACADE, _STORE = f"{__name__}.ledger", f"{__name__}.store"
__getattr__ = lazy.exports(globals(), {
    "Ledger": _FACADE, "NotARepository": _FACADE, "find_git_dir": _FACADE,
    "BRANCH": _STORE, "TAG_PREFIX": _STORE, "LedgerWriteError": _STORE})
