"""Demo runs (actor kind ``demo``, the simulator's) live on a local branch, ``scp-demo``.

Same layout as ``scp-ledger`` and append-only like it, but sync never names it: push
sends ``scp-ledger`` and run tags only, and a demo run gets no run tag, so real runs stay
pushable while demo runs stay on this clone (DECISIONS §11, docs/settings.md). The run
index lists demo runs beside real ones without moving its ``head`` (the ``scp-ledger``
commit it reflects); an index rebuild reads them back from this branch.
"""

from __future__ import annotations

import json

from controlplane.core.runs import Run, ledger_dirs

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    from typing import Any

    from controlplane.core.ledger.ledger import Ledger

DEMO_BRANCH = "scp-demo"
DEMO_REF = f"refs/heads/{DEMO_BRANCH}"
DEMO_KIND = "demo"


def is_demo(run: Run | dict[str, Any]) -> bool:
    """True for a run whose actor kind is ``demo``."""
    actor = run.actor if isinstance(run, Run) else run.get("actor")
    return isinstance(actor, dict) and actor.get("kind") == DEMO_KIND


def record_demo(ledger: Ledger, run: Run, directory: str, files: dict[str, bytes],
                message: str) -> str:
    """Commit a finished demo run on ``scp-demo`` and list it in the index; the commit id."""
    _, commit = ledger.store.commit_files(directory, files, message,
                                          author=run.actor.get("name"), branch_ref=DEMO_REF)
    index_runs(ledger, [(run.to_dict(), directory)])
    return str(commit)


def index_runs(ledger: Ledger, runs: list[tuple[dict[str, Any], str]]) -> None:
    """Add *runs* to the index at its current head (the head stays where it is)."""
    if not runs:
        return
    from typing import cast  # here: the exec and script paths import this module

    for _ in range(20):  # another writer moved the head in between: read it again
        head = ledger.index.head()
        if ledger.index.apply(head, cast(str, head), runs, []):
            return


def recorded(ledger: Ledger, run_id: str) -> bool:
    """True if the demo branch holds *run_id*."""
    tip = ledger.store.head(DEMO_REF)
    return any(ledger.store.has_path(tip, f"{d}/run.json") for d in ledger_dirs("runs", run_id))


def events(ledger: Ledger, run_id: str) -> bytes | None:
    """A demo run's events.jsonl at the demo branch tip (None if it holds no such run)."""
    tip = ledger.store.head(DEMO_REF)
    if tip is None:
        return None
    for directory in ledger_dirs("runs", run_id):
        data = ledger.store.read_blob(tip, f"{directory}/events.jsonl")
        if data is not None:
            return data
    return None


def reindex(ledger: Ledger) -> int:
    """Put every demo run of the branch back into the index (after a rebuild); the count."""
    tip = ledger.store.head(DEMO_REF)
    if tip is None:
        return 0
    runs = []
    for directory in ledger.store.walk_run_dirs(tip):
        raw = ledger.store.read_blob(tip, f"{directory}/run.json")
        try:
            runs.append((Run.from_dict(json.loads(raw or b"null")).to_dict(), directory))
        except (ValueError, TypeError, KeyError, AttributeError):
            continue  # unreadable: left out of the index, as the ledger's own catch-up does
    index_runs(ledger, runs)
    return len(runs)
