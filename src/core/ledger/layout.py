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

from controlplane.core.lazy import Lazy

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    import pygit2
    from pygit2.enums import ObjectType
else:  # the view imports the paths; only the tree checks (sync) need pygit2
    pygit2 = Lazy(globals(), "pygit2")
    ObjectType = Lazy(globals(), "ObjectType", "pygit2.enums", "ObjectType")

ENTRY_ID = re.compile(r"(\d{4})(\d{2})(\d{2})T\d{9}Z-([0-9a-f]{2})[0-9a-f]{6}", re.ASCII)
BUCKET = re.compile(r"[0-9a-f]{2}", re.ASCII)
ENTRY_FILES: dict[str, frozenset[str]] = {
    "runs": frozenset({"run.json", "events.jsonl"}),
    "chat": frozenset({"message.json"}),
}
REQUIRED_FILE = {"runs": "run.json", "chat": "message.json"}
FORMAT_FILE = "FORMAT"
# The tree checks' patterns are compiled at their first use (re's cache): a command that
# checks no tree does not pay for them.
FORMAT_CONTENT = rb"[0-9]{1,6}\n?"


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


_RECORD = rb"(?s)[0-7]{1,7} [^\0]*\0.{20}"
_TREE, _BLOB = 0o040000, 0o100644  # pygit2.enums.FileMode.TREE, .BLOB: git's own modes


class TreeChecker:
    """Checks ledger trees against the layout.

    A tree is read as raw records (mode, name, id); at each path only the records
    not already checked there are looked at, so checking every commit of a long
    history costs about what its changes cost, not history times ledger size.
    """

    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo
        self._good: set[tuple[pygit2.Oid, str]] = set()  # (tree, path) found good
        self._seen: dict[str, set[bytes]] = {}  # path -> raw records found good there

    def check_history(self, tip: pygit2.Oid, known: pygit2.Oid | None) -> int:
        """Check the tree of *tip* and of every commit behind it not reachable from *known*.

        Returns the number of commits checked; raises LayoutError on the first bad path.
        """
        walker = self.repo.walk(tip, pygit2.enums.SortMode.TOPOLOGICAL
                                | pygit2.enums.SortMode.REVERSE)
        if known is not None:
            walker.hide(known)
        checked = 0
        for commit in walker:
            self.check_tree(commit.tree_id)
            checked += 1
        return checked

    def check_tree(self, tree: pygit2.Oid) -> None:
        """Raise LayoutError naming the first path of the tree *tree* outside the layout."""
        self._check(tree, "", "root", "")

    def _check(self, tree: pygit2.Oid, path: str, level: str, kind: str) -> None:
        if (tree, path) in self._good:
            return
        records = self._records(tree, path)
        if level == "entry":
            self._check_entry(records, path, kind)
        else:
            seen = self._seen.setdefault(path, set())
            fresh = records - seen
            for record in fresh:
                mode, name, child = self._parse(record, path)
                child_path = f"{path}/{name}" if path else name
                self._check_child(level, kind, mode, name, child, child_path)
            seen |= fresh
        self._good.add((tree, path))

    def _check_child(self, level: str, kind: str, mode: int, name: str, child: pygit2.Oid,
                     path: str) -> None:
        if level == "ledger" and name == FORMAT_FILE:
            _expect(mode, _BLOB, path)
            if not re.fullmatch(FORMAT_CONTENT, self.repo[child].read_raw()):
                raise LayoutError(path, "is not a layout version number")
            return
        if level == "root" and name == "ledger":
            nxt = "ledger"
        elif level == "ledger" and name in ENTRY_FILES:
            nxt, kind = "years", name
        elif level in _DATE_LEVELS:
            nxt = _DATE_LEVELS[level][1]
            if not re.fullmatch(_DATE_LEVELS[level][0], name):
                raise LayoutError(path, "is not a date directory of the ledger layout")
        elif level == "day" and BUCKET.fullmatch(name):
            nxt = "bucket"
        elif level in ("day", "bucket"):
            if entry_of(path) != (kind, name):
                raise LayoutError(path, "is not an entry directory of the ledger layout "
                                        "(a run or message id under its own date)")
            nxt = "entry"
        else:
            raise LayoutError(path, "is not part of the ledger layout")
        _expect(mode, _TREE, path)
        self._check(child, path, nxt, kind)

    def _check_entry(self, records: set[bytes], path: str, kind: str) -> None:
        names = set()
        for record in records:
            mode, name, blob = self._parse(record, path)
            if name not in ENTRY_FILES[kind]:
                raise LayoutError(f"{path}/{name}", "is not a file of a ledger entry")
            _expect(mode, _BLOB, f"{path}/{name}")
            if self.repo.odb.read_header(blob)[0] != ObjectType.BLOB:
                raise LayoutError(f"{path}/{name}", "is not a file")
            names.add(name)
        if REQUIRED_FILE[kind] not in names:
            raise LayoutError(path, f"lacks its {REQUIRED_FILE[kind]}")

    def _records(self, tree: pygit2.Oid, path: str) -> set[bytes]:
        kind, data = self.repo.odb.read(tree)
        if kind != ObjectType.TREE:
            raise LayoutError(path or "/", "should be a directory")
        records = re.findall(_RECORD, data)
        if sum(map(len, records)) != len(data):
            raise LayoutError(path or "/", "is a malformed tree")
        return set(records)

    @staticmethod
    def _parse(record: bytes, path: str) -> tuple[int, str, pygit2.Oid]:
        mode, _, raw_name = record[:-21].partition(b" ")  # then NUL and a 20-byte id
        oid = record[-20:]
        try:
            name = raw_name.decode("utf-8", "strict")
        except UnicodeDecodeError:
            raise LayoutError(f"{path}/{raw_name.decode('utf-8', 'replace')}",
                              "is not a UTF-8 name") from None
        return int(mode, 8), name, pygit2.Oid(raw=oid)


# level (what a tree's children are) -> (their name pattern, the level of their trees)
_DATE_LEVELS = {"years": (r"(?a)\d{4}", "months"), "months": (r"(?a)\d{2}", "days"),
                "days": (r"(?a)\d{2}", "day")}


def _expect(mode: int, wanted: int, path: str) -> None:
    if mode != wanted:
        what = "a directory" if wanted == _TREE else "a regular file"
        raise LayoutError(path, f"should be {what} (mode {mode:o})")
