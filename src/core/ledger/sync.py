"""Ledger sync: push and pull ``scp-ledger`` and the run tags with an explicit remote.

- **Pull** fetches the remote's ledger into ``refs/scp/remotes/<remote>/scp-ledger`` and
  its run tags, then fast-forwards or merges. Runs live in disjoint directories, so
  ``git merge-tree --write-tree`` never conflicts; a pull never drops a local run.
- **Push** pulls first when the remote moved, then pushes without force. A run tag
  points at a code commit, so pushing it publishes that commit: only tags whose commit
  the remote already has are pushed; the others are held and reported (unless
  ``include_unpublished``).

Plain ``git`` runs through the tool runner (non-interactive, output into the run);
the merge commit and the ref move (compare-and-swap) go through pygit2.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import pygit2

from controlplane.core.ledger.ledger import Ledger
from controlplane.core.ledger.store import BRANCH, BRANCH_REF
from controlplane.core.tools import ToolResult, run_tool

log = logging.getLogger(__name__)

REMOTE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
OUTBOX = "refs/scp/outbox/"


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

    def to_dict(self) -> dict[str, Any]:
        return {"remote": self.remote, "pulled_runs": self.pulled_runs, "merged": self.merged,
                "pushed": self.pushed, "tags_pushed": self.tags_pushed,
                "tags_held": self.tags_held[:100], "tags_held_count": len(self.tags_held)}


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

    def _git(self, *args: str) -> ToolResult:
        return run_tool(["git", "-C", str(self.ledger.root), *args], timeout=300)

    def _fetch(self) -> pygit2.Oid | None:
        """Fetch the remote's ledger and run tags; the remote ledger tip (None if it has none)."""
        has_ledger = self._git("ls-remote", "--exit-code", "--", self.remote, BRANCH_REF)
        if has_ledger.exit_code == 2:
            return None  # the remote has no ledger yet
        if not has_ledger.ok:
            raise SyncError("fetch_failed", has_ledger.error["message"] + " "
                            + has_ledger.stderr.strip()[-300:])
        fetched = self._git("fetch", "--no-tags", "--quiet", "--", self.remote,
                            f"+{BRANCH_REF}:{self.tracking}", "refs/scp/run/*:refs/scp/run/*")
        if not fetched.ok:
            raise SyncError("fetch_failed", fetched.stderr.strip()[-500:] or
                            fetched.error["message"])
        with self.ledger.store.lock:
            ref = self.ledger.store.repo.references.get(self.tracking)
            return ref.target if ref is not None else None

    def pull(self) -> SyncReport:
        """Fetch and merge the remote's runs into the local ledger."""
        report = SyncReport(self.remote)
        remote_tip = self._fetch()
        before = self.ledger.index.count()
        if remote_tip is not None:
            report.merged = self._merge(remote_tip)
            tip = self.ledger.store.head()
            if tip is not None:
                self.ledger.mark_synced(str(tip))
        self.ledger.catch_up()
        report.pulled_runs = self.ledger.index.count() - before
        return report

    def _merge(self, theirs: pygit2.Oid) -> bool:
        """Bring *theirs* into the local ledger branch; True if a merge commit was made."""
        store = self.ledger.store
        for _ in range(20):
            with store.lock:
                repo = store.repo
                ref = repo.references.get(BRANCH_REF)
                ours = ref.target if ref is not None else None
                if ours == theirs or (ours is not None and repo.descendant_of(ours, theirs)):
                    return False
                if ours is None or repo.descendant_of(theirs, ours):
                    target, merged = theirs, False
                else:
                    target, merged = self._merge_commit(ours, theirs), True
                try:
                    if ref is None:
                        repo.references.create(BRANCH_REF, target)
                    else:
                        ref.set_target(target, f"scp: pull {self.remote}")
                    return merged
                except (pygit2.GitError, OSError, pygit2.AlreadyExistsError):
                    continue  # a run was recorded meanwhile: merge again on the new tip
        raise SyncError("merge_failed", "the ledger kept moving during the merge")

    def _merge_commit(self, ours: pygit2.Oid, theirs: pygit2.Oid) -> pygit2.Oid:
        merged = self._git("merge-tree", "--write-tree", "--allow-unrelated-histories",
                           str(ours), str(theirs))
        if not merged.ok:
            raise SyncError("merge_conflict", "the ledgers conflict (a run directory differs "
                            f"on both sides): {merged.stdout.strip()[-500:]}")
        tree = pygit2.Oid(hex=merged.stdout.split()[0])
        sig = self.ledger.store.signature()
        return self.ledger.store.repo.create_commit(
            None, sig, sig, f"scp: merge ledger from {self.remote}", tree, [ours, theirs])

    def push(self, include_unpublished: bool = False) -> SyncReport:
        """Pull when the remote moved, then push the ledger and the publishable run tags."""
        report = self.pull()
        for _attempt in range(3):
            local = self.ledger.store.head()
            if local is None:
                return report
            published, held = self._publishable_tags(include_unpublished)
            report.tags_held = held
            self._fill_outbox(published)
            try:
                pushed = self._git("push", "--quiet", "--", self.remote,
                                   f"{BRANCH_REF}:{BRANCH_REF}",
                                   f"{OUTBOX}*:refs/scp/run/*")
            finally:
                self._empty_outbox()
            if pushed.ok:
                report.pushed, report.tags_pushed = True, len(published)
                return report
            if "fetch first" not in pushed.stderr and "non-fast-forward" not in pushed.stderr:
                raise SyncError("remote_rejected", rejection_reason(pushed.stderr) or
                                pushed.error["message"])
            more = self.pull()  # the remote moved meanwhile: merge and try again
            report.pulled_runs += more.pulled_runs
            report.merged = report.merged or more.merged
        raise SyncError("remote_rejected", "the remote kept moving; push again later")

    def _publishable_tags(self, include_unpublished: bool) -> tuple[list[str], list[str]]:
        """Run tag refs whose code commit the remote has, and the others (held)."""
        listed = self._git("ls-remote", "--heads", "--tags", "--", self.remote)
        if not listed.ok:
            raise SyncError("fetch_failed", listed.stderr.strip()[-500:])
        remote_heads = []
        with self.ledger.store.lock:
            repo = self.ledger.store.repo
            for line in listed.stdout.splitlines():
                sha, _, name = line.partition("\t")
                if name.startswith("refs/heads/scp-ledger"):
                    continue
                try:
                    remote_heads.append(repo[sha].peel(pygit2.Commit).id)
                except (KeyError, ValueError, pygit2.InvalidSpecError):
                    continue  # a commit we do not have: it cannot contain ours
            known: dict[pygit2.Oid, bool] = {}
            published, held = [], []
            prefix = self.ledger.store.tag_prefix
            for ref_name in repo.references:
                if not ref_name.startswith(prefix):
                    continue
                commit = repo.references[ref_name].peel(pygit2.Commit).id
                if commit not in known:
                    known[commit] = include_unpublished or any(
                        head == commit or repo.descendant_of(head, commit)
                        for head in remote_heads)
                (published if known[commit] else held).append(ref_name)
        return published, held

    def _fill_outbox(self, refs: list[str]) -> None:
        self._empty_outbox()
        with self.ledger.store.lock:
            repo = self.ledger.store.repo
            prefix = self.ledger.store.tag_prefix
            for ref_name in refs:
                repo.references.create(OUTBOX + ref_name[len(prefix):],
                                       repo.references[ref_name].target, force=True)

    def _empty_outbox(self) -> None:
        with self.ledger.store.lock:
            repo = self.ledger.store.repo
            for ref_name in [r for r in repo.references if r.startswith(OUTBOX)]:
                repo.references.delete(ref_name)


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
            except (SyncError, OSError) as exc:
                self.last = {"error": str(exc)}
                log.warning("automatic ledger pull failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
