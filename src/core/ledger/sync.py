"""Ledger sync: push and pull ``scp-ledger`` and the run tags with an explicit remote.

- **Pull** fetches the remote's ledger into ``refs/scp/remotes/<remote>/scp-ledger`` and
  its run tags into ``refs/scp/remotes/<remote>/run/``. Nothing of it is trusted until
  every new commit's tree passed the layout check (``layout.TreeChecker``) and every tag
  name is a run id; anything else refuses the whole fetched tip (``hostile_ledger``).
  The merge is append-only (``merge.plan_append_only``): the remote adds runs and
  messages; its deletions and edits of ones we hold are not applied but reported, and
  its version of an edited one is kept under ``.git/scp/conflicts/<id>/``.
- **Push** pulls first when the remote moved, then pushes without force. A run tag
  points at a code commit, so pushing it publishes that commit: only tags whose commit
  the remote already has are pushed; the others are held and reported (unless
  ``include_unpublished``).
- **Cost**: one ``git ls-remote`` says what the remote holds; a pull fetches only the
  ledger when it is not already ours and the run tags we lack, a push sends only the tags
  the remote lacks, from a throw-away repository borrowing our objects (no temporary
  refs here: an interrupted push leaves none behind). A push with nothing new is one
  ``ls-remote`` (docs/benchmarks.md).
- **Turns**: the merge holds the writers' ref lock (``locks.ref_move``) from reading our
  tip to moving it, so local writers wait for it instead of winning every race.

Plain ``git`` runs through the tool runner (non-interactive, output into the run);
the merge commit and the ref moves (compare-and-swap) go through pygit2.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from controlplane.core.ledger.layout import LayoutError, TreeChecker, is_entry_id
from controlplane.core.ledger.ledger import Ledger
from controlplane.core.ledger.locks import WriterLockTimeout, ref_move
from controlplane.core.ledger.merge import MergePlan, plan_append_only
from controlplane.core.ledger.store import BRANCH, BRANCH_REF, TAG_PREFIX, direct_target
from controlplane.core.ledger.view import write_private
from controlplane.core.redact import redact
from controlplane.core.tools import ToolResult, run_tool, tool_env

log = logging.getLogger(__name__)

REMOTE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
OUTBOX = "refs/scp/outbox/"  # temporary refs of older versions' pushes: removed when seen
FETCH_BY_NAME = 200  # missing run tags fetched by name; more: all of them (one pattern)
OUTBOX_DIR = "outbox-"  # under .git/scp/: a push's throw-away repository, <pid>-<random>
CONFLICTS = "conflicts"  # under .git/scp/: remote versions of entries we kept ours of


# git push's words for a remote whose refs moved since we read them: fetch, merge, try again.
# "cannot lock ref ... is at X but expected Y": another push (one of ours, interrupted, whose
# git went on) landed between git's ref advertisement and its update.
REMOTE_MOVED = ("fetch first", "non-fast-forward", "but expected")

def rejection_reason(stderr: str) -> str:
    """What the remote said (its ``remote:`` lines, e.g. a hook's reason), then git's verdict.

    With many refs pushed, git's per-ref lines would push the reason out of a plain tail.
    """
    lines = stderr.strip().splitlines()
    said = [line for line in lines if line.startswith("remote:")][:10]
    if not said:
        return stderr.strip()[-500:]
    return "\n".join([*(line[:200] for line in said), lines[-1][:200]])


class SyncError(RuntimeError):
    """A sync step failed; ``code`` says which (``remote_rejected``, ``fetch_failed``…)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class SyncReport:
    remote: str
    pulled_runs: int = 0
    merged: bool = False
    pushed: bool = False
    tags_pushed: int = 0
    tags_held: list[str] = field(default_factory=list)
    refused_changes: list[str] = field(default_factory=list)  # ids theirs deleted or edited
    conflicts_dir: str | None = None

    @property
    def warning(self) -> str | None:
        """One line naming the remote deletions and edits that were not applied."""
        if not self.refused_changes:
            return None
        shown = ", ".join(self.refused_changes[:10])
        more = len(self.refused_changes) - 10
        aside = (f"; their versions of edited entries: ls {self.conflicts_dir}"
                 if self.conflicts_dir else "")
        return (f"{self.remote} deleted or changed {len(self.refused_changes)} runs or "
                f"messages we hold, not applied (the ledger is append-only): {shown}"
                + (f" and {more} more" if more > 0 else "") + aside)

    def to_dict(self) -> dict[str, Any]:
        return {"remote": self.remote, "pulled_runs": self.pulled_runs, "merged": self.merged,
                "pushed": self.pushed, "tags_pushed": self.tags_pushed,
                "tags_held": self.tags_held[:100], "tags_held_count": len(self.tags_held),
                "refused_changes": self.refused_changes[:100],
                "refused_changes_count": len(self.refused_changes),
                "conflicts_dir": self.conflicts_dir, "warning": self.warning}


def check_remote(remote: str) -> str:
    """*remote* if it is a plain remote name (never an option such as ``--upload-pack=…``)."""
    if not REMOTE_PATTERN.match(remote or ""):
        raise ValueError(f"invalid remote name {remote!r}")
    return remote


class LedgerSync:
    """Push and pull one repository's ledger. Not for concurrent use on one ledger."""

    def __init__(self, ledger: Ledger, remote: str = "origin") -> None:
        self.ledger = ledger
        self.remote = check_remote(remote)
        self.tracking = f"refs/scp/remotes/{self.remote}/{BRANCH}"
        self.staged = f"refs/scp/remotes/{self.remote}/run/"  # fetched tags, until checked

    def _git(self, *args: str) -> ToolResult:
        return run_tool(["git", "-C", str(self.ledger.root), *args], timeout=300)

    def _git_quiet(self, args: list[str], stdin: str | None = None
                   ) -> subprocess.CompletedProcess[str]:
        """Plain git whose output is data, not news for the run (a listing, ref updates)."""
        return subprocess.run(["git", "-C", str(self.ledger.root), *args], input=stdin,
                              stdin=None if stdin is not None else subprocess.DEVNULL,
                              capture_output=True, text=True, env=tool_env(None),
                              timeout=300, check=False)

    def _remote_refs(self) -> dict[str, str]:
        """Every ref the remote holds (name -> object id), from one ``git ls-remote``."""
        listed = self._git_quiet(["ls-remote", "--", self.remote])
        if listed.returncode != 0:
            raise SyncError("fetch_failed", f"git ls-remote {self.remote} failed: "
                            + redact(listed.stderr.strip()[-300:]))
        refs = {}
        for line in listed.stdout.splitlines():
            sha, _, name = line.partition("\t")
            refs[name] = sha
        return refs

    def _contains(self, sha: str | None) -> bool:
        """True if commit *sha* is our ledger tip or in its history (nothing to fetch)."""
        if sha is None:
            return True
        with self.ledger.store.lock:
            repo = self.ledger.store.repo
            ours = self.ledger.store.head()
            if ours is None:
                return False
            try:
                theirs = pygit2.Oid(hex=sha)
                return ours == theirs or (theirs in repo and repo.descendant_of(ours, theirs))
            except (ValueError, pygit2.GitError):
                return False

    def _missing_tags(self, remote_refs: dict[str, str]) -> list[str]:
        """The remote's run tag names we lack; a name that is no run id refuses the remote."""
        with self.ledger.store.lock:
            ours = set(self.ledger.store.repo.references)
        missing = []
        for name in remote_refs:
            if not name.startswith(TAG_PREFIX) or name.endswith("^{}") or name in ours:
                continue
            if not is_entry_id(name[len(TAG_PREFIX):]):
                raise SyncError("hostile_ledger", f"refused the ledger of {self.remote}: "
                                f"{name[:120]!a} is not a run tag (run id); nothing of it was "
                                "merged (ask who writes that remote)")
            missing.append(name)
        return missing

    def _fetch(self, remote_refs: dict[str, str]) -> pygit2.Oid | None:
        """Fetch what we lack of the remote's ledger and run tags into our staging refs.

        Returns the remote ledger tip when it has to be checked and merged, else None.
        """
        remote_tip = remote_refs.get(BRANCH_REF)
        specs = [] if self._contains(remote_tip) else [f"+{BRANCH_REF}:{self.tracking}"]
        missing = self._missing_tags(remote_refs)
        if len(missing) > FETCH_BY_NAME:  # git matches each named refspec against every ref
            specs.append(f"+{TAG_PREFIX}*:{self.staged}*")
        else:
            specs += [f"+{name}:{self.staged}{name[len(TAG_PREFIX):]}" for name in missing]
        if not specs:
            return None
        # fetch.unpackLimit=1: what is fetched stays one pack, as a record is (packwrite), and
        # is never written as loose files racing a roll-up's prune-packed over objects/xx
        fetched = run_tool(["git", "-C", str(self.ledger.root), "-c", "fetch.unpackLimit=1",
                            "fetch", "--no-tags", "--quiet", "--refmap=", "--stdin", "--",
                            self.remote],
                           stdin_data="".join(f"{spec}\n" for spec in specs), timeout=300)
        if not fetched.ok:
            raise SyncError("fetch_failed", fetched.stderr.strip()[-500:] or
                            fetched.error_message)
        if not specs[0].startswith(f"+{BRANCH_REF}:"):
            return None
        with self.ledger.store.lock:
            return direct_target(self.ledger.store.repo.references.get(self.tracking))

    def pull(self, remote_refs: dict[str, str] | None = None) -> SyncReport:
        """Fetch, check and merge the remote's runs into the local ledger (append-only).

        *remote_refs*: the remote's listing when the caller has it (``push``).
        """
        report = SyncReport(self.remote)
        if remote_refs is None:
            remote_refs = self._remote_refs()
        before = self.ledger.index.count()
        try:
            remote_tip = self._fetch(remote_refs)
            tags = self._checked(remote_tip)
            if remote_tip is not None:
                report.merged = self._merge(remote_tip, report)
            if BRANCH_REF in remote_refs:
                tip = self.ledger.store.head()
                if tip is not None:
                    self.ledger.mark_synced(str(tip))
            self._adopt_tags(tags)
        finally:
            self._drop_refs(self.staged)
        self.ledger.catch_up()
        report.pulled_runs = self.ledger.index.count() - before
        return report

    def _checked(self, remote_tip: pygit2.Oid | None) -> dict[str, pygit2.Oid]:
        """The staged run tags, once they and the remote ledger passed the layout check.

        Anything outside the layout refuses the whole fetched tip: the tracking ref is
        dropped and nothing of it reaches ``scp-ledger``, the run tags, the view or the index.
        """
        store = self.ledger.store
        with store.lock:
            repo = store.repo
            try:
                tags: dict[str, pygit2.Oid] = {}
                for ref_name in [r for r in repo.references if r.startswith(self.staged)]:
                    run_id = ref_name[len(self.staged):]
                    if not is_entry_id(run_id):
                        raise LayoutError(TAG_PREFIX + run_id, "is not a run tag (run id)")
                    target = direct_target(repo.references[ref_name])
                    if target is None:  # symbolic
                        raise LayoutError(TAG_PREFIX + run_id, "does not point at a commit")
                    try:
                        repo[target].peel(pygit2.Commit)
                    except (KeyError, ValueError, pygit2.InvalidSpecError):
                        raise LayoutError(TAG_PREFIX + run_id,
                                          "does not point at a commit") from None
                    tags[TAG_PREFIX + run_id] = target
                if remote_tip is not None:
                    TreeChecker(repo).check_history(remote_tip, store.head())
            except (LayoutError, pygit2.GitError, KeyError, ValueError) as exc:
                self._drop_refs(self.staged)
                self._drop_refs(self.tracking)
                why = exc if isinstance(exc, LayoutError) else f"unreadable ({exc!a})"
                raise SyncError("hostile_ledger", f"refused the ledger of {self.remote}: "
                                f"{why}; nothing of it was merged (ask who writes that "
                                "remote)") from None
            return tags

    def _adopt_tags(self, tags: dict[str, pygit2.Oid]) -> None:
        """Create the checked run tags we lack (one transaction); a tag we hold never moves."""
        if not tags:
            return
        lines = "".join(f"create {name} {target}\n" for name, target in tags.items())
        if self._git_quiet(["update-ref", "--stdin"], lines).returncode == 0:
            return
        with self.ledger.store.lock:  # one of them appeared meanwhile: one by one
            refs = self.ledger.store.repo.references
            for ref_name, target in tags.items():
                if ref_name not in refs:
                    try:
                        refs.create(ref_name, target)
                    except pygit2.AlreadyExistsError:
                        continue

    def _drop_refs(self, prefix: str) -> None:
        """Delete the refs named *prefix* or under it, in one transaction."""
        with self.ledger.store.lock:
            names = [r for r in self.ledger.store.repo.references
                     if r == prefix or r.startswith(prefix)]
        if not names:
            return
        dropped = self._git_quiet(["update-ref", "--stdin"],
                                  "".join(f"delete {name}\n" for name in names))
        if dropped.returncode != 0:  # a name git refuses: libgit2 deletes one by one
            with self.ledger.store.lock:
                refs = self.ledger.store.repo.references
                for name in names:
                    with contextlib.suppress(KeyError, pygit2.GitError):
                        refs.delete(name)

    def _merge(self, theirs: pygit2.Oid, report: SyncReport) -> bool:
        """Bring *theirs* into the local ledger branch; True if a merge commit was made."""
        store = self.ledger.store
        for _ in range(20):
            with store.lock, self._writers_wait():
                repo = store.repo
                ref = repo.references.get(BRANCH_REF)
                ours = direct_target(ref)
                if ours == theirs or (ours is not None and repo.descendant_of(ours, theirs)):
                    return False
                plan = None
                if ours is None:
                    target, merged = theirs, False
                else:
                    plan = plan_append_only(store, ours, theirs)
                    if plan.tree == repo[theirs].peel(pygit2.Tree).id \
                            and repo.descendant_of(theirs, ours):
                        target, merged = theirs, False  # a fast-forward that keeps all ours
                    else:
                        target, merged = self._merge_commit(ours, theirs, plan.tree), True
                try:
                    if ref is None:
                        repo.references.create(BRANCH_REF, target)
                    else:
                        ref.set_target(target, f"scp: pull {self.remote}")
                except (pygit2.GitError, OSError, pygit2.AlreadyExistsError):
                    continue  # moved by a git outside ours: merge again on the new tip
            if plan is not None and plan.refused:
                report.refused_changes = plan.refused
                report.conflicts_dir = self._keep_aside(theirs, plan)
            return merged
        raise SyncError("merge_failed", "the ledger kept moving during the merge")

    @contextlib.contextmanager
    def _writers_wait(self) -> Iterator[None]:
        """Take our turn with the writers: hold the ref writer lock from reading our tip to
        moving it, so no run is recorded in between (a busy ledger cannot starve a pull)."""
        store = self.ledger.store
        try:
            with ref_move(Path(store.repo.path), BRANCH_REF, store.work_tree):
                yield
        except WriterLockTimeout as exc:
            raise SyncError("merge_failed", f"{exc}; try the pull again") from None

    def _merge_commit(self, ours: pygit2.Oid, theirs: pygit2.Oid, tree: pygit2.Oid
                      ) -> pygit2.Oid:
        sig = self.ledger.store.signature()
        return self.ledger.store.repo.create_commit(
            None, sig, sig, f"scp: merge ledger from {self.remote}", tree, [ours, theirs])

    def _keep_aside(self, theirs: pygit2.Oid, plan: MergePlan) -> str:
        """Write theirs' version of each entry we kept ours of to ``.git/scp/conflicts/<id>/``."""
        root = self.ledger.scp_dir / CONFLICTS
        root.mkdir(mode=0o700, exist_ok=True)
        for entry_id, directory in plan.changed.items():
            files = self.ledger.store.read_dir(theirs, directory)
            target = root / entry_id  # a checked id: no separator, no dot-dot
            target.mkdir(mode=0o700, exist_ok=True)
            for name, data in files.items():  # checked names only (run.json, events.jsonl…)
                write_private(target / name, data)
            write_private(target / "SOURCE", f"remote {self.remote}\ncommit {theirs}\n"
                          f"path {directory}\nsee: git show {theirs}:{directory}/\n".encode())
        return str(root.relative_to(self.ledger.root)) if root.is_relative_to(
            self.ledger.root) else str(root)

    def push(self, include_unpublished: bool = False) -> SyncReport:
        """Pull when the remote moved, then push the ledger and the publishable run tags it
        lacks (no ``git push`` at all when it lacks nothing)."""
        self._drop_refs(OUTBOX)  # left by an older version's interrupted push
        remote_refs = self._remote_refs()
        report = self.pull(remote_refs)
        for _attempt in range(3):
            local = self.ledger.store.head()
            if local is None:
                return report
            published, held = self._publishable_tags(remote_refs, include_unpublished)
            report.tags_held = held
            refs = {name: self._target(name) for name in published}
            if remote_refs.get(BRANCH_REF) != str(local):
                refs[BRANCH_REF] = str(local)
            pushed = self._push(refs)
            if pushed is None or pushed.ok:
                report.pushed, report.tags_pushed = True, len(published)
                return report
            if not any(moved in pushed.stderr for moved in REMOTE_MOVED):
                raise SyncError("remote_rejected", rejection_reason(pushed.stderr) or
                                pushed.error_message)
            remote_refs = self._remote_refs()  # the remote moved meanwhile: merge, try again
            more = self.pull(remote_refs)
            report.pulled_runs += more.pulled_runs
            report.merged = report.merged or more.merged
        raise SyncError("remote_rejected", "the remote kept moving; push again later")

    def _push(self, refs: dict[str, str]) -> ToolResult | None:
        """``git push`` of *refs* (name -> object id) under their own names; None if empty.

        The refs are written into a throw-away repository that borrows our objects
        (alternates) and our config, and pushed from there with one wildcard: git matches
        each explicit refspec against every ref (quadratic at 10k runs), and our own
        repository never holds a temporary ref that an interrupted push could leave behind.
        """
        if not refs:
            return None
        self._remove_stale_outboxes()
        common = Path(self._git_quiet(["rev-parse", "--path-format=absolute",
                                       "--git-common-dir"]).stdout.strip())
        self.ledger.scp_dir.mkdir(mode=0o700, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"{OUTBOX_DIR}{os.getpid()}-",
                                         dir=self.ledger.scp_dir) as outbox:
            made = self._git_quiet(["init", "--quiet", "--bare", "--template=", outbox])
            if made.returncode != 0:
                raise SyncError("push_failed", "could not prepare the push under "
                                f"{self.ledger.scp_dir}: {made.stderr.strip()[-300:]}")
            Path(outbox, "objects", "info", "alternates").write_text(f"{common / 'objects'}\n")
            Path(outbox, "packed-refs").write_text(  # one write however many refs
                "# pack-refs with: sorted \n"
                + "".join(f"{refs[name]} {name}\n" for name in sorted(refs)))
            specs = [f"{name}:{name}" for name in refs if not name.startswith(TAG_PREFIX)]
            if any(name.startswith(TAG_PREFIX) for name in refs):
                specs.append(f"{TAG_PREFIX}*:{TAG_PREFIX}*")
            return self._git(f"--git-dir={outbox}", "-c", f"include.path={common / 'config'}",
                             "push", "--quiet", "--", self.remote, *specs)

    def _remove_stale_outboxes(self) -> None:
        """Remove the throw-away push repositories of pushes that were killed."""
        for path in self.ledger.scp_dir.glob(f"{OUTBOX_DIR}*"):
            pid = path.name[len(OUTBOX_DIR):].partition("-")[0]
            try:
                os.kill(int(pid), 0)
                continue  # a push in progress
            except (ValueError, ProcessLookupError):
                shutil.rmtree(path, ignore_errors=True)
            except PermissionError:
                continue

    def _target(self, ref_name: str) -> str:
        with self.ledger.store.lock:
            return str(self.ledger.store.repo.references[ref_name].target)

    def _publishable_tags(self, remote_refs: dict[str, str], include_unpublished: bool
                          ) -> tuple[list[str], list[str]]:
        """Run tag refs the remote lacks: those whose code commit it has, and the others."""
        published: list[str] = []
        held: list[str] = []
        with self.ledger.store.lock:
            repo = self.ledger.store.repo
            prefix = self.ledger.store.tag_prefix
            wanted = [name for name in repo.references
                      if name.startswith(prefix) and name not in remote_refs]
            if not wanted:
                return published, held
            remote_heads = []
            for name, sha in remote_refs.items():
                if not name.startswith(("refs/heads/", "refs/tags/")) or name == BRANCH_REF:
                    continue
                try:
                    remote_heads.append(repo[sha].peel(pygit2.Commit).id)
                except (KeyError, ValueError, pygit2.InvalidSpecError):
                    continue  # a commit we do not have: it cannot contain ours
            known: dict[pygit2.Oid, bool] = {}
            for ref_name in wanted:
                commit = repo.references[ref_name].peel(pygit2.Commit).id
                if commit not in known:
                    known[commit] = include_unpublished or any(
                        head == commit or repo.descendant_of(head, commit)
                        for head in remote_heads)
                (published if known[commit] else held).append(ref_name)
        return published, held


class AutoSync:
    """Pull the ledger every *interval* seconds in a thread (``serve --auto``); not recorded."""

    def __init__(self, ledger: Ledger, remote: str, interval: float) -> None:
        self.sync = LedgerSync(ledger, remote)
        self.interval = interval
        self.last: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="scp-auto-sync", daemon=True)

    def start(self) -> AutoSync:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.last = self.sync.pull().to_dict()
                if self.last["warning"]:
                    log.warning("automatic ledger pull: %s", self.last["warning"])
            except (SyncError, OSError) as exc:
                self.last = {"error": str(exc)}
                log.warning("automatic ledger pull failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
