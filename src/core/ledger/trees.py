"""git tree objects in plain Python: parsed, written, and one subtree spliced into the bytes.

A record rewrites the trees on its run's path: the root, ``ledger``, ``runs``, the year,
month and day, and the run's bucket. Each gets one subtree, new or with a new id. On a busy
day, the day tree holds 256 buckets: building its bytes again costs ~90 µs and parsing it
~180 µs. ``Tree.with_id`` copies the object's bytes with that entry's 20 bytes replaced, or
its entry put in at its place in git's order: the bytes ``tree_bytes`` would build.
"""

from __future__ import annotations

import re

try:  # the C function alone: bisect.py's import costs a one-run command 0.1 ms more
    from _bisect import bisect_left
except ImportError:  # pragma: no cover - an interpreter without it
    from bisect import bisect_left

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

TREE_MODE, BLOB_MODE = b"40000", b"100644"


class Tree(dict[bytes, tuple[bytes, bytes]]):
    """A tree's entries, name -> (mode, 20-byte id), with the object's bytes when known."""

    __slots__ = ("_keys", "_offsets", "raw")

    def __init__(self, *args: object, raw: bytes | None = None) -> None:
        super().__init__(*args)
        self.raw = raw  # the object these entries were read from or written as
        self._offsets: dict[bytes, int] | None = None
        self._keys: list[bytes] | None = None  # the names in git's order (_sort_key), sorted

    def _changed(self) -> None:
        self.raw = self._offsets = self._keys = None  # its bytes are built again

    def __setitem__(self, name: bytes, value: tuple[bytes, bytes]) -> None:
        super().__setitem__(name, value)
        self._changed()

    def __delitem__(self, name: bytes) -> None:
        super().__delitem__(name)
        self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def pop(self, *args: Any) -> Any:
        self._changed()
        return super().pop(*args)

    def popitem(self) -> tuple[bytes, tuple[bytes, bytes]]:
        self._changed()
        return super().popitem()

    def setdefault(self, *args: Any) -> Any:
        self._changed()
        return super().setdefault(*args)

    def clear(self) -> None:
        super().clear()
        self._changed()

    def with_id(self, name: bytes, oid: bytes) -> Tree | None:
        """This tree with the subtree *name* at *oid* (replaced or added), its bytes
        spliced; None when *name* is here but not a subtree, or the bytes are unknown
        (build them: ``tree_bytes``)."""
        held = self.get(name)
        raw = self.raw
        if raw is None or len(oid) != 20 or (held is not None and held[0] != TREE_MODE):
            return None
        if held is None:
            return self._with_new(name, oid, raw)
        at = self._id_at(name)
        changed = Tree(self, raw=raw[:at] + oid + raw[at + 20:])
        changed._offsets, changed._keys = self._offsets, self._keys  # the same places
        dict.__setitem__(changed, name, (TREE_MODE, oid))
        return changed

    def _with_new(self, name: bytes, oid: bytes, raw: bytes) -> Tree:
        """This tree with the new subtree *name*: its entry put in git's place."""
        keys = self._keys
        if keys is None:
            keys = sorted([_sort_key(held, mode) for held, (mode, _) in self.items()])
        key = name + b"/"
        place = bisect_left(keys, key)
        if place:
            before = keys[place - 1]
            before = before[:-1] if before.endswith(b"/") else before
            at = self._id_at(before, self[before][0]) + 20  # the end of the entry before
        else:
            at = 0
        changed = Tree(self, raw=raw[:at] + b"%s %s\0" % (TREE_MODE, name) + oid + raw[at:])
        changed._keys = [*keys[:place], key, *keys[place:]]
        dict.__setitem__(changed, name, (TREE_MODE, oid))
        return changed

    def _id_at(self, name: bytes, mode: bytes = TREE_MODE) -> int:
        """Where entry *name*'s id starts in ``raw``: found by its ``<mode> <name>\\0``
        when that occurs once (it may also occur inside an id or a longer name: then
        every entry's place is listed once, ``id_offsets``)."""
        if self._offsets is None:
            raw, pattern = self.raw or b"", b"%s %s\0" % (mode, name)
            found = raw.find(pattern)
            if found >= 0 and raw.find(pattern, found + 1) < 0:
                return found + len(pattern)
            self._offsets = id_offsets(raw)
        return self._offsets[name]


def _sort_key(name: bytes, mode: bytes) -> bytes:
    """A name as git sorts it in a tree: a subtree's as ``name/``."""
    return name + b"/" if mode == TREE_MODE else name


def _entries(data: bytes) -> Iterator[tuple[bytes, bytes, int]]:
    """(name, mode, where its id starts) of each entry of the tree object *data*."""
    position, end = 0, len(data)
    while position < end:
        space = data.index(b" ", position)
        nul = data.index(b"\0", space)
        yield data[space + 1:nul], data[position:space], nul + 1
        position = nul + 21


_ENTRY = re.compile(rb"([0-7]+) ([^\0]*)\0(.{20})", re.DOTALL)
_WELL_FORMED = re.compile(rb"(?:[0-7]+ [^\0]*\0.{20})*", re.DOTALL)


def parse_tree(data: bytes) -> Tree:
    """A tree object's entries (its bytes kept). A well-formed tree is parsed by ``re`` in
    C (12 µs for a busy day's bucket of 28 runs, 24 entry by entry in Python); any other
    entry by entry, as before."""
    if _WELL_FORMED.fullmatch(data):
        return Tree({name: (mode, oid) for mode, name, oid in _ENTRY.findall(data)}, raw=data)
    return Tree({name: (mode, data[at:at + 20]) for name, mode, at in _entries(data)},
                raw=data)


def id_offsets(data: bytes) -> dict[bytes, int]:
    """Where each entry's id starts in the tree object *data*, by name."""
    return {name: at for name, _, at in _entries(data)}


def tree_bytes(entries: dict[bytes, tuple[bytes, bytes]]) -> bytes:
    """A tree object from *entries*, in git's order (a tree's name sorts as ``name/``)."""
    items = [(_sort_key(name, mode), b"%s %s\0%s" % (mode, name, oid))
             for name, (mode, oid) in entries.items()]
    items.sort()
    return b"".join([entry for _, entry in items])
