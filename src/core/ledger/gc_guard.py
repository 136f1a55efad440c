"""A ``git gc --prune=now`` racing a ledger write: see it, wait it out, put pruned objects back.

``git prune`` marks what the refs reach, then deletes every other loose object. A
writer's new objects (blobs, trees, commit, tag) exist before the ref that reaches
them moves, so a prune that marked before the move deletes them after it: the
ledger tip points at missing objects. git documents the risk. The writer keeps
the raw bytes of what it wrote; after moving the ref it waits for a running gc
(``gc.pid``) to end, then writes back whatever is missing (the same bytes give
the same ids). A prune without ``git gc`` leaves no trace: ``ledger doctor``
repairs that.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from controlplane.core import lazy
from controlplane.core.lazy import Lazy
from controlplane.core.ledger import gitconfig
from controlplane.core.plain_data import plain_data
from controlplane.core.runs import default_host, process_alive

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    import pygit2
else:
    pygit2 = Lazy(globals(), "pygit2")

log = lazy.Logger(__name__)

GC_WAIT_SECONDS = 120.0  # a record waits at most this long for a running gc to end
_POLL = 0.05


@plain_data(frozen=True)
class Written:
    """One object a writer created: enough to write it again."""

    oid: pygit2.Oid | str  # a str from FileStore
    type: int
    data: bytes


class CheckedOnce:
    """A writer's gc-guard batching: the objects written inside ``checked_once`` are checked
    once, on leaving (a record's commit and tag: one check instead of one per ref moved)."""

    def __init__(self) -> None:
        self._deferred = threading.local()

    @contextlib.contextmanager
    def checked_once(self) -> Iterator[None]:
        pending: list[Written] = []
        self._deferred.pending = pending
        try:
            yield
        finally:
            self._deferred.pending = None
            self._keep(pending)

    def _deferred_to_batch(self, objects: list[Written]) -> bool:
        """True if *objects* joined this thread's ``checked_once`` batch (checked later)."""
        pending = getattr(self._deferred, "pending", None)
        if pending is None:
            return False
        pending.extend(objects)
        return True

    def _keep(self, objects: list[Written]) -> None:
        raise NotImplementedError


def written(repo: pygit2.Repository, oid: pygit2.Oid) -> Written:
    """*oid*'s raw object, read back right after writing it."""
    kind, data = repo.odb.read(oid)
    return Written(oid, int(kind), bytes(data))


def gc_running(git_dir: Path) -> bool:
    """True while a ``git gc`` of this host works in *git_dir* (its ``gc.pid`` names it)."""
    try:
        with open(f"{git_dir}/gc.pid", encoding="utf-8") as found:
            pid_text, _, host = found.read().strip().partition(" ")
    except OSError:
        return False
    if host and host != default_host():
        return False  # another host's gc on a shared disk: doctor repairs what it prunes
    return pid_text.isdigit() and process_alive(int(pid_text), None)


def pruning_gc_running(git_dir: Path) -> bool:
    """True while a gc runs here that may delete objects just written: any but ``git gc
    --auto`` with git's default expiry (it prunes objects older than two weeks, and its
    repack deletes only what it packed). A gc whose command line or configuration cannot
    be read counts as pruning."""
    if not gc_running(git_dir):
        return False
    try:
        pid = (git_dir / "gc.pid").read_text().split()[0]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return True
    if b"--auto" not in argv or any(arg.startswith(b"--prune") for arg in argv):
        return True
    try:
        expiry = gitconfig.read_config(git_dir).get("gc.pruneexpire")
    except gitconfig.Unsupported:
        return True
    return expiry is not None and expiry.strip().lower() in ("now", "all")


def wait_for_gc(git_dir: Path, timeout: float = GC_WAIT_SECONDS) -> bool:
    """Wait until no gc runs in *git_dir*; False if one still runs after *timeout* s."""
    deadline = time.monotonic() + timeout
    while gc_running(git_dir):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL)
    return True


def restore_missing(git_dir: Path, objects: list[Written]) -> list[Written]:
    """Write back the *objects* no longer in the object store; returns those restored.

    Checked through a fresh object database: a repository's cache may still hold
    an object whose file is gone.
    """
    odb = pygit2.Odb(str(git_dir / "objects"))
    missing = [item for item in objects if not odb.exists(item.oid)]
    for item in missing:
        odb.write(item.type, item.data)
    return missing


def keep(git_dir: Path, objects: list[Written],
         restore: Callable[[Path, list[Written]], list[Written]] | None = None
         ) -> list[Written]:
    """After a ref moved to *objects*: outlast a running gc, restore what it pruned
    (by *restore*, default ``restore_missing``)."""
    if not objects:
        return []
    if pruning_gc_running(git_dir) and not wait_for_gc(git_dir):  # `gc --auto`: no need
        log.warning("a git gc still runs after %.0f s; if it prunes the ledger's newest "
                    "objects, `controlplane ledger doctor` repairs it", GC_WAIT_SECONDS)
    restored = (restore or restore_missing)(git_dir, objects)
    if restored:
        log.warning("restored %d ledger objects a concurrent git gc/prune had deleted",
                    len(restored))
    return restored
