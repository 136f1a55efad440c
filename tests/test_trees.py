"""Tree objects written in plain Python (``ledger/trees.py``) against libgit2's: the same
bytes for any names git allows, and a subtree's id replaced in place giving the bytes a
full build would (issue 18 item 5: a busy day's tree is spliced, not rebuilt)."""

from __future__ import annotations

import random

import pygit2
import pytest
from pygit2.enums import FileMode

from controlplane.core.ledger.trees import TREE_MODE, Tree, parse_tree, tree_bytes

# names that sort differently as trees (``name/``) and as blobs, hold spaces, or contain
# another entry's name followed by what an id search could mistake for a boundary
NAMES = [b"a", b"a.b", b"a b", b"a-", b"a0", b"b a", b" b", b"ab", b"a\xc3\xa9",
         b"2026", b"20", b"ff", b"0f", b"x 40000 a"]


def random_entries(rng: random.Random) -> dict[bytes, tuple[bytes, bytes]]:
    names = rng.sample(NAMES, rng.randint(1, len(NAMES)))
    return {name: (rng.choice([TREE_MODE, b"100644"]), rng.randbytes(20)) for name in names}


def libgit2_bytes(repo: pygit2.Repository, entries: dict[bytes, tuple[bytes, bytes]]) -> bytes:
    """The tree libgit2 writes for *entries* (its objects need not exist: not validated)."""
    pygit2.settings.enable_strict_object_creation(False)
    builder = repo.TreeBuilder()
    for name, (mode, oid) in entries.items():
        builder.insert(name.decode("utf-8", "surrogateescape"), pygit2.Oid(raw=oid),
                       FileMode.TREE if mode == TREE_MODE else FileMode.BLOB)
    return repo[builder.write()].read_raw()


@pytest.fixture
def bare(tmp_path) -> pygit2.Repository:
    repo = pygit2.init_repository(str(tmp_path / "bare.git"), bare=True)
    yield repo
    pygit2.settings.enable_strict_object_creation(True)


def test_a_tree_is_written_as_libgit2_writes_it(bare: pygit2.Repository) -> None:
    rng = random.Random(18)
    for _ in range(200):
        entries = random_entries(rng)
        assert tree_bytes(entries) == libgit2_bytes(bare, entries)
        assert parse_tree(tree_bytes(entries)) == entries


def test_a_subtree_replaced_in_place_gives_the_bytes_a_full_build_gives() -> None:
    rng = random.Random(5)
    for _ in range(300):
        entries = random_entries(rng)
        tree = parse_tree(tree_bytes(entries))
        for name, (mode, _) in entries.items():
            new_id = rng.randbytes(20)
            spliced = tree.with_id(name, new_id)
            if mode != TREE_MODE:
                assert spliced is None  # a blob's entry: built again by the caller
                continue
            assert spliced is not None
            assert spliced.raw == tree_bytes({**entries, name: (TREE_MODE, new_id)})
            assert spliced == {**entries, name: (TREE_MODE, new_id)}
            tree = parse_tree(tree_bytes(entries))  # unchanged by the splice
            assert tree == entries


def spliced_buckets(tree: Tree, entries: dict, rng: random.Random, count: int) -> Tree:
    """*tree* after *count* records into random day buckets, *entries* kept alongside."""
    for _ in range(count):
        name = b"%02x" % rng.randrange(256)
        new_id = rng.randbytes(20)
        tree = tree.with_id(name, new_id)
        entries[name] = (TREE_MODE, new_id)
    return tree


def test_a_chain_of_splices_stays_equal_to_a_build() -> None:
    """A record starts from the trees the last one spliced: the offsets are shared."""
    entries = {b"%02x" % i: (TREE_MODE, bytes(20)) for i in range(256)}
    tree = spliced_buckets(parse_tree(tree_bytes(entries)), entries, random.Random(1), 500)
    assert tree.raw == tree_bytes(entries)


@pytest.mark.parametrize("change", [
    lambda tree: tree.__setitem__(b"b", (TREE_MODE, bytes(20))),
    lambda tree: tree.__delitem__(b"a"), lambda tree: tree.pop(b"a"),
    lambda tree: tree.popitem(), lambda tree: tree.update({b"c": (TREE_MODE, bytes(20))}),
    lambda tree: tree.setdefault(b"d", (TREE_MODE, bytes(20))), lambda tree: tree.clear(),
])
def test_a_changed_tree_forgets_its_bytes(change) -> None:
    """Bytes kept after a change would be written as the tree: every way of changing
    a dict drops them."""
    tree = parse_tree(tree_bytes({b"a": (TREE_MODE, bytes(20)), b"z": (TREE_MODE, bytes(20))}))
    assert tree.raw is not None
    change(tree)
    assert tree.raw is None and tree.with_id(b"z", bytes(20)) is None


def test_a_tree_without_its_bytes_or_a_file_entry_is_built_again() -> None:
    assert Tree({b"a": (TREE_MODE, bytes(20))}).with_id(b"a", bytes(20)) is None  # no bytes
    assert parse_tree(tree_bytes({b"a": (b"100644", bytes(20))})).with_id(b"a", bytes(20)) \
        is None  # a file's entry: built again by the caller


def test_a_new_subtree_put_in_place_gives_the_bytes_a_full_build_gives(
        bare: pygit2.Repository) -> None:
    """A run's new directory in its bucket, a day's new bucket: the entry goes where git's
    order puts it (a subtree sorts as ``name/``: after ``a.b``, before ``a0``)."""
    rng = random.Random(7)
    for _ in range(300):
        entries = random_entries(rng)
        tree = parse_tree(tree_bytes(entries))
        for name in rng.sample(NAMES, len(NAMES)):  # new ones added, present ones replaced
            if name in entries and entries[name][0] != TREE_MODE:
                continue
            new_id = rng.randbytes(20)
            tree = tree.with_id(name, new_id)
            entries[name] = (TREE_MODE, new_id)
            assert tree.raw == tree_bytes(entries) == libgit2_bytes(bare, entries)
            assert tree == entries


def test_a_day_of_new_buckets_stays_equal_to_a_build() -> None:
    entries: dict = {}
    tree = spliced_buckets(parse_tree(b""), entries, random.Random(3), 2000)
    assert tree.raw == tree_bytes(entries) and len(tree) == 256
