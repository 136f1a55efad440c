"""A record's objects as one pack (issue 18 item 5): what a record creates under
``objects/``, the pack git itself would index byte for byte, the roll-up that keeps the
packs few, and packing left to loose objects where the project turned git's off."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from controlplane import tracked_run
from controlplane.core.ledger import Ledger
from controlplane.core.ledger.filestore import FileStore
from controlplane.core.ledger.ledger import (
    LIST_PACKS_EVERY,
    PACKS_ROLLED_UP,
    PACKS_URGENT,
    ROLL_UP_EVERY,
)
from controlplane.core.ledger.odb import deflate, stored
from controlplane.core.ledger.packwrite import TREE_PIECE, _entry_header, tree_stream, write_pack
from tests.conftest import git
from tests.file_access import file_access


def record(repo: Path) -> str:
    with tracked_run("test", "test:pack", project_root=repo) as run:
        pass
    return run.run_id


def object_files(repo: Path) -> set[str]:
    objects = repo / ".git" / "objects"
    return {str(path.relative_to(objects)) for path in objects.rglob("*") if path.is_file()}


def packs(repo: Path) -> list[Path]:
    return sorted((repo / ".git" / "objects" / "pack").glob("pack-*.idx"))


def test_a_record_creates_one_pack_not_a_dozen_loose_objects(repo: Path) -> None:
    """Loose, a record was 12 files (2 blobs, 8 trees, the commit, the tag), each created and
    renamed in its own directory: the creations were most of a record's cost. The run tag's
    object goes in the commit's pack too."""
    record(repo)  # the first: FORMAT and the branch
    before = object_files(repo)
    run_id = record(repo)
    new = object_files(repo) - before
    assert sorted(name.rsplit(".", 1)[1] for name in new) == ["idx", "pack"], new
    tag = git(repo, "rev-parse", f"refs/scp/run/{run_id}").strip()
    pack = next(repo / ".git" / "objects" / name for name in new if name.endswith(".idx"))
    assert tag in git(repo, "verify-pack", "-v", str(pack))
    assert git(repo, "fsck", "--strict", "--no-dangling").strip() == ""


def test_git_indexes_a_record_pack_to_the_same_bytes(repo: Path, tmp_path: Path) -> None:
    record(repo)
    record(repo)
    assert packs(repo)
    for idx in packs(repo):
        pack = idx.with_suffix(".pack")
        ours = tmp_path / "git.idx"
        name = git(repo, "index-pack", "-o", str(ours), str(pack)).strip()
        assert idx.name == f"pack-{name}.idx"  # named by its checksum, as git names it
        assert ours.read_bytes() == idx.read_bytes()
        git(repo, "verify-pack", str(idx))


@pytest.mark.parametrize("setting", ["gc.auto", "gc.autoPackLimit"])
def test_packing_turned_off_by_the_project_keeps_records_loose(repo: Path, setting: str
                                                                ) -> None:
    """Packs per record rely on git's automatic packing to roll them up: a project that
    turned it off gets loose objects, as git would write them."""
    git(repo, "config", setting, "0")
    record(repo)
    record(repo)
    assert packs(repo) == []
    assert len([name for name in object_files(repo) if not name.startswith("pack")]) >= 24


def test_the_packs_are_rolled_up_and_every_object_kept(repo: Path) -> None:
    """Past PACKS_ROLLED_UP packs, a detached ``git repack --geometric`` merges them: every
    object stays (a pack written before its branch moved, a dangling one), the ledger reads."""
    (repo / "dangling.txt").write_text("written, never reached\n")
    dangling = git(repo, "hash-object", "-w", "dangling.txt")
    ids = [record(repo) for _ in range(PACKS_ROLLED_UP + 2)]
    Ledger.open(repo).wait_background(timeout=120)  # the detached git repack it started
    assert len(packs(repo)) <= PACKS_ROLLED_UP // 2, packs(repo)
    assert git(repo, "cat-file", "-t", dangling.strip()).strip() == "blob"
    assert git(repo, "fsck", "--strict", "--no-dangling").strip() == ""
    Ledger.forget_instances()
    recorded = {json.loads(raw)["run_id"] for _, raw in Ledger.open(repo).index.rows()}
    assert recorded >= set(ids)
    for run_id in ids:
        assert git(repo, "cat-file", "-t", f"refs/scp/run/{run_id}").strip() == "tag"


@pytest.mark.parametrize("publishes", [False, True])
def test_a_roll_up_refreshes_the_server_info_only_for_a_project_that_asks(
        repo: Path, publishes: bool) -> None:
    """A roll-up's ``update-server-info`` listed every ref (half its time at 3,000 run tags)
    for dumb-HTTP publishing, which git's own gc refreshes: skipped, unless the project set
    ``repack.updateServerInfo`` (its configuration wins)."""
    if publishes:
        git(repo, "config", "repack.updateServerInfo", "true")
    for _ in range(PACKS_ROLLED_UP + 1):
        record(repo)
    Ledger.open(repo).wait_background(timeout=120)
    assert len(packs(repo)) <= PACKS_ROLLED_UP // 2  # rolled up
    assert (repo / ".git" / "info" / "refs").exists() is publishes
    assert (repo / ".git" / "objects" / "info" / "packs").exists() is publishes


@pytest.mark.parametrize("project_threads", [None, "3"])
def test_a_roll_up_takes_one_core_unless_the_project_set_pack_threads(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        project_threads: str | None) -> None:
    """git's default, a delta-search thread per core, took the core the records run on
    for more CPU in all: a roll-up (a background task) runs on one, unless the project
    chose ``pack.threads`` (its configuration wins). Read from git's own trace of the
    value it used, in the repack and in its pack-objects."""
    if project_threads:
        git(repo, "config", "pack.threads", project_threads)
    trace = tmp_path / "trace2.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    monkeypatch.setenv("GIT_TRACE2_CONFIG_PARAMS", "pack.threads")
    for _ in range(PACKS_ROLLED_UP + 1):
        record(repo)
    Ledger.open(repo).wait_background(timeout=120)
    assert len(packs(repo)) <= PACKS_ROLLED_UP // 2  # rolled up
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    used = {(e["value"], e["scope"]) for e in events
            if e.get("event") == "def_param" and e.get("param") == "pack.threads"}
    assert used == ({("3", "local")} if project_threads else {("1", "command")})
    commands = {e["name"] for e in events if e.get("event") == "cmd_name"}
    assert {"repack", "pack-objects"} <= commands


def test_roll_ups_of_a_busy_clone_are_paced(repo: Path) -> None:
    """A roll-up's prune-packed removes empty objects/xx directories under loose writers
    (git's own race): a clone is rolled up at most every ROLL_UP_EVERY seconds while it
    holds PACKS_URGENT packs or fewer, not at each sixteenth record."""
    ledger = Ledger.open(repo)
    for _ in range(PACKS_ROLLED_UP + 1):
        record(repo)
    ledger.wait_background(timeout=120)  # the first roll-up: nothing before it
    assert len(packs(repo)) <= PACKS_ROLLED_UP // 2
    for _ in range(PACKS_ROLLED_UP + 2):
        record(repo)
    ledger.wait_background(timeout=120)
    assert PACKS_ROLLED_UP < len(packs(repo)) <= PACKS_URGENT  # paced: none this time
    lock = repo / ".git" / "scp" / "repack.lock"
    long_ago = time.time() - 2 * ROLL_UP_EVERY
    os.utime(lock, (long_ago, long_ago))
    record(repo)
    ledger.wait_background(timeout=120)
    assert len(packs(repo)) <= PACKS_ROLLED_UP // 2


def test_the_packs_are_counted_at_a_processs_first_record_then_seldom(repo: Path) -> None:
    """Listing the pack directory at every record cost 50 µs on ext4: a process lists it at
    its first record (a CLI's only one: its packs must be rolled up too), then when the
    packs it wrote since could cross a bound, and at least every ``LIST_PACKS_EVERY``."""
    for _ in range(PACKS_ROLLED_UP + 1):  # one record a process, as the CLI's
        subprocess.run([sys.executable, "-c", WRITER, str(repo), "1"], check=True,
                       timeout=120)
    assert len(packs(repo)) <= PACKS_ROLLED_UP // 2, packs(repo)  # the last one rolled up
    Ledger.forget_instances()
    ledger = Ledger.open(repo)
    assert isinstance(ledger.writer, FileStore)  # made, as a record makes it
    (repo / ".git" / "scp" / "repack.lock").touch()  # a roll-up just started: none is due
    with file_access(repo / ".git" / "objects" / "pack") as access:
        due = [ledger.packs_due() for _ in range(LIST_PACKS_EVERY + 1)]  # after each record
    assert due == [False] * (LIST_PACKS_EVERY + 1)
    assert [kind for kind, _ in access] == ["list", "list"]  # the first, the 17th


WRITER = """
import sys
from controlplane import tracked_run
from controlplane.core.ledger import Ledger
for _ in range(int(sys.argv[2])):
    with tracked_run("test", "test:packs", project_root=sys.argv[1]):
        pass
Ledger.open(sys.argv[1]).wait_background(timeout=120)
"""


def test_writers_in_several_processes_and_their_roll_ups_lose_nothing(repo: Path) -> None:
    """Four processes record at once; each starts roll-ups while the others write packs
    and read the tip from them: every run is on the branch with its tag, fsck is clean."""
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(repo), "25"],
                                stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0 and "Traceback" not in err, err[-2000:]
    assert git(repo, "fsck", "--strict", "--no-dangling").strip() == ""
    Ledger.forget_instances()
    rows = Ledger.open(repo).index.rows()
    assert len(rows) == 100
    tags = git(repo, "for-each-ref", "--format=%(objecttype)", "refs/scp/run").split()
    assert tags == ["tag"] * 100
    assert int(git(repo, "rev-list", "--count", "scp-ledger")) == 100
    assert len(packs(repo)) < 100  # rolled up as they went (a pack a record otherwise)
    # how many are left depends on the load: a writer whose roll-up found the lock held by
    # another's started none (seen: 48 of 100 on a loaded machine). The next record, with
    # no roll-up running and none lately, rolls them up if they are over the bound.
    lock = repo / ".git" / "scp" / "repack.lock"
    long_ago = time.time() - 2 * ROLL_UP_EVERY
    os.utime(lock, (long_ago, long_ago))
    record(repo)
    Ledger.open(repo).wait_background(timeout=120)
    assert len(packs(repo)) <= PACKS_ROLLED_UP + 1, packs(repo)


def test_a_pull_keeps_what_it_fetched_as_a_pack(tmp_path: Path) -> None:
    """A few fetched objects were unpacked as loose files (git's fetch.unpackLimit, 100):
    a loose write that makes its objects/xx directory fails when a roll-up's prune-packed
    removes the empty directory in between (seen: 1 of 10 pulls beside 4 busy writers)."""
    from controlplane.core.ledger.sync import LedgerSync
    from tests.reliability.test_pull_turns import clones

    a, b = clones(tmp_path)
    record(a)
    for _ in range(2):
        record(b)
    LedgerSync(Ledger.open(b)).push()
    before = {name for name in object_files(a) if not name.startswith(("pack", "info"))}
    report = LedgerSync(Ledger.open(a)).pull()
    assert report.pulled_runs == 2
    loose = {name for name in object_files(a) if not name.startswith(("pack", "info"))}
    kinds = {git(a, "cat-file", "-t", name.replace("/", "")).strip() for name in loose - before}
    assert kinds <= {"tree", "commit"}, kinds  # the merge's own; every fetched one is packed
    assert git(a, "fsck", "--strict", "--no-dangling").strip() == ""


def test_no_gc_is_started_after_every_record_while_git_refuses_it(repo: Path) -> None:
    """After a ``gc --auto`` that left ``gc.log`` (objects it could not prune yet), git
    refuses to run again for a day: starting it after each record only cost a process."""
    git(repo, "config", "gc.auto", "1")  # due at any loose object in objects/17
    (repo / ".git" / "objects" / "17").mkdir(parents=True, exist_ok=True)
    for n in range(3):
        (repo / ".git" / "objects" / "17" / (f"{n}" * 38)).write_bytes(b"x")
    (repo / ".git" / "gc.log").write_text("warning: There are too many unreachable loose "
                                          "objects; run 'git prune' to remove them.\n")
    ledger = Ledger.open(repo)
    record(repo)
    assert ledger.gc_due() is False and ledger._gc is None
    old = time.time() - 2 * 86_400
    os.utime(repo / ".git" / "gc.log", (old, old))  # expired: git would run again
    ledger._gc_sampled = (-1, False)
    assert ledger.gc_due() is True


@pytest.mark.parametrize("size", [0, 1, 300, 7424, 8192, 8193, 1 << 20])
def test_a_record_compresses_its_objects_as_any_zlib_reads_them(size: int) -> None:
    """``deflate`` trades zlib's per-call set-up for a smaller hash table on small objects:
    the stream must stay one plain zlib stream of the same bytes, whatever the size."""
    data = random.Random(size).randbytes(size // 2) + b"run.json " * (size // 18)
    assert zlib.decompress(deflate(data)) == data
    assert zlib.decompressobj().decompress(deflate(data)) == data  # one stream, no trailer


def test_an_entry_header_encodes_every_size_as_git_reads_it() -> None:
    """Type in bits 4-6 of the first byte, size in its low 4 bits then 7 bits a byte,
    the top bit saying more follows (git's pack format): read back here as git does."""
    for size in [0, 1, 15, 16, 17, 2047, 2048, 2049, 1 << 18, (1 << 25) + 3, (1 << 40) - 1]:
        for kind, number in (("commit", 1), ("tree", 2), ("blob", 3), ("tag", 4)):
            header = _entry_header(kind, size)
            assert (header[0] >> 4) & 7 == number
            read, shift = header[0] & 15, 4
            for byte in header[1:]:
                read |= (byte & 0x7F) << shift
                shift += 7
            assert read == size
            assert all(byte & 0x80 for byte in header[:-1]) and not header[-1] & 0x80


@pytest.mark.parametrize("size", [0, 1, 60, 512, 0xFFFF])
def test_a_stored_stream_is_read_back_by_zlib_and_git(size: int, repo: Path) -> None:
    """A record's small trees go in its pack uncompressed, as one stored zlib block."""
    data = random.Random(size).randbytes(size)
    assert zlib.decompress(stored(data)) == data
    with pytest.raises(ValueError):
        stored(bytes(0x10000))
    record(repo)
    record(repo)  # its small trees stored: git reads and checks every object
    assert git(repo, "fsck", "--strict", "--no-dangling").strip() == ""


def day_tree(ids: random.Random, buckets: int = 256) -> bytes:
    """A busy day's tree: one subtree a bucket, each named by two hex digits."""
    return b"".join(b"40000 %02x\0" % n + ids.randbytes(20) for n in range(buckets))


def test_a_busy_days_tree_is_deflated_again_only_where_it_changed(repo: Path) -> None:
    """On a busy day each record rewrites the day tree (256 buckets, 7.4 KiB of ids that do
    not compress) with one bucket's id changed; deflating it whole was 55-80 µs of every
    record. It is deflated in pieces, each on its own, so the pieces before the changed
    entry are the same bytes as in the last record's stream (kept, not deflated again).
    Whole, a change anywhere changed the stream from its first block on."""
    ids = random.Random(7)
    tree = day_tree(ids)
    changed_at = 200 * 29 + 9  # bucket c8's id
    changed = tree[:changed_at] + ids.randbytes(20) + tree[changed_at + 20:]
    first, second = tree_stream(tree), tree_stream(changed)
    assert zlib.decompress(first) == tree and zlib.decompress(second) == changed
    assert len(first) < len(tree)  # still compressed: the names' bytes
    same = next(n for n, (old, new) in enumerate(zip(first, second, strict=False)) if old != new)
    unchanged = tree_stream(tree[:changed_at // TREE_PIECE * TREE_PIECE])  # the pieces before
    assert same >= len(unchanged) - 6  # all of them, but the final block and the checksum

    objects = repo / ".git" / "objects"  # and git reads a pack of such trees
    index = write_pack(str(objects), [("tree", tree), ("tree", changed)])
    assert index.removesuffix(".idx") + ".pack: ok" in git(repo, "verify-pack", "-v", index)
    for data in (tree, changed):
        oid = hashlib.sha1(b"tree %d\0" % len(data) + data).hexdigest()
        assert subprocess.run(["git", "cat-file", "tree", oid], cwd=repo, capture_output=True,
                              check=True).stdout == data
