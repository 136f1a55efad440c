"""git tree objects in plain Python: parsed, written, and one entry's id replaced in place.

A record rewrites the trees on its run's path: the root, ``ledger``, ``runs``, the year,
month and day, and the run's bucket. All but the bucket only get a child's new id. On a busy
day, the day tree holds 256 buckets: building its bytes again costs ~90 µs and parsing it
~180 µs. ``Tree.with_id`` copies the object's bytes with the 20 bytes of that id replaced:
git's order is unchanged, so the bytes are the ones ``tree_bytes`` would build.
"""

from __future__ import annotations

TREE_MODE, BLOB_MODE = b"40000", b"100644"


class Tree(dict[bytes, tuple[bytes, bytes]]):
    """A tree's entries, name -> (mode, 20-byte id), with the object's bytes when known."""

    __slots__ = ("_offsets", "raw")

    def __init__(self, *args: object, raw: bytes | None = None) -> None:
        super().__init__(*args)
        self.raw = raw  # the object these entries were read from or written as
        self._offsets: dict[bytes, int] | None = None

    def __setitem__(self, name: bytes, value: tuple[bytes, bytes]) -> None:
        super().__setitem__(name, value)
        self.raw = self._offsets = None  # changed: its bytes are built again

    def with_id(self, name: bytes, oid: bytes) -> Tree | None:
        """This tree with the subtree *name* at *oid*, its bytes spliced; None when *name*
        is not a subtree here or the bytes are unknown (build them: ``tree_bytes``)."""
        held = self.get(name)
        if self.raw is None or held is None or held[0] != TREE_MODE or len(oid) != 20:
            return None
        at = self._id_at(name)
        changed = Tree(self, raw=self.raw[:at] + oid + self.raw[at + 20:])
        changed._offsets = self._offsets  # the same names at the same places
        dict.__setitem__(changed, name, (TREE_MODE, oid))
        return changed

    def _id_at(self, name: bytes) -> int:
        """Where subtree *name*'s id starts in ``raw``: found by its ``40000 <name>\\0``
        when that occurs once (it may also occur inside an id or a longer name: then
        every entry's place is listed once, ``id_offsets``)."""
        if self._offsets is None:
            raw, pattern = self.raw or b"", b"%s %s\0" % (TREE_MODE, name)
            found = raw.find(pattern)
            if found >= 0 and raw.find(pattern, found + 1) < 0:
                return found + len(pattern)
            self._offsets = id_offsets(raw)
        return self._offsets[name]


def parse_tree(data: bytes) -> Tree:
    """A tree object's entries (its bytes kept)."""
    entries: dict[bytes, tuple[bytes, bytes]] = {}
    position, end = 0, len(data)
    while position < end:
        space = data.index(b" ", position)
        nul = data.index(b"\0", space)
        entries[data[space + 1:nul]] = (data[position:space], data[nul + 1:nul + 21])
        position = nul + 21
    return Tree(entries, raw=data)


def id_offsets(data: bytes) -> dict[bytes, int]:
    """Where each entry's id starts in the tree object *data*, by name."""
    offsets: dict[bytes, int] = {}
    position, end = 0, len(data)
    while position < end:
        space = data.index(b" ", position)
        nul = data.index(b"\0", space)
        offsets[data[space + 1:nul]] = nul + 1
        position = nul + 21
    return offsets


def tree_bytes(entries: dict[bytes, tuple[bytes, bytes]]) -> bytes:
    """A tree object from *entries*, in git's order (a tree's name sorts as ``name/``)."""
    items = [(name + b"/" if mode == TREE_MODE else name, b"%s %s\0%s" % (mode, name, oid))
             for name, (mode, oid) in entries.items()]
    items.sort()
    return b"".join([entry for _, entry in items])
