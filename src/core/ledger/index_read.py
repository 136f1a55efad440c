"""The run list read straight from a current index: ``runs list`` without the ledger.

``Ledger.recent`` first brings view and index to the branch tip, records the runs of
dead processes and merges in the runs in flight (journal, pending CI runs). When there
is nothing of that to do (view and index at the tip, the journal and the pending CI
runs empty), its answer is the index's rows, and :func:`recent_if_current` reads them
with os, json and sqlite3 alone: the ledger's modules (dataclasses, pathlib, pygit2's
wrapper) cost ``runs list`` more than its read (issue 18 item 8). The runs a process
left queued for the index (``index_queue``: an ``exec`` does not open it) are added when
they lead from the index's head to the tip, without writing. Anything else answers None,
and the caller opens the ledger, which does all of it.
"""

from __future__ import annotations

import json
import os
import sqlite3

from controlplane.core.ledger import gitfiles, index_queue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SCHEMA_VERSION = "2"  # of the index's tables (``index.RunIndex``)
BRANCH_REF = "refs/heads/scp-ledger"  # ``store.BRANCH_REF``
VIEW_HEAD = os.path.join(".scp-ledger", ".head")  # ``view.LedgerView.head_path``


def recent_query(limit: int, type: str | None = None, status: str | None = None,
                 before: str | None = None, subtype: str | None = None
                 ) -> tuple[str, list[str | int]]:
    """The SQL (and its arguments) of the newest runs, filtered; *before*: a run id cursor."""
    where: list[str] = []
    args: list[str | int] = []
    for column, value in (("type", type), ("status", status), ("subtype", subtype)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    if before:
        where.append("run_id < ?")
        args.append(before)
    sql = "SELECT json FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY run_id DESC LIMIT ?"
    args.append(max(0, int(limit)))
    return sql, args


def recent_if_current(repo: str | None, limit: int, type: str | None = None,
                      status: str | None = None) -> list[dict[str, Any]] | None:
    """``Ledger.open(repo).recent(limit, type, status)`` when the index alone holds the
    answer; None when the ledger must be opened (see the module's docstring)."""
    found = gitfiles.discover(os.path.realpath(repo or os.getcwd()))
    if found is None:
        return None  # not a plain repository: the ledger asks pygit2, or says what is wrong
    root, git_dir = found
    scp = os.path.join(git_dir, "scp")
    if _holds(os.path.join(scp, "journal"), lambda name: not name.startswith(".")) \
            or _holds(os.path.join(scp, "ingest"), lambda name: name.endswith(".json")):
        return None  # runs in flight, to recover, or pending
    tip = gitfiles.read_ref(git_dir, BRANCH_REF)
    if tip is None or _view_head(root) != tip:
        return None
    queued = index_queue.load(scp, tidy=False)  # runs of processes that did not open it
    replaced = sum(len(move["runs"]) for _, moves in queued for move in moves)
    answer = _rows_at(os.path.join(scp, "index.sqlite"),
                      recent_query(limit + replaced, type, status))
    if answer is None:
        return None
    head, rows = answer
    if head == tip:
        return rows[:limit]
    chain, _ = index_queue.following(queued, head, {tip})
    if not chain:
        return None  # behind by more than the queue holds: the ledger catches up
    return _with_queued(rows, chain, limit, type, status)


def _with_queued(rows: list[dict[str, Any]], chain: list[dict[str, Any]], limit: int,
                 type: str | None, status: str | None) -> list[dict[str, Any]]:
    """The index's *rows* with the queued runs of *chain* in place, as the index would
    answer once they are applied (a run queued again replaces its row)."""
    newer = {run["run_id"]: run for move in chain for run, _ in move["runs"]}
    wanted = [run for run in newer.values()
              if (not type or run.get("type") == type)
              and (not status or run.get("status") == status)]
    merged = [row for row in rows if row.get("run_id") not in newer] + wanted
    merged.sort(key=lambda run: run["run_id"], reverse=True)
    return merged[:limit]


def _holds(directory: str, counts) -> bool:
    """True if *directory* holds a name *counts* says is something; True if unreadable."""
    try:
        with os.scandir(directory) as found:
            return any(counts(item.name) for item in found)
    except FileNotFoundError:
        return False
    except OSError:
        return True


def _view_head(root: str) -> str | None:
    try:
        fd = os.open(os.path.join(root, VIEW_HEAD), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as head:
        return head.read(200).decode("ascii", "replace").strip() or None


def _rows_at(path: str, query: tuple[str, list[str | int]]
             ) -> tuple[str | None, list[dict[str, Any]]] | None:
    """(head, rows of *query*) if the index at *path* is of this schema; (None, []) when
    there is none yet (a ledger only exec recorded to). Opened read-only: it never
    creates, migrates or checkpoints the index (its writer does)."""
    if not os.path.isfile(path):
        return None, []
    escaped = path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    try:
        db = sqlite3.connect(f"file:{escaped}?mode=ro", uri=True, timeout=30,
                             isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        db.execute("BEGIN")  # one snapshot for the head and the rows
        meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('schema', 'head')"))
        if meta.get("schema") != SCHEMA_VERSION:
            return None
        return meta.get("head"), [json.loads(row[0]) for row in db.execute(*query)]
    except (sqlite3.Error, ValueError):
        return None  # damaged or busy beyond the timeout: the ledger heals or reports it
    finally:
        db.close()
