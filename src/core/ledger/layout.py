"""The ledger's layout: the only paths a ledger tree may hold (DECISIONS.md §1).

::

    ledger/FORMAT                                               the layout version
    ledger/runs/YYYY/MM/DD/<run_id>/{run.json,events.jsonl}     (first layout)
    ledger/runs/YYYY/MM/DD/<bb>/<run_id>/{run.json,events.jsonl}
    ledger/chat/YYYY/MM/DD/<message_id>/message.json            (first layout)
    ledger/chat/YYYY/MM/DD/<bb>/<message_id>/message.json

The date and the bucket ``<bb>`` are those of the id; every leaf is a regular
blob (mode 0100644). A fetched ledger is checked against this before anything
of it is merged, and the view writes only through paths it accepts.
"""

from __future__ import annotations

import re

import pygit2
from pygit2.enums import FileMode, ObjectType

ENTRY_ID = re.compile(r"(\d{4})(\d{2})(\d{2})T\d{9}Z-([0-9a-f]{2})[0-9a-f]{6}", re.ASCII)
BUCKET = re.compile(r"[0-9a-f]{2}", re.ASCII)
ENTRY_FILES: dict[str, frozenset[str]] = {
    "runs": frozenset({"run.json", "events.jsonl"}),
    "chat": frozenset({"message.json"}),
}
REQUIRED_FILE = {"runs": "run.json", "chat": "message.json"}
FORMAT_FILE = "FORMAT"
FORMAT_CONTENT = re.compile(rb"[0-9]{1,6}\n?", re.ASCII)
_DATE_PARTS = (re.compile(r"\d{4}", re.ASCII), re.compile(r"\d{2}", re.ASCII),
               re.compile(r"\d{2}", re.ASCII))


class LayoutError(ValueError):
    """A path outside the ledger layout; ``path`` is the offending path."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path!a} {reason}")
        self.path = path


def is_entry_id(value: str) -> bool:
    """True for a run or chat message id (``ENTRY_ID``, matched whole)."""
    return isinstance(value, str) and ENTRY_ID.fullmatch(value) is not None


def entry_of(directory: str) -> tuple[str, str] | None:
    """(kind, id) of an entry directory in either layout; None for any other path."""
    parts = directory.split("/")
    if len(parts) not in (6, 7) or parts[0] != "ledger" or parts[1] not in ENTRY_FILES:
        return None
    found = ENTRY_ID.fullmatch(parts[-1])
    if found is None or parts[2:5] != [found[1], found[2], found[3]]:
        return None
    if len(parts) == 7 and parts[5] != found[4]:
        return None
    return parts[1], parts[-1]


def entry_dirs(kind: str, entry_id: str) -> tuple[str, str]:
    """The two places an entry may live: (first layout, bucketed layout)."""
    day = f"ledger/{kind}/{entry_id[0:4]}/{entry_id[4:6]}/{entry_id[6:8]}"
    return f"{day}/{entry_id}", f"{day}/{entry_id[20:22]}/{entry_id}"


class TreeChecker:
    """Checks ledger trees against the layout, remembering the subtrees already found good."""

    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo
        self._good: set[tuple[pygit2.Oid, str]] = set()

    def check_history(self, tip: pygit2.Oid, known: pygit2.Oid | None) -> int:
        """Check the tree of *tip* and of every commit behind it not reachable from *known*.

        Returns the number of commits checked; raises LayoutError on the first bad path.
        """
        walker = self.repo.walk(tip, pygit2.enums.SortMode.TOPOLOGICAL)
        if known is not None:
            walker.hide(known)
        checked = 0
        for commit in walker:
            self.check_tree(commit.tree)
            checked += 1
        return checked

    def check_tree(self, tree: pygit2.Tree) -> None:
        """Raise LayoutError naming the first path of *tree* outside the layout."""
        for name, entry in self._entries(tree, ""):
            if name != "ledger":
                raise LayoutError(name, "is not part of the ledger layout")
            self._check_ledger(self._subtree(entry, "ledger"))

    def _check_ledger(self, tree: pygit2.Tree) -> None:
        for name, entry in self._entries(tree, "ledger/"):
            path = f"ledger/{name}"
            if name == FORMAT_FILE:
                self._check_blob(entry, path)
                if not FORMAT_CONTENT.fullmatch(self.repo[entry.id].data):
                    raise LayoutError(path, "is not a layout version number")
            elif name in ENTRY_FILES:
                self._check_dates(self._subtree(entry, path), path, name, 0)
            else:
                raise LayoutError(path, "is not part of the ledger layout")

    def _check_dates(self, tree: pygit2.Tree, path: str, kind: str, level: int) -> None:
        """Year, month and day levels; the day level holds entries or buckets."""
        if (tree.id, path) in self._good:
            return
        for name, entry in self._entries(tree, path + "/"):
            child = f"{path}/{name}"
            if level < 3:
                if not _DATE_PARTS[level].fullmatch(name):
                    raise LayoutError(child, "is not a date directory of the ledger layout")
                self._check_dates(self._subtree(entry, child), child, kind, level + 1)
            elif BUCKET.fullmatch(name):
                self._check_bucket(self._subtree(entry, child), child, kind)
            else:
                self._check_entry(entry, child, kind)
        self._good.add((tree.id, path))

    def _check_bucket(self, tree: pygit2.Tree, path: str, kind: str) -> None:
        for name, entry in self._entries(tree, path + "/"):
            self._check_entry(entry, f"{path}/{name}", kind)

    def _check_entry(self, entry: pygit2.Object, path: str, kind: str) -> None:
        if entry_of(path) != (kind, path.rsplit("/", 1)[-1]):
            raise LayoutError(path, "is not an entry directory of the ledger layout "
                                    "(a run or message id under its own date)")
        tree = self._subtree(entry, path)
        names = set()
        for name, leaf in self._entries(tree, path + "/"):
            if name not in ENTRY_FILES[kind]:
                raise LayoutError(f"{path}/{name}", "is not a file of a ledger entry")
            self._check_blob(leaf, f"{path}/{name}")
            names.add(name)
        if REQUIRED_FILE[kind] not in names:
            raise LayoutError(path, f"lacks its {REQUIRED_FILE[kind]}")

    def _entries(self, tree: pygit2.Tree, prefix: str) -> list[tuple[str, pygit2.Object]]:
        """(name, entry) of a tree; a name that is not UTF-8 is refused."""
        found = []
        for entry in tree:
            try:
                name = entry.raw_name.decode("utf-8", "strict")
            except UnicodeDecodeError:
                raise LayoutError(prefix + entry.raw_name.decode("utf-8", "replace"),
                                  "is not a UTF-8 name") from None
            found.append((name, entry))
        return found

    def _subtree(self, entry: pygit2.Object, path: str) -> pygit2.Tree:
        if entry.filemode != FileMode.TREE or entry.type != ObjectType.TREE:
            raise LayoutError(path, "should be a directory")
        return self.repo[entry.id]

    @staticmethod
    def _check_blob(entry: pygit2.Object, path: str) -> None:
        if entry.filemode != FileMode.BLOB or entry.type != ObjectType.BLOB:
            raise LayoutError(path, f"should be a regular file (mode {entry.filemode:o})")
