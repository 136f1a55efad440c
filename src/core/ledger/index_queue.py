"""Index moves left on disk by a process that never opened the index (issue 18, item 8).

``controlplane exec`` records one run and exits. Writing that run to the index cost it
the import of sqlite3 (with datetime: 3-6 ms on this machine), the opening of the index
(~1 ms) and a transaction: a tenth of its start-up, for a cache its next reader can fill.
So a process that has not opened the index (``Ledger.open(caches=False)``: ``exec``) leaves
its batch of moves (``index_batches.Pending``) here, one JSON file under
``.git/scp/index-queue/``, written aside and renamed (whole or absent), and the index is
moved by whoever opens it next:

- a process with the ledger open applies the moves that follow the index's head before
  it reads or writes the index (``Ledger.index``, ``Ledger.flush_index``), in one
  transaction, and deletes their files;
- the quick ``runs list`` (``index_read``), which never writes, reads the index and adds
  the queued runs that lead from its head to the branch tip;
- a process that finds ``QUEUE_MAX`` files already queued opens the index and applies
  them instead of adding one, so the queue stays short when nothing reads.

A move applies only from the head it was made on (``RunIndex.apply`` checks it in the
transaction), so a file that arrives late, twice or never changes nothing but speed: the
index catches up from git as after any crash. A file that no longer follows the head is
dropped after ``STALE_AFTER`` seconds, as is a file a killed spill left aside; a file that
is not one of ours, at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from controlplane.core.ledger.index import RunIndex
    from controlplane.core.ledger.index_batches import Pending

    Move = dict[str, Any]

QUEUE_DIR = "index-queue"
QUEUE_MAX = 32  # files: past this, the process that would add one applies them instead
STALE_AFTER = 10.0  # seconds a file that does not follow the index's head is kept
_SUFFIX = ".json"


def spill(scp_dir: str | os.PathLike[str], batch: list[Pending]) -> bool:
    """Leave *batch* as one file; False when the queue holds ``QUEUE_MAX`` files already
    or the file cannot be written (the caller applies the batch itself)."""
    directory = os.path.join(scp_dir, QUEUE_DIR)
    name = os.path.join(directory, f"{batch[-1].commit}{_SUFFIX}")
    temporary = os.path.join(directory, f".{batch[-1].commit}.{os.getpid()}.tmp")
    try:
        if len(_names(_listing(directory))) >= QUEUE_MAX:
            return False
        moves = [{"parent": record.parent, "commit": record.commit, "runs": record.runs,
                  "messages": record.messages} for record in batch]
        data = json.dumps({"moves": moves}, separators=(",", ":")).encode("ascii")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        try:
            fd = os.open(temporary, flags, 0o600)
        except FileNotFoundError:  # the queue's first file (a repository deleted: not made)
            with contextlib.suppress(FileExistsError):
                os.mkdir(directory, 0o700)
            fd = os.open(temporary, flags, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(temporary, name)
    except (OSError, TypeError, ValueError):
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        return False
    return True


def waiting(scp_dir: str | os.PathLike[str]) -> bool:
    """True if a file is queued."""
    return bool(_names(_listing(os.path.join(scp_dir, QUEUE_DIR))))


def _listing(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


def _names(listed: list[str]) -> list[str]:
    """The queued files among the names *listed* (not those written aside: ``.*.tmp``)."""
    return [name for name in listed if name.endswith(_SUFFIX) and not name.startswith(".")]


def load(scp_dir: str | os.PathLike[str], tidy: bool = True) -> list[tuple[str, list[Move]]]:
    """(path, moves) of each file queued; a file that is not a list of moves is skipped,
    and deleted when *tidy* (a writer of the index; a reader writes nothing)."""
    directory = os.path.join(scp_dir, QUEUE_DIR)
    return _load(directory, _names(_listing(directory)), tidy)


def _load(directory: str, names: list[str], tidy: bool) -> list[tuple[str, list[Move]]]:
    found = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as queued:
                moves = json.loads(queued.read())["moves"]
            if not (isinstance(moves, list) and moves and all(map(_is_move, moves))):
                raise ValueError("not a list of moves")
        except FileNotFoundError:
            continue  # applied by another process meanwhile
        except (OSError, ValueError, KeyError, TypeError):
            if tidy:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            continue
        found.append((path, moves))
    return found


def _is_move(move: Any) -> bool:
    return (isinstance(move, dict) and isinstance(move.get("commit"), str)
            and (move.get("parent") is None or isinstance(move.get("parent"), str))
            and isinstance(move.get("runs"), list) and isinstance(move.get("messages"), list)
            and all(_is_entry(entry, "run_id") for entry in move["runs"])
            and all(_is_entry(entry, "message_id") for entry in move["messages"]))


def _is_entry(entry: Any, key: str) -> bool:
    return (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], dict)
            and isinstance(entry[0].get(key), str) and isinstance(entry[1], str))


def following(queued: list[tuple[str, list[Move]]], head: str | None,
              ends: set[str] | None = None) -> tuple[list[Move], list[str]]:
    """The moves that lead on from *head*, in order, as far as the last that reaches one
    of *ends* (any, when None), and the files all of whose moves are among them. Files
    may overlap (a forked child queues what its parent had batched, and the parent queues
    it too): each move is taken once."""
    by_parent: dict[str | None, Move] = {}
    for _, moves in queued:
        for move in moves:
            by_parent.setdefault(move["parent"], move)
    chain: list[Move] = []
    at = head
    while at in by_parent and len(chain) < len(by_parent):
        move = by_parent[at]
        chain.append(move)
        at = move["commit"]
    while ends is not None and chain and chain[-1]["commit"] not in ends:
        chain.pop()
    reached = {move["commit"] for move in chain}
    used = [path for path, moves in queued if all(move["commit"] in reached for move in moves)]
    return chain, used


def drain(index: RunIndex, scp_dir: str | os.PathLike[str],
          ends_of: Callable[[], set[str]]) -> None:
    """Apply the queued moves that lead from *index*'s head to one of the commits
    *ends_of* names (the branch tip, or where this process's own batch starts), in one
    transaction; delete their files, and the files left that have not followed the head
    for ``STALE_AFTER`` seconds. A chain that reaches none of them (a record not queued
    yet, a branch reset since) is left to the catch-up from git: the index never moves to
    a commit off the branch."""
    directory = os.path.join(scp_dir, QUEUE_DIR)
    listed = _listing(directory)
    names = _names(listed)
    if not names:
        return
    with index.lock:
        queued = _load(directory, names, tidy=True)
        head = index.head()
        chain, used = following(queued, head, ends_of())
        if chain and not index.apply(head, chain[-1]["commit"],
                                     [(run, where) for move in chain for run, where
                                      in move["runs"]], [],
                                     [(message, where) for move in chain for message, where
                                      in move["messages"]]):
            return  # moved meanwhile by another process: its drain or its catch-up
        left = [path for path, _ in queued if path not in used]
        left += [os.path.join(directory, name) for name in listed
                 if name.startswith(".") and name.endswith(".tmp")]  # a killed spill's
        now = time.time()
        for path in used + [path for path in left if _age(path, now) > STALE_AFTER]:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _age(path: str, now: float) -> float:
    try:
        return now - os.stat(path).st_mtime
    except OSError:
        return 0.0
