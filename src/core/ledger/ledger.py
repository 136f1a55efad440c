"""The ledger facade: where a finished run is recorded and where runs are read from.

Recording a run writes, in this order: the commit on ``scp-ledger`` (the
truth, whole or not at all), the run tag, the view and the index (caches that
any later process can rebuild; the index in batches, ``index_batches``). Opening a
ledger records the runs of dead processes as ``interrupted``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from functools import cached_property
from operator import methodcaller
from pathlib import Path

from controlplane.core import lazy, settings
from controlplane.core.lazy import Lazy
from controlplane.core.ledger import demo_branch, detached, gitfiles, index_queue, jsonfile, rawlog
from controlplane.core.ledger.durability import Durability
from controlplane.core.ledger.gc_guard import GC_WAIT_SECONDS, gc_running, wait_for_gc
from controlplane.core.ledger.gitconfig import Unsupported
from controlplane.core.ledger.index_batches import IndexBatches, Pending
from controlplane.core.ledger.journal import Journal, JournalEntry, kill_left_groups
from controlplane.core.ledger.store import (
    BRANCH_REF,
    RUNS_DIR,
    GitStore,
    LedgerWriteError,
    in_work_tree,
)
from controlplane.core.ledger.view import VIEW_DIR, LedgerView, exclude_from_status
from controlplane.core.output import cap_events, compact_json, events_after
from controlplane.core.runs import Run, RunStatus, chat_dir, ledger_dir, ledger_dirs

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    import shutil
    import sqlite3
    import subprocess
    from typing import Any, TypeVar

    import pygit2

    from controlplane.core.ledger.filestore import FileStore
    from controlplane.core.ledger.index import RunIndex

    _T = TypeVar("_T")
else:
    pygit2 = Lazy(globals(), "pygit2")  # a read from a current index needs none of it
    sqlite3 = Lazy(globals(), "sqlite3")  # a process that leaves its runs to index_queue
    shutil = Lazy(globals(), "shutil")  # a rebuild's old view
    subprocess = Lazy(globals(), "subprocess")  # git gc

log = lazy.Logger(__name__)

GC_SAMPLE_DIR = "17"  # git's own `gc --auto` estimate counts the loose objects of objects/17
GC_AUTO_DEFAULT = 6700
GC_LOG_EXPIRY = 86_400.0  # git's gc.logExpiry default: one day
PACKS_ROLLED_UP = 16  # the records' packs are rolled up past this many (git's limit: 50)
ROLL_UP_EVERY = 10.0  # seconds: at most one roll-up per clone this often, below PACKS_URGENT
_IS_INDEX = methodcaller("endswith", ".idx")  # a pack's index, counted in C
PACKS_URGENT = 40  # past this many, a roll-up is started whenever none runs
LIST_PACKS_EVERY = 16  # records between two listings of the pack directory, at most
TAG_NAMESPACES = ("refs/scp/run/", "refs/tags/scp/run/")
MISSING_OBJECTS = ("the ledger tip %s misses objects (%s): a `git gc --prune=now` ran during a "
                   "record; run `controlplane ledger doctor` to repair it")


class NotARepository(Exception):
    """The path is not inside a git repository."""


def dumps(data: Any) -> bytes:
    """A ledger file's bytes (run.json, message.json): sorted, one space of indent."""
    return jsonfile.pretty(data).encode() + b"\n"


def events_jsonl(events: list[dict[str, Any]]) -> bytes:
    return b"".join([compact_json(event).encode() + b"\n" for event in events])


_FOUND: dict[str, tuple[Path, Path]] = {}  # start path -> (work tree, common git dir)


def _still_found(start: str, found: tuple[Path, Path]) -> bool:
    """True if *start* still belongs to that work tree: its ``.git`` is there, and no
    directory from *start* up to it has gained a ``.git`` of its own."""
    return in_work_tree(start, found[0])


def find_git_dir(path: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """(work tree, common git dir) of the repository holding *path* (default: cwd).

    Remembered per path (a record opens the ledger once per run), checked with a few stats.
    """
    start = gitfiles.real_path(path or os.getcwd())  # as Path.resolve, without a Path
    known = _FOUND.get(start)
    if known is not None and _still_found(start, known):
        return known
    found = _discover(start)
    if len(_FOUND) > 1000:
        _FOUND.clear()
    _FOUND[start] = found
    return found


def _discover(start: str) -> tuple[Path, Path]:
    plain = gitfiles.discover(start)  # a few stats; pygit2 for anything unusual
    if plain is not None:
        return Path(plain[0]), Path(plain[1])
    found = pygit2.discover_repository(start)
    if found is None:
        raise NotARepository(f"not a git repository (or any parent): {start}; work inside "
                             "the project's repository (or make one there: git init)")
    repo = pygit2.Repository(found)
    if repo.is_bare or repo.workdir is None:
        raise NotARepository(f"a bare repository has no work tree to serve: {found}")
    common = Path(found)
    commondir = common / "commondir"
    if commondir.exists():  # a linked worktree: the ledger lives in the main git dir
        common = (common / commondir.read_text().strip()).resolve()
    return Path(repo.workdir).resolve(), common


class Ledger:
    """One repository's ledger, journal, view and index. Thread-safe; one per process."""

    _instances: dict[Path, Ledger] = {}
    _instances_lock = threading.Lock()

    def __init__(self, root: Path, git_dir: Path) -> None:
        self.root = root
        self.git_dir = git_dir
        self.scp_dir = git_dir / "scp"
        self.scp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.scp_dir.stat().st_mode & 0o077:  # journal, logs, index, logins: ours alone
            try:
                os.chmod(self.scp_dir, 0o700)
            except OSError as exc:
                log.warning("could not make %s private (chmod 700 it): %s", self.scp_dir, exc)
        self.logs_dir = self.scp_dir / "logs"
        objects = os.path.join(git_dir, "objects")  # what every record's _maintain looks at
        self._pack_dir, self._gc_sample = os.path.join(objects, "pack"), \
            os.path.join(objects, GC_SAMPLE_DIR)
        self._repack_lock = os.path.join(self.scp_dir, "repack.lock")
        configured = settings.values(root)
        namespace = configured["tag_namespace"]
        if namespace not in TAG_NAMESPACES:
            raise settings.SettingsError(f"tag_namespace must be one of {TAG_NAMESPACES}")
        self.logs_retention = max(1, int(configured["logs_retention"]))
        self.durability = Durability(git_dir, str(configured["durability"]))
        self._tag_namespace = namespace
        self._store: GitStore | None = None
        self._store_lock = threading.Lock()
        self._files: FileStore | None = None  # the record without pygit2 (see writer)
        self._files_refused = False
        self.journal = Journal(self.scp_dir / "journal")
        self.index_path = self.scp_dir / "index.sqlite"
        self._index: RunIndex | None = None  # opened at its first use (_open_index)
        self._index_lock = threading.Lock()
        self.view = LedgerView(root / VIEW_DIR, self.scp_dir / "view.lock")
        self._batches = IndexBatches(self._open_index, catch_up=self._index_to_tip,
                                     on_timer=self.flush_index)
        _flush_indexes_at_exit()
        exclude_from_status(git_dir)
        self.recorded_here: deque[str] = deque(maxlen=10_000)  # for the cross-process feed
        self._records = 0
        self._gc: detached.Detached | None = None
        self._gc_sampled: tuple[int, bool] = (-1, False)  # objects/17's mtime, gc due then
        self._packs_at_roll_up = 0  # the pack count when this process last rolled them up
        self._pack_count = 0  # as packs_due last counted
        self._records_unlisted = LIST_PACKS_EVERY  # records since packs_due listed the
        # packs: a process lists them at its first record (a CLI's only one)
        self.interrupted: list[dict[str, Any]] = []
        # runs that ended here but could not be recorded (disk full…): retried at each open
        self.unrecorded: dict[str, tuple[Run, list[dict[str, Any]]]] = {}

    @property
    def index(self) -> RunIndex:
        """The run index, holding every run this process recorded (``flush_index``) and
        the runs other processes left queued (``index_queue``)."""
        index = self._open_index()
        if self._batches.pending or index_queue.waiting(self.scp_dir):
            self.flush_index()
        return index

    def _open_index(self) -> RunIndex:
        index = self._index
        if index is None:
            with self._index_lock:
                if self._index is None:
                    from controlplane.core.ledger.index import RunIndex  # sqlite3: readers'

                    opened = RunIndex(self.index_path)
                    opened.on_rebuilt = self.catch_up  # a damaged index, replaced, refilled
                    self._index = opened
                index = self._index
        return index

    def flush_index(self) -> None:
        """Write the runs this process recorded since the last batch to the index
        (``index_batches``), after the moves other processes queued (``index_queue``). A
        process that has not opened the index queues its batch instead. A failure is
        logged: the index catches up at the next read."""
        if self._index is None and self._spill():
            return
        with self._caches_lag("the index is"):
            index_queue.drain(self._open_index(), self.scp_dir, self._queue_ends)
            self._batches.flush()

    def _queue_ends(self) -> set[str]:
        """Where queued moves may bring the index: the branch tip, or where this
        process's own batch starts (read only when something is queued)."""
        ends = {record.parent for record in self._batches.pending if record.parent is not None}
        tip = gitfiles.read_ref(self.git_dir, BRANCH_REF)
        if tip is not None:
            ends.add(tip)
        return ends

    def _spill(self) -> bool:
        """Leave this process's batch in ``index_queue``; True if there was nothing to
        write or it was left, False when the index must be opened and written instead."""
        batch = self._batches.take()
        if not batch:
            return True
        if index_queue.spill(self.scp_dir, batch):
            return True
        self._batches.put_back(batch)
        return False

    @contextlib.contextmanager
    def _caches_lag(self, caches: str) -> Iterator[None]:
        """Log, not raise, a failure to bring *caches* along: the commit is the truth, and
        they catch up at the next read."""
        try:
            yield
        except (OSError, sqlite3.Error) as exc:
            if os.path.isdir(self.git_dir):  # a repository deleted meanwhile: nothing to say
                log.warning("recorded, but %s behind: %s", caches, exc)
        except (KeyError, pygit2.GitError) as exc:  # a tip another writer has not restored yet
            log.warning("recorded, but %s behind (%s): %s", caches,  # (gc_guard)
                        "a concurrent git gc pruned objects", exc)

    def _index_to_tip(self) -> None:
        head = self.store.head()
        if head is not None:
            self._catch_up_index(head)

    @property
    def store(self) -> GitStore:
        """The git side, opened on first use: listing from a current index needs no pygit2."""
        store = self._store
        if store is None:
            with self._store_lock:
                if self._store is None:
                    self._store = GitStore(self.git_dir, tag_prefix=self._tag_namespace)
                store = self._store
        return store

    @property
    def writer(self) -> GitStore | FileStore:
        """What records a run: ``FileStore`` (plain files: a one-run process such as ``exec``
        need not import pygit2, and a record costs no more than through pygit2), or
        ``GitStore`` with ``durability = record`` (libgit2's fsyncs) and for a repository
        FileStore does not read as git does (``Unsupported``)."""
        if self._files_refused or self.durability.mode == "record":
            return self.store
        if self._files is None:
            from controlplane.core.ledger.filestore import FileStore  # hashlib, zlib: writers'

            plain = self.git_dir == self.root / ".git" and gitfiles.discover(str(self.root))
            try:
                if not plain:
                    raise Unsupported("not a plain work tree")
                self._files = FileStore(self.git_dir, self._tag_namespace, self.root,
                                        fallback=lambda: self.store)
            except Unsupported as exc:
                self._refuse_files(exc)
                return self.store
        return self._files

    def _refuse_files(self, exc: Unsupported) -> None:
        log.debug("recording through pygit2: %s", exc)
        self._files_refused = True

    @cached_property
    def _gc_auto(self) -> int:
        if self._files is not None:
            return self._files.gc_auto
        return _gc_auto(self.store.repo)

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, recover: bool = True,
             caches: bool = True) -> Ledger:
        """The ledger of the repository holding *path*; raises NotARepository outside one.

        *caches* false: view and index are not brought to the tip now (a run about to be
        recorded: its record catches them up if another process moved the tip meanwhile).
        """
        root, git_dir = find_git_dir(path)
        with cls._instances_lock:
            ledger = cls._instances.get(git_dir)
            if ledger is None:
                ledger = cls._instances[git_dir] = cls(root, git_dir)
        if recover:
            ledger.retry_unrecorded()
            ledger.interrupted.extend(ledger.recover())
            if caches:
                ledger.catch_up()
        return ledger

    @classmethod
    def flush_indexes(cls) -> None:
        """Write every ledger's batch of runs to its index (at exit: ``atexit``)."""
        with cls._instances_lock:
            ledgers = list(cls._instances.values())
        for ledger in ledgers:
            ledger.flush_index()

    @classmethod
    def forget_instances(cls) -> None:
        """Drop cached ledgers and discovered repositories (tests that delete repositories)."""
        with cls._instances_lock:
            for ledger in cls._instances.values():
                ledger.flush_index()  # silent for a repository deleted already
            cls._instances.clear()
            _FOUND.clear()

    # -- writing ---------------------------------------------------------

    def record(self, run: Run, events: list[dict[str, Any]],
               data: dict[str, Any] | None = None) -> str:
        """Record a finished run in one commit, tag it, update the caches; returns the commit id.

        *data*: ``run.to_dict()`` when the caller made it, ``run.events`` set first."""
        if not run.status.is_final:
            raise ValueError(f"run {run.run_id} is {run.status}: only finished runs are recorded")
        directory = ledger_dir(run.run_id)
        if data is None:
            run.events = len(events)
            data = run.to_dict()
        files = {"run.json": dumps(data), "events.jsonl": events_jsonl(events)}
        message = f"run {run.run_id} {run.subtype} {run.status}\n\n{run.summary}".rstrip()
        if demo_branch.is_demo(run):  # the simulator's: a local branch, never pushed
            return demo_branch.record_demo(self, run, directory, files, message)
        parent, commit = self._write_with(
            lambda writer: self._commit_and_tag(writer, run, directory, files, message))
        self.durability.recorded()
        self._advance(parent, commit, directory, files, data)
        self._records += 1
        self._maintain(skip_run=run.run_id)
        if self._records % 100 == 0:
            self.prune_logs()
        return str(commit)

    def _write_with(self, write: Callable[[GitStore | FileStore], _T]) -> _T:
        """*write* through ``writer``; again through pygit2 when FileStore answers
        ``Unsupported`` (always before the branch moved: nothing was recorded)."""
        try:
            return write(self.writer)
        except Unsupported as exc:
            self._refuse_files(exc)
            return write(self.store)

    def _commit_and_tag(self, writer: GitStore | FileStore, run: Run, directory: str,
                        files: dict[str, bytes], message: str) -> tuple[Any, Any]:
        """The run's commit on the ledger branch, then its tag; returns (parent, commit)."""
        with writer.checked_once():  # the gc guard's check: once for commit and tag
            code_commit = writer.resolve_commit((run.code_ref or {}).get("commit"))
            if code_commit:  # its object goes with the commit's where the writer can
                writer.stage_tag(run.run_id, code_commit, f"{run.subtype} {run.status}",
                                 tagger=run.actor.get("name"))
            parent, commit = writer.commit_files(directory, files, message,
                                                 author=run.actor.get("name"))
            self.recorded_here.append(run.run_id)
            if code_commit:
                try:
                    writer.tag_run(run.run_id, code_commit, f"{run.subtype} {run.status}",
                                   tagger=run.actor.get("name"))
                except LedgerWriteError:
                    log.warning("run %s recorded without its tag (doctor recreates it)",
                                run.run_id)
        return parent, commit

    def record_message(self, message: dict[str, Any]) -> str:
        """Record a chat message in one commit (``ledger/chat/YYYY/MM/DD/<bb>/<id>/``)."""
        directory = chat_dir(message["message_id"])
        files = {"message.json": dumps(message)}
        author = (message.get("author") or {}).get("name")
        parent, commit = self._write_with(
            lambda writer: writer.commit_files(directory, files, "chat message", author))
        self.recorded_here.append(message["message_id"])
        self.durability.recorded()
        self._advance(parent, commit, directory, files, message=message)
        self._maintain()
        return str(commit)

    def _advance(self, parent, commit, directory, files, run=None, message=None) -> None:
        """Bring view and index to *commit*: directly when they were at *parent*, else by diff."""
        with self._caches_lag("view and index are"):
            self._advance_caches(parent, commit, directory, files, run, message)

    def _advance_caches(self, parent, commit, directory, files, run, message) -> None:
        parent_text = str(parent) if parent is not None else None
        if not self.view.apply(parent_text, str(commit), [(directory, files)], []):
            self._catch_up_view(commit)
        runs = [(run, directory)] if run is not None else []
        messages = [(message, directory)] if message is not None else []
        if self._batches.add(Pending(parent_text, str(commit), runs, messages)):
            self.flush_index()  # a full batch: written by the record that filled it

    def catch_up(self) -> list[dict[str, Any]]:
        """Bring view and index to the ledger tip; returns the runs the index newly learnt."""
        if self._caches_at_tip() or self._no_branch_yet():
            return []
        head = self.store.head()
        if head is None:
            return []
        try:  # a full disk must not fail a read: view and index are caches
            self._catch_up_view(head)
        except OSError as exc:
            log.warning("could not bring the view up to date: %s", exc)
        except (KeyError, pygit2.GitError) as exc:
            log.warning(MISSING_OBJECTS, head, exc)
            return []
        try:
            return self._catch_up_index(head)
        except (OSError, sqlite3.Error) as exc:
            log.warning("could not bring the index up to date: %s", exc)
        except (KeyError, pygit2.GitError) as exc:
            log.warning(MISSING_OBJECTS, head, exc)
        return []

    def _caches_at_tip(self) -> bool:
        """True if view and index are at the branch tip, read from the ref file (no pygit2)."""
        tip = gitfiles.read_ref(self.git_dir, BRANCH_REF)
        try:
            return tip is not None and self.index.head() == tip and self.view.head() == tip
        except (OSError, sqlite3.Error):
            return False  # the full catch-up reports and repairs it

    def _no_branch_yet(self) -> bool:
        """True before the first record: no ledger branch, loose or packed (no pygit2)."""
        return not os.path.lexists(self.git_dir / BRANCH_REF) \
            and gitfiles.read_ref(self.git_dir, BRANCH_REF) is None

    def _catch_up_view(self, head, view: LedgerView | None = None) -> None:
        view = view or self.view
        for _ in range(20):
            current = view.head()
            if current == str(head) or self._ahead_of(current, head):
                return
            changed, removed = self.store.changed_entry_dirs(self._known_commit(current), head)
            upserts = ((d, self.store.read_dir(head, d)) for d in changed)  # one at a time
            if view.apply(current, str(head), upserts, removed):
                return

    def _catch_up_index(self, head) -> list[dict[str, Any]]:
        for _ in range(20):
            current = self.index.head()
            if current == str(head) or self._ahead_of(current, head):
                return []
            old = self._known_commit(current)
            if old is None and current is not None:
                self.index.clear()
                current = None
            changed, removed = self.store.changed_entry_dirs(old, head)
            runs: list[tuple[dict[str, Any], str]] = []
            messages: list[tuple[dict[str, Any], str]] = []
            for directory in changed:
                entry = self._read_entry(head, directory)
                if entry is not None:
                    (runs if directory.startswith(RUNS_DIR) else messages).append(
                        (entry, directory))
            if self.index.apply(current, str(head), runs, removed, messages):
                return [run for run, _ in runs]
        return []

    def _read_entry(self, head, directory: str) -> dict[str, Any] | None:
        """The run.json or message.json of an entry directory; None (logged) if unreadable."""
        is_run = directory.startswith(RUNS_DIR)
        raw = self.store.read_blob(head, f"{directory}/{'run' if is_run else 'message'}.json")
        try:
            data = json.loads(raw or b"null")
            if is_run:
                return Run.from_dict(data).to_dict()
            if not isinstance(data, dict) or not isinstance(data.get("message_id"), str):
                raise ValueError("no message_id")
            return data
        except ValueError:
            log.warning("skipping unreadable entry in %s", directory)
            return None

    def _ahead_of(self, current: str | None, head) -> bool:
        """True if a cache at *current* reflects a descendant of *head* still on the branch.

        A writer whose commit was overtaken catches up to its own, older commit:
        diffing back from the newer state would drop the newer runs from the cache.
        (A branch reset to an older commit by hand is followed back, as before.)
        """
        known = self._known_commit(current)
        if known is None or known == head:
            return False
        with self.store.lock:
            repo, tip = self.store.repo, self.store.head()
            return repo.descendant_of(known, head) and tip is not None \
                and (tip == known or repo.descendant_of(tip, known))

    def _known_commit(self, text: str | None) -> pygit2.Oid | None:
        if not text:
            return None
        try:
            self.store.repo[text]
        except (KeyError, ValueError):
            return None
        return pygit2.Oid(hex=text)

    def rebuild_index(self) -> int:
        """Drop and rebuild the index and the view from the ledger; returns the run count."""
        self.index.clear()
        if not self._rebuild_view_aside():
            self.view.clear()
        self.catch_up()
        demo_branch.reindex(self)
        return self.index.count()

    def _rebuild_view_aside(self) -> bool:
        """Write the whole view into a fresh directory under ``.git/scp``, then swap it in;
        the old one is deleted by a detached ``rm -rf`` (with any an earlier one left).
        Creating 300,000 files right after deleting as many is several times slower on ext4
        (freed inodes are skipped: 9.4 s instead of 1.8 s at 10,000 runs), readers keep the
        old view until the new one is whole, and the rebuild does not wait for the deletion
        (a third of it at 100,000 runs). False if it could not (the caller clears the view
        and writes it in place, as before)."""
        head = self.store.head()
        if head is None:
            return False
        fresh = self.scp_dir / f"view-rebuild-{os.getpid()}"
        old = self.scp_dir / f"view-old-{os.getpid()}-{time.time_ns()}"
        shutil.rmtree(fresh, ignore_errors=True)  # a rebuild of this pid that died
        aside = LedgerView(fresh, self.scp_dir / "view-rebuild.lock")
        try:
            self._catch_up_view(head, aside)
        except OSError as exc:
            log.warning("could not rebuild the view aside (%s): rebuilding it in place", exc)
            shutil.rmtree(fresh, ignore_errors=True)
            return False
        if not self.view.replace_with(fresh, old):
            shutil.rmtree(fresh, ignore_errors=True)
            return False
        _delete_detached(sorted(self.scp_dir.glob("view-old-*")))
        return True

    def retry_unrecorded(self) -> list[str]:
        """Record the runs of this process whose record failed earlier; returns those done."""
        done = []
        for run_id in list(self.unrecorded):
            pending = self.unrecorded.pop(run_id, None)  # atomic: one thread records it
            if pending is None:
                continue
            try:
                self.record(*pending)
            except LedgerWriteError:
                self.unrecorded[run_id] = pending  # still failing: kept for the next try
                break
            self.journal.finish(run_id, keep_events_at=self.logs_dir / f"{run_id}.events.jsonl")
            done.append(run_id)
        return done

    # -- dead processes --------------------------------------------------

    def recover(self) -> list[dict[str, Any]]:
        """Record runs whose process died as ``interrupted``; kill what they left running.

        Crash-safe and idempotent, one entry at a time: its process groups are killed,
        then it is claimed (a lock the kernel releases if this process dies), recorded
        unless already in the ledger, and only then removed from the journal.
        """
        if not self.journal.needs_recovery():
            return []
        self.journal.restore_legacy_claims()
        self.journal.sweep()
        found = []
        dead = self.journal.dead_entries()
        for number, (entry, path) in enumerate(dead):
            killed = kill_left_groups(entry.groups)  # first: a tool must not outlive a crash here
            claim = self.journal.claim(path)
            if claim is None:
                continue  # another live process is recording it, or it is done
            run_id = claim.entry.run.get("run_id", "")
            try:
                report = self._record_interrupted(claim.entry, killed)
                self.journal.finish(run_id,
                                    keep_events_at=self.logs_dir / f"{run_id}.events.jsonl")
                found.append(report)
            except ValueError as exc:
                log.error("could not record interrupted run %s (kept for the next open): %s",
                          run_id, exc)
            except LedgerWriteError as exc:  # the ledger refuses writes: the rest would too
                for _, other in dead[number + 1:]:  # still, no tool may outlive its run
                    with contextlib.suppress(OSError, ValueError, KeyError):
                        kill_left_groups(JournalEntry.from_json(other.read_bytes()).groups)
                log.error("could not record interrupted run %s and %d more (kept for the next "
                          "open): %s", run_id, len(dead) - number - 1, exc)
                break
            finally:
                claim.release()
        return found

    def _record_interrupted(self, entry: JournalEntry,
                            killed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        run = Run.from_dict(entry.run)
        groups = _merge_kills(killed or [], kill_left_groups(entry.groups))
        report = {"run_id": run.run_id, "pid": entry.pid, "groups": groups}
        head = self.store.head()
        places = ledger_dirs("runs", run.run_id)
        if any(self.store.has_path(head, f"{place}/run.json") for place in places) \
                or (demo_branch.is_demo(run) and demo_branch.recorded(self, run.run_id)):
            return report | {"already_recorded": True}  # died after recording, before cleanup
        events = self.journal.read_events(run.run_id)
        run.finish(RunStatus.INTERRUPTED, {
            "code": "interrupted",
            "message": f"process {entry.pid} on {entry.host} died while the run was in flight",
        })
        if groups:
            run.result = {**run.result, "process_groups": groups}
        from controlplane.core.output import cap_events  # local: output imports runs only

        self.record(run, cap_events(events)[0])
        return report

    # -- reading ---------------------------------------------------------

    def active(self) -> list[dict[str, Any]]:
        """Runs in flight in any process of this clone (from the journal).

        A run of this process that ended but awaits its record shows its final state.
        CI runs waiting for their completion (``.git/scp/ingest/``) are listed too.
        """
        from controlplane.core.ingest_pending import pending_runs

        return [self.unrecorded[e.run["run_id"]][0].to_dict()
                if e.run.get("run_id") in self.unrecorded else e.run
                for e in self.journal.entries() if e.alive] + pending_runs(self.scp_dir)

    def get(self, run_id: str) -> dict[str, Any] | None:
        """A run, finished (index) or in flight (journal)."""
        found = self.index.get(run_id)
        if found is None:
            self.catch_up()
            found = self.index.get(run_id)
        if found is None:
            for run in self.active():
                if run.get("run_id") == run_id:
                    return run
        return found

    def recent(self, limit: int = 50, type: str | None = None, status: str | None = None,
               before: str | None = None, include_active: bool = True) -> list[dict[str, Any]]:
        """Newest first; in-flight runs from the journal are merged in."""
        self.catch_up()
        runs = self.index.recent(limit=limit, type=type, status=status, before=before)
        if include_active:
            wanted = [r for r in self.active()
                      if (not type or r.get("type") == type)
                      and (not status or r.get("status") == status)
                      and (not before or r["run_id"] < before)]
            if wanted:
                runs = sorted(runs + wanted, key=lambda r: r["run_id"], reverse=True)[:limit]
        return runs

    def events(self, run_id: str, after: int = 0, raw: bool = False,
               tail: int | None = None) -> list[dict[str, Any]]:
        """A run's events after *after*: the whole raw log when *raw* and kept locally.

        With *tail*, only the newest *tail* of them, behind a ``run:truncated``
        marker counting the rest. A local log (the spool, the raw log) is read
        from the first line above *after* on (binary search on seq), never whole.
        """
        spool = self.journal.events_path(run_id)
        log_path = self.logs_dir / f"{run_id}.events.jsonl"
        for path, wanted in ((spool, self.journal.meta_path(run_id).exists()
                              or _has_bytes(spool)), (log_path, raw and log_path.exists())):
            if not wanted:
                continue
            local = rawlog.read_tail(path, after, tail) if tail is not None \
                else list(rawlog.iter_events(path, after))
            if local or path.exists():
                return local
        data = self._ledger_events(run_id)
        events = _parse_jsonl(data or b"", after)
        return events if tail is None else cap_events(events, head=0, tail=tail)[0]

    def _ledger_events(self, run_id: str) -> bytes | None:
        """A run's events.jsonl at the ledger tip, in either layout."""
        head = self.store.head()
        for directory in ledger_dirs("runs", run_id):
            data = self.store.read_blob(head, f"{directory}/events.jsonl")
            if data is not None:
                return data
        return demo_branch.events(self, run_id)

    def iter_events(self, run_id: str) -> Iterator[dict[str, Any]]:
        """Every event of a run, lazily: the local spool or raw log, else the ledger's."""
        for path in (self.journal.events_path(run_id), self.logs_dir / f"{run_id}.events.jsonl"):
            if path.exists():
                yield from rawlog.iter_events(path)
                return
        yield from self.events(run_id)

    # -- sync ------------------------------------------------------------

    @property
    def _synced_path(self) -> Path:
        return self.scp_dir / "synced-heads"

    def mark_synced(self, head: str) -> None:
        """Remember that *head* came from a pull, so feeds announce it once, not run by run."""
        with open(self._synced_path, "a") as fh:
            fh.write(head + "\n")

    def is_synced(self, head: str) -> bool:
        try:
            return head in self._synced_path.read_text().split()[-1000:]
        except OSError:
            return False

    # -- upkeep ----------------------------------------------------------

    def prune_logs(self) -> int:
        """Keep the newest ``logs_retention`` raw logs (run ids sort by time); returns removed."""
        try:  # a listing of names: pathlib's glob of 1,000 logs took 30 ms every 100 records
            with os.scandir(self.logs_dir) as found:
                logs = sorted(e.name for e in found if e.name.endswith(".events.jsonl"))
        except FileNotFoundError:
            return 0
        stale = logs[: max(0, len(logs) - self.logs_retention)]
        for name in stale:
            (self.logs_dir / name).unlink(missing_ok=True)
        return len(stale)

    def _maintain(self, skip_run: str | None = None) -> None:
        """Pack in the background when git would (``gc_due``), else roll up the small
        packs of the records (``packs_due``)."""
        if self.gc_due():
            self.gc_in_background(skip_run=skip_run)
        elif self.packs_due():
            self.roll_up_packs()

    def packs_due(self) -> bool:
        """True when the records' packs (``packwrite``) number over ``PACKS_ROLLED_UP`` (or
        half git's ``gc.autoPackLimit``), at least ``PACKS_ROLLED_UP // 2`` more than when
        this process last rolled them up (a roll-up that left as many: not at each record),
        and no roll-up of this clone started in the last ``ROLL_UP_EVERY`` seconds unless
        they number over ``PACKS_URGENT``. A roll-up's ``prune-packed`` removes the empty
        ``objects/xx`` directories, and a loose-object writer that has just made one (git,
        libgit2) fails when it goes between the ``mkdir`` and the file: rare, as with git's
        own gc, and kept rare by not rolling up at every sixteenth record of a busy clone.

        The pack directory is listed when the packs this process wrote since it last listed
        it could have crossed a bound, and at least every ``LIST_PACKS_EVERY`` records (the
        packs of other processes): not at every record."""
        files = self._files
        if files is None or not files.packing:
            return False
        if self._gc is not None:
            if self._gc.poll() is None:
                return False  # ours runs (a roll-up or a gc): no other would start
            self._gc = None
            self._records_unlisted = LIST_PACKS_EVERY  # what it left: listed now
        self._records_unlisted += 1
        if self._records_unlisted < LIST_PACKS_EVERY:
            estimate = self._pack_count + self._records_unlisted  # a pack a record at most
            if not self._over_count_bounds(estimate, files.pack_limit):
                return False
            if estimate <= min(PACKS_URGENT, files.pack_limit - 5) and self._rolled_up_lately():
                return False
        try:
            count = sum(map(_IS_INDEX, os.listdir(self._pack_dir)))
        except OSError:
            return False
        self._pack_count, self._records_unlisted = count, 0
        if count < self._packs_at_roll_up:
            self._packs_at_roll_up = 0  # rolled up since
        if not self._over_count_bounds(count, files.pack_limit):
            return False
        if count > min(PACKS_URGENT, files.pack_limit - 5):
            return True
        return not self._rolled_up_lately()

    def _over_count_bounds(self, count: int, pack_limit: int) -> bool:
        return (count > min(PACKS_ROLLED_UP, pack_limit // 2)
                and count >= self._packs_at_roll_up + PACKS_ROLLED_UP // 2)

    def _rolled_up_lately(self) -> bool:
        """True if a roll-up of any process here started in the last ``ROLL_UP_EVERY`` s."""
        try:  # the last roll-up of any process here: its lock file's time
            since = time.time() - os.stat(self._repack_lock).st_mtime
        except OSError:
            return False
        return since < ROLL_UP_EVERY

    def wait_background(self, timeout: float = GC_WAIT_SECONDS) -> None:
        """Wait (at most *timeout* s) for the gc or roll-up this process started, then for
        any process's roll-up (its ``flock`` on ``repack.lock``) and ``git gc`` (``gc.pid``):
        before reading the object store whole (``ledger doctor``'s fsck: a pack deleted
        under it reads as damage) or deleting the repository (benchmarks, tests)."""
        deadline = time.monotonic() + timeout
        if self._gc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._gc.wait(max(0.0, deadline - time.monotonic()))
        try:
            fd = os.open(self.scp_dir / "repack.lock", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        try:
            while fd >= 0 and time.monotonic() < deadline:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a roll-up holds it
                    break
                except BlockingIOError:
                    time.sleep(0.05)
        finally:
            if fd >= 0:
                os.close(fd)
        wait_for_gc(self.git_dir, max(0.0, deadline - time.monotonic()))

    def roll_up_packs(self) -> bool:
        """Start ``git repack -d --geometric=2`` detached, on one core (``_one_core``): it
        merges the small packs (and loose objects) into one, all their objects kept whatever
        reaches them, and leaves the large packs alone. One at a time per clone (``flock``
        on a lock of ours); not while a gc runs. Returns True if started.

        Without ``update-server-info`` (``-n``) unless the project set
        ``repack.updateServerInfo``: it lists every ref (35 ms of a 70 ms roll-up at 3,000
        run tags) for HTTP publishing that git's own gc, which refreshes it, serves."""
        if (self._gc is not None and self._gc.poll() is None) or gc_running(self.git_dir):
            return False
        repack = ["git", "--git-dir", str(self.git_dir), *self._one_core(), "repack", "-d",
                  "-q", "--geometric=2"]
        if self._files is not None and not self._files.update_server_info:
            repack.append("-n")
        lock = ["flock", "--nonblock", str(self.scp_dir / "repack.lock")]
        with contextlib.suppress(OSError):  # its time: when the last roll-up started
            (self.scp_dir / "repack.lock").touch()
        for argv in (lock + repack, repack):  # no flock (not util-linux): git alone
            try:
                self._gc = detached.start(argv)
            except OSError as exc:
                log.debug("could not start %s: %s", argv[0], exc)
                continue
            self._packs_at_roll_up = self._pack_count
            return True
        return False

    def _one_core(self) -> list[str]:
        """``-c pack.threads=1`` unless the project set ``pack.threads``: a roll-up is a
        background task, and git's default (a thread per core) took the core the records
        run on, for more CPU in all (12.3 ms against 14.8 for 16 records' packs)."""
        files = self._files  # set: only a record through FileStore rolls up its packs
        return [] if files is None or files.pack_threads_set else ["-c", "pack.threads=1"]

    def gc_due(self) -> bool:
        """True when git's own ``gc --auto`` rule says so: more loose objects in
        ``objects/17`` than ``gc.auto`` / 256 (a listing of ~30 names), or too many packs
        (``gc.autoPackLimit``, checked by git itself once started)."""
        if self._gc_auto <= 0:
            return False
        limit = -(-self._gc_auto // 256)
        sample = self._gc_sample
        try:
            changed = os.stat(sample).st_mtime_ns
            if changed == self._gc_sampled[0]:  # no name added or removed: one stat a record
                due = self._gc_sampled[1]
            else:
                with os.scandir(sample) as found:
                    due = sum(1 for entry in found if len(entry.name) >= 38) > limit
                self._gc_sampled = (changed, due)
        except OSError:
            return False
        return due and not self._gc_refused()

    def _gc_refused(self) -> bool:
        """True while git's ``gc --auto`` would refuse to run: its last run left a
        ``gc.log`` (unreachable objects it may not prune yet, say) less than a day ago,
        git's ``gc.logExpiry``. Started anyway, it exits at once, after every record."""
        try:
            age = time.time() - os.stat(self.git_dir / "gc.log").st_mtime
        except OSError:
            return False
        return age < GC_LOG_EXPIRY

    def gc_in_background(self, skip_run: str | None = None) -> bool:
        """Start ``git gc --auto`` detached (it outlives a script or the CLI), unless a run
        other than *skip_run* (the one being recorded) is in flight in this clone or the last
        one still works. Returns True if started. libgit2 never packs by itself."""
        if self._gc is not None and self._gc.poll() is None:
            return False
        if any(e.alive and e.run.get("run_id") != skip_run for e in self.journal.entries()):
            return False  # never inside a run: the next record checks again
        argv = ["git", "--git-dir", str(self.git_dir), "gc", "--auto", "--quiet"]
        try:
            self._gc = detached.start(argv)
        except OSError as exc:
            log.warning("could not start git gc --auto: %s", exc)
            return False
        return True


_exit_flush_registered = False


def _flush_indexes_at_exit() -> None:
    """Have the process's exit write the runs still batched for an index, and a forked
    child start its own timers (once)."""
    global _exit_flush_registered
    if not _exit_flush_registered:
        import atexit

        atexit.register(Ledger.flush_indexes)
        os.register_at_fork(after_in_child=_index_batches_after_fork)
        _exit_flush_registered = True


def _index_batches_after_fork() -> None:
    for ledger in list(Ledger._instances.values()):
        ledger._batches.after_fork()
        ledger._index_lock = threading.Lock()  # another thread may have held it


def _delete_detached(paths: list[Path]) -> None:
    """Delete *paths* (directories) in an ``rm -rf`` of its own session, not waited for;
    here, if it cannot start."""
    if not paths:
        return
    try:
        detached.start(["rm", "-rf", "--", *map(str, paths)])
    except OSError:
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)


def _gc_auto(repo: pygit2.Repository) -> int:
    """git's ``gc.auto`` (6700 when unset; 0 turns automatic packing off)."""
    try:
        return int(repo.config.get_int("gc.auto"))
    except (KeyError, ValueError, pygit2.GitError):
        return GC_AUTO_DEFAULT


def _merge_kills(first: list[dict[str, Any]], again: list[dict[str, Any]]
                 ) -> list[dict[str, Any]]:
    """One report per group: "killed" if either pass killed it, else the second pass's."""
    killed = {item["pgid"] for item in first if item["state"] == "killed"}
    return [{**item, "state": "killed"} if item["pgid"] in killed else item for item in again]


def _has_bytes(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _parse_jsonl(data: bytes, after: int) -> list[dict[str, Any]]:
    """The numbered events above *after* in a JSON-lines log (unreadable lines skipped)."""
    events = []
    for line in data.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events_after(events, after)
