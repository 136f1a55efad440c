"""Append-only merge of a fetched ledger: theirs adds entries, never removes or edits ours.

Runs and chat messages live in disjoint directories, so the merged tree is ours
plus every entry of theirs we do not hold. An entry both sides hold with
different contents keeps our version; theirs is reported (and kept aside by the
caller). An entry theirs deleted since the merge base stays, and is reported.
Both trees must have passed the layout check (``layout.TreeChecker``) first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pygit2
from pygit2.enums import FileMode, ObjectType

from controlplane.core.ledger.layout import FORMAT_FILE, entry_dirs, entry_of
from controlplane.core.ledger.store import GitStore


@dataclass
class MergePlan:
    """The merged tree and what was left out of it."""

    tree: pygit2.Oid
    added: list[str] = field(default_factory=list)  # entry dirs taken from theirs
    deleted: list[str] = field(default_factory=list)  # ids theirs removed: kept here
    changed: dict[str, str] = field(default_factory=dict)  # id -> theirs' dir: ours kept

    @property
    def refused(self) -> list[str]:
        return sorted({*self.deleted, *self.changed})


def plan_append_only(store: GitStore, ours: pygit2.Oid, theirs: pygit2.Oid) -> MergePlan:
    """The tree holding our entries plus theirs' new ones; call with ``store.lock`` held."""
    repo = store.repo
    our_tree = repo[ours].peel(pygit2.Tree)
    their_tree = repo[theirs].peel(pygit2.Tree)
    plan = MergePlan(tree=our_tree.id)
    grafts: dict[str, tuple[pygit2.Oid, int]] = {}
    changed, _ = store.changed_entry_dirs(ours, theirs)
    for directory in changed:
        entry = entry_of(directory)
        if entry is None:
            continue
        theirs_id = their_tree[directory].id
        held = _held(our_tree, *entry)
        if held is None:
            grafts[directory] = (theirs_id, FileMode.TREE)
            plan.added.append(directory)
        elif our_tree[held].id != theirs_id:
            plan.changed[entry[1]] = directory
    base = repo.merge_base(ours, theirs)
    if base is not None:
        _, removed = store.changed_entry_dirs(base, theirs)
        for directory in removed:
            entry = entry_of(directory)
            if entry and _held(our_tree, *entry) and not _held(their_tree, *entry):
                plan.deleted.append(entry[1])
    format_path = f"ledger/{FORMAT_FILE}"
    if format_path in their_tree and format_path not in our_tree:
        grafts[format_path] = (their_tree[format_path].id, FileMode.BLOB)
    if grafts:
        plan.tree = graft(repo, our_tree, grafts)
    return plan


def _held(tree: pygit2.Tree, kind: str, entry_id: str) -> str | None:
    """The directory of entry *entry_id* in *tree* (either layout), None if absent."""
    for directory in entry_dirs(kind, entry_id):
        if directory in tree:
            return directory
    return None


def graft(repo: pygit2.Repository, tree: pygit2.Tree | None,
          items: dict[str, tuple[pygit2.Oid, int]]) -> pygit2.Oid:
    """*tree* with each path of *items* set to (object, mode); every touched tree written once."""
    here: dict[str, tuple[pygit2.Oid, int]] = {}
    below: dict[str, dict[str, tuple[pygit2.Oid, int]]] = {}
    for path, item in items.items():
        head, _, rest = path.partition("/")
        if rest:
            below.setdefault(head, {})[rest] = item
        else:
            here[head] = item
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    for name, (oid, mode) in here.items():
        builder.insert(name, oid, mode)
    for name, sub in below.items():
        child = None
        if tree is not None and name in tree:
            found = tree[name]
            child = repo[found.id].peel(pygit2.Tree) if found.type == ObjectType.TREE else None
        builder.insert(name, graft(repo, child, sub), FileMode.TREE)
    return builder.write()
