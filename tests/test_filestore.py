"""The record written as plain files (``ledger/filestore.py``, issue 18 item 8) is the record
pygit2 writes: the same trees, commit, reflog line and tag, on loose and packed ledgers
(offset and ref deltas), beside pygit2 writers of other processes; anything it does not read
as git does goes to pygit2 before the branch moves."""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import pytest

from controlplane import tracked_run
from controlplane.core.ledger.filestore import FileStore, Unsupported
from controlplane.core.ledger.odb import ObjectDatabase
from controlplane.core.ledger.store import BRANCH_REF, TAG_PREFIX, GitStore, NewerLedgerFormat
from controlplane.core.runs import ledger_dir, new_run_id
from tests.conftest import GIT_ENV, git
from tests.file_access import file_access

TIME = re.compile(rb"> \d+ [+-]\d{4}")


def filestore(repo: Path) -> FileStore:
    git_dir = repo / ".git"
    return FileStore(git_dir, TAG_PREFIX, repo, fallback=lambda: GitStore(git_dir))


def record_runs(repo: Path, count: int) -> None:
    for number in range(count):
        with tracked_run("test", f"test:seed{number % 3}", project_root=repo):
            pass


def clone(repo: Path, path: Path) -> Path:
    git(repo.parent, "clone", "-q", str(repo), str(path))
    git(path, "fetch", "-q", "origin", "scp-ledger:scp-ledger")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")
    return path


def recorded_run_files(repo: Path) -> list[str]:
    """Every run.json on the ledger branch, as git lists it."""
    return [p for p in git(repo, "ls-tree", "-r", "--name-only", "scp-ledger").split()
            if p.endswith("/run.json")]


def assert_fsck_clean(repo: Path) -> None:
    fsck = subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=repo,
                          capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stderr


def untimed(data: bytes) -> bytes:
    return TIME.sub(b"> T", data)


def one_record(store: GitStore | FileStore, run_id: str, head: str) -> tuple[str, str]:
    files = {"run.json": json.dumps({"run_id": run_id}).encode(), "events.jsonl": b"{}\n"}
    with store.checked_once():
        _, commit = store.commit_files(ledger_dir(run_id), files, f"run {run_id} test:x ok\n\nx",
                                       author="Someone")
        assert store.tag_run(run_id, head, "test:x ok", tagger="Someone") is True
    return str(commit), run_id


@pytest.mark.parametrize("packing", ["loose", "packed, offset deltas", "packed, ref deltas"])
def test_the_same_record_as_pygit2_writes(repo: Path, tmp_path: Path, packing: str) -> None:
    record_runs(repo, 12)
    if packing != "loose":
        offsets = "true" if "offset" in packing else "false"
        git(repo, "-c", f"repack.useDeltaBaseOffset={offsets}", "gc", "-q", "--aggressive",
            "--prune=now")
        assert not list((repo / ".git" / "objects").glob("??/*"))  # every object in a pack
    other = clone(repo, tmp_path / "other")
    head = git(repo, "rev-parse", "HEAD").strip()
    run_id = new_run_id()
    one_record(filestore(repo), run_id, head)
    one_record(GitStore(other / ".git"), run_id, head)
    for ref in (BRANCH_REF, TAG_PREFIX + run_id):
        mine = git(repo, "cat-file", "-p", ref).encode()
        libgit2 = git(other, "cat-file", "-p", ref).encode()
        assert untimed(mine) == untimed(libgit2)
    assert git(repo, "rev-parse", "scp-ledger^{tree}") == git(other, "rev-parse",
                                                               "scp-ledger^{tree}")
    log = (repo / ".git" / "logs" / "refs" / "heads" / "scp-ledger").read_bytes()
    other_log = (other / ".git" / "logs" / "refs" / "heads" / "scp-ledger").read_bytes()
    for path, line in ((repo, log.splitlines()[-1]), (other, other_log.splitlines()[-1])):
        ids = git(path, "rev-parse", "scp-ledger~1", "scp-ledger").split()
        assert line.startswith(" ".join(ids).encode() + b" "), line  # its own commits
    # the rest alike (the commits' ids differ when the two records straddle a second)
    assert untimed(log.splitlines()[-1])[82:] == untimed(other_log.splitlines()[-1])[82:]
    assert_fsck_clean(repo)


def test_a_newer_ledger_format_is_refused_as_pygit2_refuses_it(repo: Path) -> None:
    record_runs(repo, 1)
    tip = git(repo, "rev-parse", "scp-ledger").strip()
    env = {**os.environ, **GIT_ENV, "GIT_INDEX_FILE": str(repo / ".git" / "scp-test-index")}

    def plumbing(*args: str, data: str | None = None) -> str:
        return subprocess.run(["git", *args], cwd=repo, env=env, input=data, text=True,
                              capture_output=True, check=True).stdout.strip()

    newer = plumbing("hash-object", "-w", "--stdin", data="99\n")
    plumbing("read-tree", tip)
    plumbing("update-index", "--add", "--cacheinfo", f"100644,{newer},ledger/FORMAT")
    commit = plumbing("commit-tree", plumbing("write-tree"), "-p", tip, "-m", "a newer one")
    git(repo, "update-ref", "refs/heads/scp-ledger", commit)
    with pytest.raises(NewerLedgerFormat):
        one_record(filestore(repo), new_run_id(), git(repo, "rev-parse", "HEAD").strip())
    assert git(repo, "rev-parse", "scp-ledger").strip() == commit  # nothing moved


STORE_WRITER = """
import json, sys
from pathlib import Path
from controlplane.core.ledger.store import TAG_PREFIX, GitStore
from controlplane.core.runs import ledger_dir, new_run_id
git_dir = Path(".git").resolve()
if sys.argv[1] == "pygit2":
    store = GitStore(git_dir)
else:
    from controlplane.core.ledger.filestore import FileStore
    store = FileStore(git_dir, TAG_PREFIX, git_dir.parent, fallback=lambda: GitStore(git_dir))
for _ in range(int(sys.argv[2])):
    run_id = new_run_id()
    files = {"run.json": json.dumps({"run_id": run_id}).encode(), "events.jsonl": b""}
    with store.checked_once():
        store.commit_files(ledger_dir(run_id), files, "run " + run_id)
        assert store.tag_run(run_id, sys.argv[3], "test:x ok")
print(type(store).__name__, "pygit2" in sys.modules)
"""


def test_plain_and_pygit2_writers_record_side_by_side(repo: Path) -> None:
    """Two writers of plain files and one of pygit2, in processes of their own, 30 runs
    each, started together: every compare-and-swap lost is rebuilt on the new tip."""
    head = git(repo, "rev-parse", "HEAD").strip()
    writers = [subprocess.Popen([sys.executable, "-c", STORE_WRITER, kind, "30", head],
                                cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**os.environ, **GIT_ENV})
               for kind in ("plain", "plain", "pygit2")]
    outputs = [writer.communicate(timeout=300) for writer in writers]
    for writer, (_, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, err
    assert [out.strip() for out, _ in outputs] == ["FileStore False", "FileStore False",
                                                   "GitStore True"]
    assert git(repo, "rev-list", "--count", "scp-ledger").strip() == "90"
    assert len(git(repo, "for-each-ref", "refs/scp/run").splitlines()) == 90
    runs = recorded_run_files(repo)
    assert len(runs) == 90
    assert_fsck_clean(repo)


RECORD_TWO = """
from controlplane.core.ledger import Ledger
from controlplane.core.run_tracker import tracked_run
for _ in range(2):
    with tracked_run("test", "test:plain"):
        pass
print(type(Ledger.open().writer).__name__)
"""


@pytest.mark.parametrize("setup", ["a plain repository", "an include in the configuration",
                                   "alternates", "durability = record"])
def test_what_plain_files_do_not_read_is_recorded_by_pygit2(repo: Path, tmp_path: Path,
                                                            setup: str) -> None:
    if setup == "an include in the configuration":
        (tmp_path / "more.gitconfig").write_text("[core]\n\tlogAllRefUpdates = true\n")
        git(repo, "config", "include.path", str(tmp_path / "more.gitconfig"))
        with pytest.raises(Unsupported):
            filestore(repo)
    elif setup == "alternates":
        (repo / ".git" / "objects" / "info").mkdir(exist_ok=True)
        (repo / ".git" / "objects" / "info" / "alternates").write_text(
            str(tmp_path / "elsewhere" / "objects") + "\n")
        with pytest.raises(Unsupported):
            filestore(repo)
    env = {"CONTROLPLANE_DURABILITY": "record"} if setup == "durability = record" else {}
    done = subprocess.run([sys.executable, "-c", RECORD_TWO], cwd=repo, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **GIT_ENV, **env})
    assert done.returncode == 0, done.stderr
    plain = setup == "a plain repository"
    assert done.stdout.strip() == ("FileStore" if plain else "GitStore")
    assert git(repo, "rev-list", "--count", "scp-ledger").strip() == "2"


def test_trees_it_wrote_are_read_again_once_a_gc_packed_them(repo: Path) -> None:
    """The store keeps the trees it wrote for the next record, but only while the file
    holding them (loose, or its record's pack) is there: a gc that repacked them and
    deleted those sends it to the new pack."""
    store = filestore(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    for _ in range(3):
        one_record(store, new_run_id(), head)
    git(repo, "gc", "-q", "--prune=now")
    assert not list((repo / ".git" / "objects").glob("??/*"))
    one_record(store, new_run_id(), head)
    runs = recorded_run_files(repo)
    assert len(runs) == 4
    assert_fsck_clean(repo)


def bucket_run_id(bucket: int, number: int) -> str:
    """A run id of 2026-12-06 in *bucket* (00-ff), unique by *number*."""
    return f"20261206T12{number // 60_000 % 60:02d}{number // 1000 % 60:02d}" \
           f"{number % 1000:03d}Z-{bucket:02x}{number:06x}"


def test_a_days_bucket_trees_are_kept_and_found_again_after_a_gc(repo: Path) -> None:
    """A store that recorded a run in each of a day's 256 buckets starts the next run of
    each from the bucket's tree it wrote: no object is read. (It kept the last 64 trees read
    or written, so nearly every record read its bucket's tree back from a pack, listing and
    mapping every pack written since.) Once a gc merged the packs, the records that follow
    read only the pack the gc wrote, never one of the packs they wrote themselves."""
    store = filestore(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    objects = repo / ".git" / "objects"
    for number in range(256):
        one_record(store, bucket_run_id(number, number), head)
    with file_access(objects) as access:
        for number in range(256, 512):
            one_record(store, bucket_run_id(number % 256, number), head)
    assert [path for kind, path in access if kind == "read"] == []
    git(repo, "repack", "-a", "-d", "-q")
    (merged,) = [path.name for path in (objects / "pack").glob("*.idx")]
    with file_access(objects) as access:
        for number in range(512, 532):
            one_record(store, bucket_run_id(number % 256, number), head)
    read = {Path(path).stem for kind, path in access if kind == "read"}
    assert read == {Path(merged).stem}, access
    assert len(recorded_run_files(repo)) == 532
    assert_fsck_clean(repo)


def test_a_pack_deleted_after_its_listing_is_looked_for_elsewhere(repo: Path) -> None:
    """The packs as last listed are searched first: one a gc deleted since still answers
    from its mapping, but is gone, so the object is looked for in the packs there now."""
    record_runs(repo, 3)
    git(repo, "repack", "-a", "-d", "-q")
    odb = ObjectDatabase(repo / ".git" / "objects")
    tip = git(repo, "rev-parse", "scp-ledger").strip()
    (first,) = (repo / ".git" / "objects" / "pack").glob("*.idx")
    assert odb.locate(tip) == str(first)
    record_runs(repo, 1)
    git(repo, "repack", "-a", "-d", "-q")  # the pack just listed, replaced
    (second,) = (repo / ".git" / "objects" / "pack").glob("*.idx")
    assert second != first
    assert odb.locate(tip) == str(second)
    assert odb.read(tip)[0] == "commit"


def test_a_packed_object_reads_from_its_pack_before_any_loose_copy(repo: Path) -> None:
    """Packs are searched before loose files, as git searches them: a ledger's objects are
    packed (every record writes a pack), and opening the loose path first cost each read of
    a packed tree a failed open. So a damaged loose copy of a packed object (another tool's
    write cut short) no longer stops the read, as it does not stop git's; the read also
    says which file holds the object, so the tree is not looked for a second time."""
    record_runs(repo, 2)
    git(repo, "repack", "-a", "-d", "-q")
    objects = repo / ".git" / "objects"
    tip = git(repo, "rev-parse", "scp-ledger").strip()
    loose = objects / tip[:2] / tip[2:]
    loose.parent.mkdir(exist_ok=True)
    loose.write_bytes(b"not a zlib stream")
    assert git(repo, "cat-file", "-t", tip).strip() == "commit"
    content = subprocess.run(["git", "cat-file", "commit", tip], cwd=repo,
                             capture_output=True, check=True).stdout
    odb = ObjectDatabase(objects)
    assert odb.read(tip) == ("commit", content)
    (pack,) = (objects / "pack").glob("*.idx")
    assert odb.read_from(tip) == ("commit", content, str(pack))


def test_reads_between_own_pack_writes_do_not_list_the_pack_directory(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A record adds a pack; a read of a tree it did not keep (a busy day's bucket, first
    touched) listed the directory again each time because it had changed. Now the last
    listing serves it, and an object only a newer pack holds is still found (a miss lists
    again)."""
    from controlplane.core.ledger import odb as odb_module
    from controlplane.core.ledger.packwrite import write_pack

    monkeypatch.setattr(odb_module, "RELIST_AFTER", 3600.0, raising=False)  # slow CI: no matter
    record_runs(repo, 3)
    git(repo, "repack", "-a", "-d", "-q")
    objects = repo / ".git" / "objects"
    odb = ObjectDatabase(objects)
    tip = git(repo, "rev-parse", "scp-ledger").strip()
    trees = [line.split()[0] for line in
             git(repo, "rev-list", "--objects", "scp-ledger").splitlines()]
    listed: list[str] = []
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path: listed.append(str(path)) or
                        real_listdir(path))
    assert odb.read(tip)[0] == "commit"
    for n in range(5):  # five records' packs, each followed by a read
        odb.add_pack(write_pack(str(objects), [("blob", b"record %d" % n)]), frozenset())
        assert odb.read(trees[-1 - n])[0] in ("tree", "blob")
    assert len(listed) == 1, listed

    other = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input="another",
                           capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["git", "pack-objects", "-q", str(objects / "pack" / "pack")], cwd=repo,
                   input=other + "\n", capture_output=True, text=True, check=True)
    git(repo, "prune-packed")  # another process packed it: in a pack not listed here
    assert not (objects / other[:2] / other[2:]).exists()
    assert odb.read(other) == ("blob", b"another")
    assert len(listed) == 2, listed


def hostile_pack(objects: Path, declared: int, data: bytes) -> str:
    """A one-object pack whose header says *declared* bytes but whose zlib stream inflates
    to *data*; returns the object id its index gives."""
    oid = hashlib.sha1(b"blob %d\0" % declared + data[:declared]).digest()
    size, head = declared, bytearray()
    byte = (3 << 4) | (size & 15)  # a blob
    size >>= 4
    while size:
        head.append(byte | 0x80)
        byte, size = size & 0x7F, size >> 7
    head.append(byte)
    body = b"PACK" + struct.pack(">II", 2, 1) + bytes(head) + zlib.compress(data)
    pack = body + hashlib.sha1(body).digest()
    fanout = [0 if n < oid[0] else 1 for n in range(256)]
    index = (b"\377tOc" + struct.pack(">I", 2) + struct.pack(">256I", *fanout) + oid
             + struct.pack(">I", zlib.crc32(pack[12:-20])) + struct.pack(">I", 12)
             + pack[-20:])
    index += hashlib.sha1(index).digest()
    (objects / "pack").mkdir(parents=True, exist_ok=True)
    (objects / "pack" / "pack-hostile.pack").write_bytes(pack)
    (objects / "pack" / "pack-hostile.idx").write_bytes(index)
    return oid.hex()


def test_a_pack_object_is_never_inflated_past_its_header(tmp_path: Path) -> None:
    """A damaged or hostile pack whose object inflates to 64 MiB while its header says 10
    bytes: refused (pygit2 then answers) after at most the header's size plus one step."""
    objects = tmp_path / "objects"
    oid = hostile_pack(objects, 10, b"x" * (64 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(Unsupported, match="larger than its header"):
            ObjectDatabase(objects).read(oid)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak
    honest = hostile_pack(tmp_path / "honest", 11, b"hello world")
    assert ObjectDatabase(tmp_path / "honest").read(honest) == ("blob", b"hello world")


def test_a_truncated_pack_index_is_refused_not_misread(tmp_path: Path) -> None:
    """An index cut short (a copy interrupted, a disk error) whose header is intact: the
    plain reader refuses it (``Unsupported``: pygit2 then answers) instead of reading
    counts and offsets past its end."""
    objects = tmp_path / "objects"
    oid = hostile_pack(objects, 11, b"hello world")
    index = objects / "pack" / "pack-hostile.idx"
    whole = index.read_bytes()
    for length in (8 + 512, 8 + 1024, len(whole) - 41):
        index.write_bytes(whole[:length])
        with pytest.raises(Unsupported, match="shorter"):
            ObjectDatabase(objects).read(oid)
    index.write_bytes(whole)
    assert ObjectDatabase(objects).read(oid) == ("blob", b"hello world")


@pytest.mark.parametrize("first_bytes", [[], [0], [255], [0, 0, 255, 255], [7, 7, 8, 200],
                                         list(range(256)), [0, 128, 255] * 5])
def test_the_fanout_table_counts_as_git_does(first_bytes: list[int]) -> None:
    from itertools import accumulate

    from controlplane.core.ledger.packwrite import fanout_table

    ids = sorted(bytes([first]) + hashlib.sha1(bytes([n])).digest()[1:]
                 for n, first in enumerate(first_bytes))
    counts = [0] * 256
    for oid in ids:
        counts[oid[0]] += 1
    expected = b"".join(n.to_bytes(4, "big") for n in accumulate(counts))
    assert fanout_table(ids) == expected
