"""A run's record written with plain files: its commit on ``scp-ledger`` and its run tag.

``GitStore`` writes through pygit2, whose import costs a one-run process (``controlplane
exec``, a script's single ``tracked_run``) about 35 ms, more than the record itself. This
writes the same objects, ids, ref, reflog line and tag through ``odb``, with the same
compare-and-swap, retries and gc guard, and answers ``Unsupported`` for anything it does
not read as git does (an include in the configuration, SHA-256, alternates, reftable, a
name git would refuse), always before the branch moved: the caller then records with
``GitStore``. Tests hold the two to the same bytes.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from controlplane.core.lazy import Lazy
from controlplane.core.ledger import gitconfig, gitfiles
from controlplane.core.ledger.gc_guard import CheckedOnce, Written, keep, wait_for_gc
from controlplane.core.ledger.gitconfig import Unsupported
from controlplane.core.ledger.locks import ref_move
from controlplane.core.ledger.odb import TYPES, ObjectDatabase, sha1
from controlplane.core.ledger.packwrite import object_id, write_pack
from controlplane.core.ledger.store import (
    _FORMAT_BYTES,
    _MISSING_RETRIES,
    _RETRIES,
    BRANCH_REF,
    FORMAT_PATH,
    LAYOUT_VERSION,
    TAG_PREFIX,
    LedgerWriteError,
    NewerLedgerFormat,
    create_loose_ref,
)
from controlplane.core.ledger.trees import BLOB_MODE, TREE_MODE, Tree, parse_tree, tree_bytes

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    import random

    from controlplane.core.ledger.store import GitStore
else:
    random = Lazy(globals(), "random")  # at a first retry

_TYPE_NUMBERS = {name: number for number, name in TYPES.items()}
_TREE, _BLOB = TREE_MODE, BLOB_MODE
_ZERO = "0" * 40
_FALLBACK_IDENTITY = ("controlplane", "controlplane@localhost")  # GitStore.signature's
GC_AUTO_DEFAULT = 6700
CONFIG_CHECKED_EVERY = 1.0  # seconds: git's configuration files are stat'ed at most this often
TREES_KEPT = 640  # a day's 256 buckets of runs and of chat, and the paths to them: the
# trees a record replaces are forgotten when its commit lands, so what stays is what is current
PACK_LIMIT_DEFAULT = 50  # git's gc.autoPackLimit
_FORMAT_OID = sha1(b"blob %d\0" % len(_FORMAT_BYTES) + _FORMAT_BYTES).digest()

def _checked_name(name: str) -> str:
    """*name* as libgit2 takes it in a signature, or Unsupported where it would differ."""
    if not name or name != name.strip() or any(c in name for c in "<>\n\0"):
        raise Unsupported(f"a signature name {name!r}")
    return name


def _timestamp() -> str:
    """Now as git writes it in a signature: seconds and the local offset (``+0100``)."""
    now = time.time()
    offset = time.localtime(now).tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    return f"{int(now)} {sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"


class FileStore(CheckedOnce):
    """The write side of ``GitStore`` in plain Python, for one repository's ledger."""

    def __init__(self, git_dir: Path, tag_prefix: str, work_tree: Path | None,
                 fallback: Callable[[], GitStore]) -> None:
        self.git_dir = git_dir
        self._stamp: list[tuple[int, int]] = []
        self._stamped_at = time.monotonic()
        self._configure()
        self.work_tree = work_tree
        self.tag_prefix = tag_prefix
        self.fallback = fallback
        self.odb = ObjectDatabase(git_dir / "objects")
        self.lock = threading.RLock()  # one writer of this process at a time, as GitStore's
        super().__init__()  # objects awaiting one check (checked_once)
        self._trees: dict[str, tuple[Tree, str]] = {}  # id -> (entries, file holding it)
        self._present: set[str] = set()  # files seen by this record's attempt (_still_there)
        self._new_trees: dict[str, Tree] = {}  # the trees of the commit being made
        self._replaced: list[str] = []  # the trees its path had before (ids)
        self._packed: tuple[str, set[str]] = ("", set())  # the last pack written: index, ids
        self._staging = threading.local()  # .tag: (run id, commit, tag object) of stage_tag
        self._commit_trees: dict[str, tuple[str, str]] = {}  # commit -> (tree, file holding)
        self._commits_found: dict[str, str] = {}  # code commit -> file holding it

    def _configure(self) -> None:
        """Read what the records need of git's configuration; again once a file changed."""
        config = gitconfig.read_config(self.git_dir)
        if config.get("extensions.objectformat", "sha1") != "sha1" or \
                config.get("extensions.refstorage", "files") != "files":
            raise Unsupported("an object format or ref storage other than git's default")
        if gitconfig.integer(config.get("core.repositoryformatversion", "0")) > 1:
            raise Unsupported("a repository format version above 1")
        name, email = config.get("user.name"), config.get("user.email")
        self.identity = (name, email) if name and email else None
        logging = config.get("core.logallrefupdates", "")
        self.log_refs = "always" if (logging or "").lower() == "always" else \
            gitconfig.boolean(logging) if logging != "" else True  # unset: not bare, so on
        gc_auto = config.get("gc.auto")
        self.gc_auto = gitconfig.integer(gc_auto) if gc_auto is not None else GC_AUTO_DEFAULT
        pack_limit = config.get("gc.autopacklimit")
        self.pack_limit = gitconfig.integer(pack_limit) if pack_limit is not None \
            else PACK_LIMIT_DEFAULT
        # a pack per record needs git's automatic packing to roll packs up: off, loose
        self.packing = self.gc_auto > 0 and self.pack_limit > 0
        server_info = config.get("repack.updateserverinfo")  # set: the project publishes
        self.update_server_info = server_info is not None and gitconfig.boolean(server_info)
        self.pack_threads_set = config.get("pack.threads") is not None  # the project's: kept
        self._stamp = self._config_stamp()

    def _config_stamp(self) -> list[tuple[int, int]]:
        stamp = []
        for path in gitconfig.config_files(self.git_dir):
            try:
                found = os.stat(path)
                stamp.append((found.st_mtime_ns, found.st_size))
            except OSError:
                stamp.append((0, -1))
        return stamp

    def _signature(self, name: str | None) -> str:
        """``name <email> time offset`` as ``GitStore.signature`` makes it (the identity of
        git's configuration now)."""
        now = time.monotonic()
        if now - self._stamped_at > CONFIG_CHECKED_EVERY:
            self._stamped_at = now
            if self._config_stamp() != self._stamp:
                self._configure()
        default_name, email = self.identity or _FALLBACK_IDENTITY
        return f"{_checked_name(name or default_name)} <{email}> {_timestamp()}"

    # -- signatures ------------------------------------------------------

    def _log_signature(self) -> str:
        name, email = self.identity or ("unknown", "unknown")  # libgit2's reflog identity
        return f"{name} <{email}> {_timestamp()}"

    # -- reading ---------------------------------------------------------

    def head(self, branch_ref: str = BRANCH_REF) -> str | None:
        return gitfiles.read_ref(self.git_dir, branch_ref)

    def _tree_of_commit(self, commit: str) -> str:
        """The tree of *commit*: remembered for the commits this store wrote while the file
        holding the commit is there (one stat) or found again elsewhere, else read."""
        known = self._commit_trees.get(commit)
        if known is not None:
            if self._still_there(known[1]):
                return known[0]
            where = self.odb.locate(commit)  # a roll-up moved it: the same tree
            if where is not None:
                self._commit_trees = {commit: (known[0], where)}
                return known[0]
        kind, data = self.odb.read(commit)
        if kind != "commit" or not data.startswith(b"tree "):
            raise Unsupported(f"{commit} is not a commit")
        return data[5:45].decode("ascii")

    def _tree(self, oid: bytes | str | None) -> Tree:
        """A tree's entries: from the trees this store wrote or read lately while the file
        holding the object (loose, or a pack's index) is still on disk (one stat, not a
        read and an inflate), else read."""
        if oid is None:
            return Tree()
        hex_id = oid if isinstance(oid, str) else oid.hex()
        known = self._trees.get(hex_id)
        if known is not None:
            if self._still_there(known[1]):
                return known[0]
            where = self.odb.locate(hex_id)  # a roll-up moved it: the same entries
            if where is not None:
                self._remember(hex_id, known[0], where)
                return known[0]
        kind, data, where = self.odb.read_from(hex_id)
        if kind != "tree":
            raise Unsupported(f"{oid!r} is a {kind}, not a tree")
        entries = parse_tree(data)
        self._remember(hex_id, entries, where)
        return entries

    def _still_there(self, path: str) -> bool:
        """True if the file *path* exists: one stat per file for the record being made
        (the trees on its path are most often in one pack)."""
        if path in self._present:
            return True
        if os.path.exists(path):
            self._present.add(path)
            return True
        return False

    def _remember(self, hex_id: str, entries: Tree, where: str) -> None:
        trees = self._trees
        trees[hex_id] = (entries, where)
        if len(trees) > TREES_KEPT:
            del trees[next(iter(trees))]

    def resolve_commit(self, text: str | None) -> str | None:
        """The full id of commit *text* if this repository has it (as ``GitStore``'s). A
        commit found here before is taken while the file holding it is there (one stat:
        the packs change at every record, and a search lists them again)."""
        if not text:
            return None
        if len(text) != 40 or not gitfiles.is_oid(text):
            return self.fallback().resolve_commit(text)  # a short id: libgit2 resolves it
        known = self._commits_found.get(text)
        if known is not None and os.path.exists(known):
            return text
        try:
            with self.lock:
                kind, _, where = self.odb.read_from(text)
        except KeyError:
            return None
        except Unsupported:
            return self.fallback().resolve_commit(text)
        if kind != "commit":
            return self.fallback().resolve_commit(text)
        if len(self._commits_found) >= TREES_KEPT:
            self._commits_found.pop(next(iter(self._commits_found)))
        self._commits_found[text] = where
        return text

    # -- writing ---------------------------------------------------------

    def _write(self, kind: str, data: bytes, made: list[Written]) -> bytes:
        """The id of a new object, written by ``_store`` (with the others of *made*)."""
        oid = object_id(kind, data)
        made.append(Written(oid.hex(), _TYPE_NUMBERS[kind], data))
        return oid

    def _store(self, made: list[Written], trees: dict[str, Tree]) -> str | None:
        """Write the objects of *made*: one pack (``packwrite``), or loose when there is one
        or packing is off; the *trees* among them are kept for the next record. Returns
        the pack's index, None when loose."""
        if self.packing and len(made) > 1:
            ids = [bytes.fromhex(str(item.oid)) for item in made]
            where = write_pack(self.odb.dir, [(TYPES[item.type], item.data) for item in made],
                               ids)
            self.odb.add_pack(where, frozenset(ids))
            for hex_id, entries in trees.items():
                self._remember(hex_id, entries, where)
            self._packed = (where, {str(item.oid) for item in made})
            return where
        for item in made:
            hex_id = self.odb.write(TYPES[item.type], item.data)
            if hex_id in trees:
                self._remember(hex_id, trees[hex_id], self.odb.loose_path(hex_id))
        return None

    def _keep(self, objects: list[Written]) -> None:
        if self._deferred_to_batch(objects):
            return
        try:
            keep(self.git_dir, objects, restore=self._restore_missing)
        except OSError as exc:
            raise LedgerWriteError(f"could not check the ledger's new objects: {exc}") from exc

    def _restore_missing(self, git_dir: Path, objects: list[Written]) -> list[Written]:
        """Write back the *objects* gone since written: those of the last pack written are
        all there while its index is (a pack is deleted whole, never edited)."""
        where, inside = self._packed
        if inside and os.path.exists(where):
            objects = [item for item in objects if str(item.oid) not in inside]
        with self.lock:
            missing = [item for item in objects if not self.odb.exists(str(item.oid))]
            for item in missing:
                self.odb.write(TYPES[item.type], item.data)
        return missing

    def commit_files(self, directory: str, files: Mapping[str, bytes], message: str,
                     author: str | None = None, branch_ref: str = BRANCH_REF
                     ) -> tuple[str | None, str]:
        """As ``GitStore.commit_files``; Unsupported only before the branch moved."""
        with self.lock:
            try:
                parent, commit, made = self._commit(directory, files, message, author,
                                                    branch_ref)
            finally:
                self._present = set()  # seen during that record only
        self._keep(made)  # outside the lock: it may wait for a gc
        return parent, commit

    def _commit(self, directory: str, files: Mapping[str, bytes], message: str,
                author: str | None, branch_ref: str) -> tuple[str | None, str, list[Written]]:
        signature = self._signature(author)
        parts = directory.strip("/").split("/")
        missing = 0
        for attempt in range(_RETRIES):
            parent = self.head(branch_ref)
            made: list[Written] = []
            self._new_trees, self._replaced = {}, []
            self._present = set()
            try:
                root_id = self._tree_of_commit(parent) if parent else None
                if root_id is not None:
                    self._replaced.append(root_id)
                root = self._tree(root_id)
                leaf = self._entry_tree(files, made)
                extra = self._format_entry(root, made)
                tree = self._with_subtree(root, parts, leaf, made, extra)
                head = f"tree {tree.hex()}\n" + (f"parent {parent}\n" if parent else "")
                raw = f"{head}author {signature}\ncommitter {signature}\n\n{message}"
                commit = self._write("commit", raw.encode(), made).hex()
                staged = getattr(self._staging, "tag", None)
                if staged is not None:
                    self._write("tag", staged[2], made)
                pack = self._store(made, self._new_trees)  # before the branch points at them
                self._commit_trees = {commit: (tree.hex(), pack or self.odb.loose_path(commit))}
            except FileNotFoundError:  # a prune removed an emptied objects/xx: write again
                continue
            except KeyError as exc:  # pruned: the tip's objects
                missing += 1
                self._await_restore(parent, exc, missing)
                continue
            except OSError as exc:
                raise LedgerWriteError(f"could not write the ledger: {exc}") from exc
            try:
                with ref_move(self.git_dir, branch_ref, self.work_tree):
                    moved = self._move_ref(branch_ref, parent, commit,
                                           message.splitlines()[0] if parent else None)
            except FileExistsError:
                moved = False  # git's or a dying writer's lock: as libgit2, retry
            except OSError as exc:
                raise LedgerWriteError(f"could not write the ledger: {exc}") from exc
            if moved:
                self._forget_replaced()
                return parent, commit, made
            time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        # endless contention or a lock: GitStore names it (and clears a dead git's lock)
        raise Unsupported("the ledger branch kept moving or is locked")

    def _forget_replaced(self) -> None:
        """Drop the trees the commit just made replaced: the next records start from the new
        ones. A bucket's tree then stays until the next run of that bucket (one record in
        256), where keeping the last ``TREES_KEPT`` read or written would lose it first."""
        trees, new = self._trees, self._new_trees
        for hex_id in self._replaced:
            if hex_id not in new:
                trees.pop(hex_id, None)

    def _await_restore(self, parent: str | None, exc: BaseException, tries: int) -> None:
        if tries > _MISSING_RETRIES:
            raise LedgerWriteError(
                f"the ledger tip {parent} misses objects ({exc}): a `git gc --prune=now` or "
                "`git prune` ran during a record; run `controlplane ledger doctor` to repair it")
        wait_for_gc(self.git_dir)
        time.sleep(0.1)
        self.odb.close()

    def _entry_tree(self, files: Mapping[str, bytes], made: list[Written]) -> bytes:
        entries = Tree({name.encode(): (_BLOB, self._write("blob", bytes(data), made))
                        for name, data in files.items()})
        return self._written_tree(entries, made)

    def _written_tree(self, entries: Tree, made: list[Written]) -> bytes:
        if entries.raw is None:
            entries.raw = tree_bytes(entries)
        oid = self._write("tree", entries.raw, made)
        self._new_trees[oid.hex()] = entries  # the next record starts from these trees
        return oid

    def _format_entry(self, root: Tree, made: list[Written]
                      ) -> tuple[bytes, tuple[bytes, bytes]] | None:
        """``ledger/FORMAT``'s entry to add when *root* lacks it or holds an older version
        (as GitStore's); raises NewerLedgerFormat for a newer one."""
        ledger = root.get(b"ledger")
        entries = self._tree(ledger[1]) if ledger and ledger[0] == _TREE else {}
        found = entries.get(FORMAT_PATH.split("/")[1].encode())
        if found is not None:
            if found[1] == _FORMAT_OID:
                return None
            kind, data = self.odb.read(found[1].hex())
            try:
                version = int(data.strip() or b"0") if kind == "blob" else 0
            except ValueError:
                version = 0
            if version > LAYOUT_VERSION:
                raise NewerLedgerFormat(
                    f"the ledger's layout is version {version}, newer than this controlplane "
                    f"writes ({LAYOUT_VERSION}): upgrade controlplane")
            if version == LAYOUT_VERSION:
                return None
        return b"FORMAT", (_BLOB, self._write("blob", _FORMAT_BYTES, made))

    def _with_subtree(self, tree: Tree, parts: list[str], leaf: bytes,
                      made: list[Written], extra: tuple[bytes, tuple[bytes, bytes]] | None,
                      depth: int = 0) -> bytes:
        """The new tree with *leaf* at *parts* under *tree*; each new tree added to *made*.
        *extra*: one more entry for the ``ledger`` tree (depth 1)."""
        name = parts[0].encode()
        if len(parts) == 1:
            oid = leaf
        else:
            child = tree.get(name)
            if child is not None and child[0] == _TREE:
                child_id = child[1].hex()
                self._replaced.append(child_id)
                below = self._tree(child_id)
            else:
                below = Tree()
            oid = self._with_subtree(below, parts[1:], leaf, made, extra, depth + 1)
        if depth != 1 or extra is None:  # a subtree's new id: the bytes spliced
            spliced = tree.with_id(name, oid)
            if spliced is not None:
                return self._written_tree(spliced, made)
        entries = Tree(tree)
        if depth == 1 and extra is not None:
            entries[extra[0]] = extra[1]
        entries[name] = (_TREE, oid)
        return self._written_tree(entries, made)

    def _move_ref(self, name: str, old: str | None, new: str, log_message: str | None
                  ) -> bool:
        """Point *name* at *new* if it still points at *old* (git's lock file and rename)."""
        path = f"{self.git_dir}/{name}"
        lock = path + ".lock"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(lock, flags, 0o666)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(lock, flags, 0o666)
        renamed = False
        try:  # the lock stays open until renamed, as libgit2 keeps it: an open lock is a
            os.write(fd, f"{new}\n".encode())  # live writer's (locks.stale_locks)
            if self.head(name) != old:
                return False  # moved since we read it: rebuild on the new tip
            self._log_ref(name, old, new, log_message)
            os.rename(lock, path)
            renamed = True
        finally:
            os.close(fd)
            if not renamed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(lock)
        return True

    def _log_ref(self, name: str, old: str | None, new: str, message: str | None) -> None:
        """Append the reflog line libgit2 would (``core.logAllRefUpdates``)."""
        log_path = f"{self.git_dir}/logs/{name}"
        if not self.log_refs:
            return
        if self.log_refs != "always" and not name.startswith("refs/heads/") \
                and not os.path.exists(log_path):
            return
        line = f"{old or _ZERO} {new} {self._log_signature()}"
        line += f"\t{message}\n" if message else "\n"
        try:
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(log_path), exist_ok=True)
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def stage_tag(self, run_id: str, commit: str, message: str, tagger: str | None = None
                  ) -> None:
        """The tag object ``tag_run`` will point at, written with the next commit's pack (one
        file fewer per record); nothing when its signature is not ours to write."""
        try:
            raw = self._tag_bytes(run_id, commit, message, tagger)
        except Unsupported:
            return
        self._staging.tag = (run_id, commit, raw)

    def _tag_bytes(self, run_id: str, commit: str, message: str, tagger: str | None) -> bytes:
        return (f"object {commit}\ntype commit\ntag scp/run/{run_id}\n"
                f"tagger {self._signature(tagger)}\n\n{message}\n").encode()

    def tag_run(self, run_id: str, commit: str, message: str, tagger: str | None = None) -> bool:
        """As ``GitStore.tag_run``: the annotated tag ``scp/run/<id>``; False if it exists."""
        ref_name = self.tag_prefix + run_id
        staged = getattr(self._staging, "tag", None)
        self._staging.tag = None
        try:
            raw = staged[2] if staged is not None and staged[:2] == (run_id, commit) \
                else self._tag_bytes(run_id, commit, message, tagger)
        except Unsupported:
            return self.fallback().tag_run(run_id, commit, message, tagger)
        if gitfiles.read_ref(self.git_dir, ref_name) is not None:
            return False
        made: list[Written] = []
        try:
            with self.lock:
                tag = self._write("tag", raw, made).hex()
                if tag not in self._packed[1] or not os.path.exists(self._packed[0]):
                    self._store(made, {})  # not in the commit's pack: loose
                with ref_move(self.git_dir, ref_name, self.work_tree):
                    if not create_loose_ref(self.git_dir, ref_name, tag):
                        return False
        except OSError as exc:
            raise LedgerWriteError(f"could not write the run tag: {exc}") from exc
        self._keep(made)
        return True


__all__ = ["TAG_PREFIX", "FileStore", "Unsupported"]
