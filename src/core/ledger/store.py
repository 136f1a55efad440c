"""The git side of the ledger: one commit per finished run on ``scp-ledger``, and run tags.

Written with pygit2 (libgit2, in process). A commit's tree is built by
rewriting only the trees on the run's path, so the cost does not grow with
the ledger. The branch moves by compare-and-swap: a lost race (``GitError``,
the tip moved; ``OSError``/``AlreadyExistsError``, the ref is locked or was
just created) rebuilds on the new tip and retries.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from controlplane.core.lazy import Lazy
from controlplane.core.ledger import gitfiles
from controlplane.core.ledger.gc_guard import CheckedOnce, Written, keep, wait_for_gc, written
from controlplane.core.ledger.layout import BUCKET, FORMAT_FILE
from controlplane.core.ledger.locks import clear_stale_locks, ref_move

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    import random

    import pygit2
    from pygit2.enums import FileMode, ObjectType
else:  # imported by the first GitStore: reading runs from a current index needs none of it
    pygit2 = Lazy(globals(), "pygit2")
    FileMode = Lazy(globals(), "FileMode", "pygit2.enums", "FileMode")
    ObjectType = Lazy(globals(), "ObjectType", "pygit2.enums", "ObjectType")
    random = Lazy(globals(), "random")  # at a first retry

BRANCH = "scp-ledger"
BRANCH_REF = f"refs/heads/{BRANCH}"
TAG_PREFIX = "refs/scp/run/"
ENTRY_KINDS = ("runs", "chat")
RUNS_DIR = "ledger/runs/"
CHAT_DIR = "ledger/chat/"
LAYOUT_VERSION = 2  # ledger/FORMAT: 2 = entries in 256 buckets a day (DECISIONS §1)
FORMAT_PATH = f"ledger/{FORMAT_FILE}"
_FORMAT_BYTES = f"{LAYOUT_VERSION}\n".encode()

_RETRIES = 200
_MISSING_RETRIES = 20  # waits of 0.1 s for a concurrent writer to restore pruned objects

# libgit2 caches no tree above 4 kB by default; a day's tree (256 buckets, or a few hundred runs
# in the old layout) is larger and would be re-parsed for every entry a catch-up reads from it.
# Not more: every commit makes new versions of the trees on its path, and libgit2 keeps cached
# objects until 256 MB (4 MB trees took one process from 94 to 616 MB over 4,000 runs).
TREE_CACHE_LIMIT = 64 * 1024  # set by the first GitStore
CACHE_CLEARED_EVERY = 100  # commits and diffs between clearings of the object cache


def _common_dir(repo: pygit2.Repository) -> str:
    """The git dir holding *repo*'s objects and refs (a linked worktree's main git dir)."""
    commondir = Path(repo.path) / "commondir"
    if commondir.exists():
        return str((Path(repo.path) / commondir.read_text().strip()).resolve())
    return str(Path(repo.path).resolve())


def direct_target(ref: pygit2.Reference | None) -> pygit2.Oid | None:
    """The commit id *ref* points at; None when it is absent or symbolic."""
    target = ref.target if ref is not None else None
    return target if isinstance(target, pygit2.Oid) else None


def _code_ref(repo: pygit2.Repository) -> dict[str, object]:
    """HEAD's commit, branch and whether tracked files differ from it in *repo*."""
    found = gitfiles.read_head(repo.path)  # a few reads, where libgit2 reads HEAD thrice
    if found is not None:
        return {"commit": found[0], "branch": found[1], "dirty": _dirty(repo)}
    if repo.head_is_unborn:
        head = repo.references.get("HEAD")
        target = head.target if head is not None else None  # symbolic: a branch name
        name = target.removeprefix("refs/heads/") if isinstance(target, str) else None
        return {"commit": None, "branch": name, "dirty": False}
    head = repo.head  # read once: HEAD and its branch ref are files read at every access
    branch = None if head.name == "HEAD" else head.shorthand  # "HEAD": detached
    return {"commit": str(head.target), "branch": branch, "dirty": _dirty(repo)}


def _dirty(repo: pygit2.Repository) -> bool:
    """True if a tracked file of *repo*'s work tree differs from HEAD (staged or not)."""
    if not repo.workdir:
        return False
    flags = pygit2.enums.FileStatus
    clean = {flags.CURRENT, flags.IGNORED}
    return any(status not in clean for status in repo.status(untracked_files="no").values())


def create_loose_ref(git_dir: Path, name: str, target: pygit2.Oid | str) -> bool:
    """Create the ref *name* as git does (``<ref>.lock``, then a rename); False if it exists.

    libgit2 reads every packed ref to create one (0.74 ms at 100k run tags); the caller has
    checked the packed refs already, through the cached lookup. A ``.lock`` held by another
    git raises ``OSError`` (FileExistsError), as libgit2 would fail.
    """
    path = f"{git_dir}/{name}"
    if os.path.lexists(path):
        return False
    lock = path + ".lock"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        fd = os.open(lock, flags, 0o666)
    except FileNotFoundError:  # the first ref of its directory
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(lock, flags, 0o666)
    renamed = False
    try:
        try:
            os.write(fd, f"{target}\n".encode())
        finally:
            os.close(fd)
        if os.path.lexists(path):  # made meanwhile by a writer that is not ours (git itself)
            return False
        os.rename(lock, path)
        renamed = True
    finally:
        if not renamed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
    return True


def _vanished(exc: OSError) -> bool:
    """True if *exc* says a path disappeared (pygit2 may give the text without the errno)."""
    return exc.errno == errno.ENOENT or "No such file or directory" in str(exc)


class LedgerWriteError(RuntimeError):
    """The ledger could not be written (disk full, permissions, endless contention)."""


class NewerLedgerFormat(LedgerWriteError):
    """The ledger's ``FORMAT`` is newer than this version writes: it must not write there."""



def in_work_tree(start: str, root: str | os.PathLike[str]) -> bool:
    """True if *start* lies in the work tree at *root* (its ``.git`` there) and no directory
    from *start* up to *root* has a ``.git`` of its own (a nested repository)."""
    top = os.path.normpath(root)
    here = start
    while here != top:
        if os.path.lexists(os.path.join(here, ".git")):
            return False
        parent = os.path.dirname(here)
        if parent == here:
            return False
        here = parent
    return os.path.lexists(os.path.join(top, ".git"))

class GitStore(CheckedOnce):
    """pygit2 access to one repository's ledger branch. Thread-safe (one lock)."""

    def __init__(self, git_dir: Path, tag_prefix: str = TAG_PREFIX) -> None:
        pygit2.settings.cache_object_limit(ObjectType.TREE, TREE_CACHE_LIMIT)  # process-wide
        self.repo = pygit2.Repository(str(git_dir))
        self.work_tree = Path(self.repo.workdir) if self.repo.workdir else None
        self.tag_prefix = tag_prefix
        self.lock = threading.RLock()
        self._uses = 0
        super().__init__()  # objects awaiting one check (checked_once)
        self._broken_tip: pygit2.Oid | None = None  # a tip found missing objects for good
        self._format_oid = pygit2.hash(_FORMAT_BYTES)  # ledger/FORMAT's blob at this version

    def _used(self) -> None:
        """Clear libgit2's object cache now and then (caller holds the lock).

        It holds every tree version a commit or a diff read; they are not read again, and
        libgit2 evicts too little of them to keep a long-lived process bounded.
        """
        self._uses += 1
        if self._uses % CACHE_CLEARED_EVERY == 0:
            self.repo.free()

    def signature(self, name: str | None = None) -> pygit2.Signature:
        try:
            default = self.repo.default_signature
            return pygit2.Signature(name or default.name, default.email)
        except (KeyError, pygit2.GitError):
            return pygit2.Signature(name or "controlplane", "controlplane@localhost")

    def head(self, branch_ref: str = BRANCH_REF) -> pygit2.Oid | None:
        """The ledger branch tip (or *branch_ref*'s), or None before the first run."""
        with self.lock:
            return direct_target(self.repo.references.get(branch_ref))

    def code_ref(self, where: str | os.PathLike[str] | None = None) -> dict[str, object]:
        """The commit, branch and dirtiness now of the work tree holding *where* (commit None
        in an empty repo).

        A linked worktree has its own HEAD and index: a run there records that worktree's
        provenance, while the ledger stays in the common git dir. Without *where* (or outside
        a work tree of this repository), the ledger repository's own work tree.
        """
        with self.lock:
            return _code_ref(self._work_repo(where) or self.repo)

    def _in_own_work_tree(self, start: str) -> bool:
        """True if *start* is in this store's work tree, with no ``.git`` of its own on the way."""
        return self.work_tree is not None and in_work_tree(start, self.work_tree)

    def _work_repo(self, where: str | os.PathLike[str] | None) -> pygit2.Repository | None:
        """The repository (worktree) holding *where*, when it shares this store's objects."""
        if where is None:
            return None
        start = gitfiles.real_path(where)  # as Path.resolve, without a Path
        if self._in_own_work_tree(start):
            return None  # no discovery (it reopens a repository): a few stats
        found = pygit2.discover_repository(start)
        if found is None:
            return None
        repo = pygit2.Repository(found)
        same = Path(repo.path).resolve() == Path(self.repo.path).resolve()
        if same or Path(_common_dir(repo)) != Path(_common_dir(self.repo)):
            return None  # the store's own work tree, or another repository altogether
        return repo

    def commit_files(
        self, directory: str, files: Mapping[str, bytes], message: str, author: str | None = None,
        branch_ref: str = BRANCH_REF,
    ) -> tuple[pygit2.Oid | None, pygit2.Oid]:
        """Add *files* under *directory* in one commit on *branch_ref*; returns (parent, tip).

        Once the branch points at the commit, objects a concurrent ``git gc --prune=now``
        deleted are written back (``gc_guard``).
        """
        with self.lock:
            self._used()
            try:
                parent, commit, objects = self._commit_files(directory, files, message, author,
                                                             branch_ref)
            except (OSError, pygit2.GitError) as exc:
                raise LedgerWriteError(f"could not write the ledger: {exc}") from exc
        self._keep(objects)
        return parent, commit

    def _keep(self, objects: list[Written]) -> None:
        """Restore what a gc pruned under this write (outside the lock: it may wait)."""
        if self._deferred_to_batch(objects):
            return
        try:
            if keep(Path(self.repo.path), objects):
                with self.lock:
                    self.repo.free()  # its cache and pack list predate the gc
        except (OSError, pygit2.GitError) as exc:
            raise LedgerWriteError(f"could not check the ledger's new objects: {exc}") from exc

    def _commit_files(self, directory, files, message, author, branch_ref=BRANCH_REF):
        repo = self.repo
        parts = directory.strip("/").split("/")
        sig = self.signature(author)
        missing = 0
        for attempt in range(_RETRIES):
            ref = repo.references.get(branch_ref)
            parent = ref.target if ref is not None else None
            try:  # every attempt writes its objects again: a prune may have taken them
                base = repo[parent].peel(pygit2.Tree) if parent is not None else None
                objects = self._entry_objects(files)
                leaf = objects[-1].oid
                extra = self._format_entry(base, objects)
                tree = self._with_subtree(base, parts, leaf, objects, extra)
                commit = repo.create_commit(None, sig, sig, message, tree,
                                            [parent] if parent else [])
                objects.append(written(repo, commit))
            except OSError as exc:  # a prune removed an emptied objects/xx under libgit2's
                if not _vanished(exc):  # write (its rename found no directory): write again
                    raise
                continue
            except (KeyError, pygit2.GitError) as exc:  # pruned: the tip's objects or ours
                missing += 1
                self._await_restore(parent, exc, missing)
                continue
            with ref_move(Path(repo.path), branch_ref, self.work_tree):  # names the writer
                try:
                    if ref is None:
                        repo.references.create(branch_ref, commit)
                    else:
                        ref.set_target(commit, message.splitlines()[0])
                    return parent, commit, objects
                except (pygit2.GitError, OSError, pygit2.AlreadyExistsError):
                    pass
            time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))  # back off, retry
        lock = Path(repo.path) / f"{branch_ref}.lock"
        if clear_stale_locks(Path(repo.path), Path(repo.workdir) if repo.workdir else None,
                             candidates=[lock]):
            return self._commit_files(directory, files, message, author,
                                      branch_ref)  # a dead git's lock
        if lock.exists():
            raise LedgerWriteError(f"the ledger branch is locked by {lock} (a git process "
                                   "writes it, or one died: `controlplane ledger doctor` "
                                   "removes a stale lock)")
        raise LedgerWriteError("the ledger branch kept moving; gave up after retries")

    def _await_restore(self, parent: pygit2.Oid | None, exc: BaseException, tries: int) -> None:
        """The tip misses objects: give a gc and the writer it pruned time to put them back."""
        if tries > _MISSING_RETRIES or parent == self._broken_tip:
            self._broken_tip = parent  # known broken: later records fail at once
            raise LedgerWriteError(
                f"the ledger tip {parent} misses objects ({exc}): a `git gc --prune=now` or "
                "`git prune` ran during a record; run `controlplane ledger doctor` to repair it")
        wait_for_gc(Path(self.repo.path))
        time.sleep(0.1)  # the pruned writer restores its objects once the gc has ended
        self.repo.free()

    def _format_entry(self, base: pygit2.Tree | None, made: list[Written]
                      ) -> dict[int, tuple[str, pygit2.Oid, int]]:
        """``ledger/FORMAT`` to add when *base* lacks it or holds an older version.

        Raises NewerLedgerFormat when *base* holds a newer one. Returns {depth: entry}
        for ``_with_subtree`` (depth 1 is the ``ledger`` tree).
        """
        try:
            entry = base[FORMAT_PATH] if base is not None else None
        except KeyError:
            entry = None
        if entry is not None:
            if entry.id == self._format_oid:
                return {}
            try:
                found = int(entry.data.strip() or b"0") if isinstance(entry, pygit2.Blob) else 0
            except ValueError:
                found = 0
            if found > LAYOUT_VERSION:
                raise NewerLedgerFormat(
                    f"the ledger's layout is version {found}, newer than this controlplane "
                    f"writes ({LAYOUT_VERSION}): upgrade controlplane")
            if found == LAYOUT_VERSION:
                return {}
        blob = self.repo.create_blob(_FORMAT_BYTES)
        made.append(Written(blob, int(ObjectType.BLOB), _FORMAT_BYTES))
        return {1: (FORMAT_FILE, blob, FileMode.BLOB)}

    def _entry_objects(self, files: Mapping[str, bytes]) -> list[Written]:
        """Write the blobs of *files* and their directory's tree (last)."""
        objects = [Written(self.repo.create_blob(data), int(ObjectType.BLOB), bytes(data))
                   for _, data in sorted(files.items())]
        leaf = self.repo.TreeBuilder()
        for name, item in zip(sorted(files), objects, strict=True):
            leaf.insert(name, item.oid, FileMode.BLOB)
        objects.append(written(self.repo, leaf.write()))
        return objects

    def _with_subtree(self, tree: pygit2.Tree | None, parts: list[str], leaf: pygit2.Oid,
                      made: list[Written], extra: Mapping[int, tuple[str, pygit2.Oid, int]]
                      | None = None, depth: int = 0) -> pygit2.Oid:
        """The new tree with *leaf* at *parts* under *tree*; new trees are added to *made*.

        *extra* maps a depth on the path to one more entry to insert in that tree.
        """
        builder = self.repo.TreeBuilder(tree) if tree is not None else self.repo.TreeBuilder()
        if extra and depth in extra:
            builder.insert(*extra[depth])
        name = parts[0]
        if len(parts) == 1:
            builder.insert(name, leaf, FileMode.TREE)
        else:
            child = None
            if tree is not None and name in tree:
                entry = tree[name]
                child = entry if isinstance(entry, pygit2.Tree) else None
            builder.insert(name, self._with_subtree(child, parts[1:], leaf, made, extra,
                                                    depth + 1), FileMode.TREE)
        new_tree = builder.write()
        made.append(written(self.repo, new_tree))
        return new_tree

    def resolve_commit(self, text: str | None) -> str | None:
        """The full id of commit *text* (a full or short hex id) if this repository has it."""
        if not text:
            return None
        with self.lock:
            try:
                return str(self.repo.revparse_single(text).peel(pygit2.Commit).id)
            except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
                return None

    def stage_tag(self, run_id: str, commit: str, message: str, tagger: str | None = None
                  ) -> None:
        """Nothing: ``tag_run`` writes the tag object here (``FileStore`` packs it with the
        commit)."""

    def tag_run(self, run_id: str, commit: str, message: str, tagger: str | None = None) -> bool:
        """Create the annotated tag object ``scp/run/<id>`` on *commit*; False if it exists."""
        with self.lock:
            ref_name = self.tag_prefix + run_id
            if ref_name in self.repo.references:
                return False
            sig = self.signature(tagger)
            offset = sig.offset
            sign = "-" if offset < 0 else "+"
            raw = (
                f"object {commit}\ntype commit\ntag scp/run/{run_id}\n"
                f"tagger {sig.name} <{sig.email}> {sig.time} "
                f"{sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}\n\n{message}\n"
            ).encode()
            try:
                tag = self.repo.odb.write(ObjectType.TAG, raw)
                with ref_move(Path(self.repo.path), ref_name, self.work_tree):
                    if not create_loose_ref(Path(self.repo.path), ref_name, tag):
                        return False
            except pygit2.AlreadyExistsError:
                return False
            except (OSError, pygit2.GitError) as exc:
                raise LedgerWriteError(f"could not write the run tag: {exc}") from exc
        self._keep([Written(tag, int(ObjectType.TAG), raw)])
        return True

    def read_blob(self, commit: pygit2.Oid | str | None, path: str) -> bytes | None:
        """A file's bytes at *path* in the ledger commit (the tip by default)."""
        with self.lock:
            target = commit or self.head()
            if target is None:
                return None
            try:
                entry = self.repo[target].peel(pygit2.Tree)[path]
            except (KeyError, ValueError):
                return None
            return entry.data if isinstance(entry, pygit2.Blob) else None

    def has_path(self, commit: pygit2.Oid | None, path: str) -> bool:
        with self.lock:
            if commit is None:
                return False
            try:
                self.repo[commit].peel(pygit2.Tree)[path]
            except (KeyError, pygit2.GitError):  # absent, or pruned (doctor repairs that)
                return False
            return True

    def changed_entry_dirs(self, old: pygit2.Oid | None, new: pygit2.Oid | None
                           ) -> tuple[list[str], list[str]]:
        """Entry directories (runs, chat messages) added/changed and removed between commits.

        Recurses only into subtrees whose ids differ, so the cost follows the
        change, not the ledger.
        """
        with self.lock:
            self._used()
            repo = self.repo
            old_tree = repo[old].peel(pygit2.Tree) if old is not None else None
            new_tree = repo[new].peel(pygit2.Tree) if new is not None else None
            changed: list[str] = []
            removed: list[str] = []
            self._diff(old_tree, new_tree, "", 0, changed, removed)
            return changed, removed

    def _diff(self, old, new, prefix, depth, changed, removed):
        # an entry directory: ledger/{runs,chat}/YYYY/MM/DD/<id> (depth 5) or, bucketed,
        # ledger/{runs,chat}/YYYY/MM/DD/<bb>/<id> (depth 6)
        old_entries = {e.name: e for e in old} if old is not None else {}
        new_entries = {e.name: e for e in new} if new is not None else {}
        for name in old_entries.keys() | new_entries.keys():
            if (depth == 0 and name != "ledger") or (depth == 1 and name not in ENTRY_KINDS):
                continue
            a, b = old_entries.get(name), new_entries.get(name)
            if a is not None and b is not None and a.id == b.id:
                continue
            path = f"{prefix}{name}"
            if depth == 6 or (depth == 5 and not BUCKET.fullmatch(name)):
                (changed if b is not None else removed).append(path)
                continue
            a_tree = a if a is not None and a.type == ObjectType.TREE else None
            b_tree = b if b is not None and b.type == ObjectType.TREE else None
            self._diff(a_tree, b_tree, path + "/", depth + 1, changed, removed)

    def walk_run_dirs(self, commit: pygit2.Oid | None) -> Iterator[str]:
        """Every run directory in a ledger commit."""
        changed, _ = self.changed_entry_dirs(None, commit)
        yield from (d for d in changed if d.startswith(RUNS_DIR))

    def read_dir(self, commit: pygit2.Oid | None, directory: str) -> dict[str, bytes]:
        """The files of one entry directory at *commit*."""
        with self.lock:
            if commit is None:
                return {}
            try:
                tree = self.repo[commit].peel(pygit2.Tree)[directory]
            except KeyError:
                return {}
            if not isinstance(tree, pygit2.Tree):
                return {}
            return {e.name: e.data for e in tree
                    if isinstance(e, pygit2.Blob) and e.name is not None}
