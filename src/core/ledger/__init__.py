"""The git-backed ledger of runs: store (git), journal, view, index and their facade."""

from controlplane.core.ledger.ledger import Ledger, NotARepository, find_git_dir
from controlplane.core.ledger.store import BRANCH, TAG_PREFIX, LedgerWriteError

__all__ = ["BRANCH", "TAG_PREFIX", "Ledger", "LedgerWriteError", "NotARepository", "find_git_dir"]
