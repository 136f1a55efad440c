"""git's object database in plain Python: loose and packed objects read, loose ones written.

For a process that records one run and exits (``controlplane exec``, a script): importing
pygit2 costs it about 35 ms, more than the record. Only what git itself writes by default
is read: SHA-1 objects, loose or in version-2 pack indexes (with their offset and ref
deltas). Anything else (SHA-256, alternates, another index version, a damaged object)
raises ``Unsupported``, and the caller hands the whole write to pygit2.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sys
import time
import zlib
from pathlib import Path

from controlplane.core.ledger.gitconfig import Unsupported

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    from typing import Any

try:  # CPython's own SHA-1: hashlib's OpenSSL binding takes ~2 ms to import, every exec
    from _sha1 import sha1 as _own_sha1
except ImportError:  # pragma: no cover - another interpreter
    from hashlib import sha1 as _own_sha1

# OpenSSL's SHA-1 is ~8x faster here (4 against 31 µs for a busy day's 7 KiB tree) but
# hashlib costs 2-4 ms to import. Rent or buy: a process hashes with CPython's own until
# the time it lost by that (~3.9 µs a KiB) would have paid for the import, then imports
# hashlib; at once if something already did (a server has).
_BUY_AFTER = 1024 * 1024  # bytes hashed with CPython's own: ~4 ms lost
_hashed = 0
_openssl: Any = None


def sha1(data: bytes) -> Any:
    """``hashlib.sha1(data)``: OpenSSL's, or CPython's own while hashlib is not worth it."""
    global _hashed, _openssl
    if _openssl is None:
        loaded = getattr(sys.modules.get("hashlib"), "sha1", None)
        if loaded is None and _hashed < _BUY_AFTER:
            _hashed += len(data)
            return _own_sha1(data)
        if loaded is None:
            import hashlib

            loaded = hashlib.sha1
        _openssl = loaded
    return _openssl(data)


TYPES = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}
_OFS_DELTA, _REF_DELTA = 6, 7
_IDX_MAGIC = b"\377tOc\x00\x00\x00\x02"
_CHUNK = 64 * 1024
_CACHED = 64  # delta bases kept per pack (a record reads a few trees, often one chain)
RELIST_AFTER = 1.0  # seconds: a changed pack directory is listed again at most this often


SMALL_OBJECT = 8192  # bytes: up to this, a compressor whose state stays under 128 KiB


def deflate(data: bytes) -> bytes:
    """*data* as a zlib stream at level 1 (git's ``core.looseCompression`` default).

    ``zlib.compress`` sets up ~256 KiB of state per call, which glibc maps and unmaps
    (its mmap threshold is 128 KiB): 20 µs for a 300-byte run.json whose compression takes
    2, and a record compresses a dozen objects. An 8 KiB window with ``memLevel=7`` needs
    ~96 KiB: 5 µs for a small object, 66 against 105 for a busy day's 7 KiB tree, the same
    size within 1%. (``memLevel=1`` is faster still on small objects but 5x slower on a
    tree's ids, which do not compress.) The stream is the same format: any git reads it."""
    if len(data) > SMALL_OBJECT:
        return zlib.compress(data, 1)
    compressor = zlib.compressobj(1, zlib.DEFLATED, 13, 7)
    return compressor.compress(data) + compressor.flush()


STORED_UP_TO = 512  # bytes: a smaller tree is stored in its stream, not compressed


def stored(data: bytes) -> bytes:
    """*data* as a zlib stream of one stored (uncompressed) block: a small tree is mostly
    20-byte ids, which do not compress (its stream was as long or longer), and this costs
    0.6 µs against 5."""
    if len(data) > 0xFFFF:
        raise ValueError("a stored block holds at most 65,535 bytes")
    size = len(data)
    return (b"\x78\x01\x01" + size.to_bytes(2, "little") + (size ^ 0xFFFF).to_bytes(2, "little")
            + data + zlib.adler32(data).to_bytes(4, "big"))


PACKS_KNOWN = 256  # packs this process wrote whose ids it keeps, at most


class ObjectDatabase:
    """The ``objects`` directory of one repository."""

    def __init__(self, objects_dir: Path) -> None:
        if (objects_dir / "info" / "alternates").exists():
            raise Unsupported("objects/info/alternates")
        self.dir = str(objects_dir)
        self._packs: dict[str, Pack] | None = None
        self._listed = 0  # the pack directory's mtime when listed
        self._listed_at = -RELIST_AFTER  # time.monotonic() when listed or found unchanged
        self._written: dict[str, frozenset[bytes]] = {}  # pack index name -> the ids it holds
        self._last_found: str | None = None  # the pack that held the last object read

    def close(self) -> None:
        for pack in (self._packs or {}).values():
            pack.close()
        self._packs = None

    def loose_path(self, oid: str) -> str:
        return f"{self.dir}/{oid[:2]}/{oid[2:]}"

    def locate(self, oid: str) -> str | None:
        """The file holding *oid*: its loose file or the index of a pack there now. The
        packs as last listed are searched first (the records add one each, and listing
        them again at every search cost more than the search); again listed afresh when
        none holds it or the one that did is gone."""
        loose = self.loose_path(oid)
        if os.path.exists(loose):
            return loose
        binary = bytes.fromhex(oid)
        for listed in (self._packs, None):
            found = self._find(listed if listed is not None else self._list_packs(True), binary)
            if found is not None:
                path = f"{self.dir}/pack/{found[0]}"
                if listed is None or os.path.exists(path):
                    return path
                # else a gc deleted it since it was listed: list again
        return None

    def read(self, oid: str) -> tuple[str, bytes]:
        """(type, content) of object *oid* (40 hex); KeyError if this repository lacks it."""
        kind, data, _ = self.read_from(oid)
        return kind, data

    def read_from(self, oid: str) -> tuple[str, bytes, str]:
        """(type, content, the file holding it: a pack's index or the loose file) of object
        *oid*; KeyError if this repository lacks it. The packs as last listed are searched
        first, as git does: a ledger's objects are packed (a record writes a pack), and
        trying the loose file first cost every read a failed open."""
        binary = bytes.fromhex(oid)
        for rescan in (False, True):  # a gc may have packed it since the packs were listed
            found = self._find(self._list_packs(rescan), binary)
            if found is not None:
                name, pack, offset = found
                kind, data = pack.read_at(offset, self)
                return TYPES[kind], data, f"{self.dir}/pack/{name}"
            if not rescan:
                loose = self._read_loose(oid)
                if loose is not None:
                    return loose
        raise KeyError(oid)

    def _find(self, packs: dict[str, Pack], oid: bytes) -> tuple[str, Pack, int] | None:
        """(name, pack, offset) of the first of *packs* holding *oid*; the pack that held the
        last object found is searched first (git's most-recently-used pack): between
        roll-ups a record adds a pack, and the trees a record reads are most often in the
        one big pack, which came anywhere among a hundred in name order."""
        last = self._last_found
        if last is not None:
            pack = packs.get(last)
            if pack is not None:
                offset = pack.offset(oid)
                if offset is not None:
                    return last, pack, offset
        for name, pack in packs.items():
            offset = pack.offset(oid) if name != last else None
            if offset is not None:
                self._last_found = name
                return name, pack, offset
        return None

    def _read_loose(self, oid: str) -> tuple[str, bytes, str] | None:
        path = self.loose_path(oid)
        try:
            with open(path, "rb") as loose:
                raw = zlib.decompress(loose.read())
        except FileNotFoundError:
            return None
        except zlib.error as exc:
            raise Unsupported(f"loose object {oid}: {exc}") from None
        header, _, data = raw.partition(b"\0")
        kind, _, size = header.partition(b" ")
        if kind.decode("ascii", "replace") not in TYPES.values() or int(size) != len(data):
            raise Unsupported(f"loose object {oid}: a header not read here")
        return kind.decode(), data, path

    def exists(self, oid: str) -> bool:
        """True if *oid* is loose or in a pack (the packs listed afresh)."""
        if os.path.exists(self.loose_path(oid)):
            return True
        binary = bytes.fromhex(oid)
        return any(pack.offset(binary) is not None for pack in self._list_packs(True).values())

    def _list_packs(self, rescan: bool) -> dict[str, Pack]:
        """The packs, listed again when *rescan*, or when the pack directory changed (a gc
        replaced them: the maps of deleted packs are closed, their disk space freed) and
        the last listing is ``RELIST_AFTER`` old. Not sooner: every record adds a pack, and
        a read of a tree that left the store's cache (a busy day's bucket, first touched
        since) listed the directory each time; the last listing serves the read (a mapped
        pack reads the same after a gc deleted it), and a miss lists again (*rescan*)."""
        directory = f"{self.dir}/pack"
        now = time.monotonic()
        if self._packs is not None and not rescan and now - self._listed_at < RELIST_AFTER:
            return self._packs
        try:
            changed = os.stat(directory).st_mtime_ns
        except FileNotFoundError:
            changed = 0
        self._listed_at = now
        if self._packs is not None and not rescan and changed == self._listed:
            return self._packs
        old = self._packs or {}
        self._listed = changed
        try:
            names = sorted(n for n in os.listdir(directory) if n.endswith(".idx"))
        except FileNotFoundError:
            names = []
        packs: dict[str, Pack] = {}
        written = self._written
        for name in names:
            known = old.pop(name, None)
            packs[name] = known or Pack(f"{directory}/{name}", written.get(name))
        for gone in old.values():
            gone.close()
        self._written = {name: written[name] for name in written if name in packs}
        self._packs = packs
        return packs

    def add_pack(self, idx_path: str, members: frozenset[bytes]) -> None:
        """Count the pack this process just wrote (its index at *idx_path*) among the packs,
        with the ids it holds: finding an object elsewhere never maps it."""
        name = os.path.basename(idx_path)
        written = self._written
        written[name] = members
        if len(written) > PACKS_KNOWN:  # not listed since: roll-ups merged the oldest
            del written[next(iter(written))]
        if self._packs is not None and name not in self._packs:
            self._packs[name] = Pack(idx_path, members)

    def write(self, kind: str, data: bytes) -> str:
        """Write *data* as a loose object of *kind* unless it exists; returns its id."""
        raw = b"%s %d\0" % (kind.encode(), len(data)) + data
        oid = sha1(raw).hexdigest()
        path = self.loose_path(oid)
        if os.path.exists(path):
            with contextlib.suppress(OSError):
                os.utime(path)  # freshened, as git does: a prune keeps recent objects
            return oid
        temporary = os.path.join(os.path.dirname(path), f"tmp_obj_{os.getpid()}_{oid[2:10]}")
        publish(temporary, path, deflate(raw))
        return oid


def publish(temporary: str, path: str, data: bytes) -> None:
    """*data* at *path* (0444, as git's objects) through *temporary* and a rename, its
    directory made if missing; on failure no temporary file stays behind."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        fd = os.open(temporary, flags, 0o444)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(temporary), exist_ok=True)
        fd = os.open(temporary, flags, 0o444)
    except FileExistsError:  # a write of ours that died: its name is ours again
        os.unlink(temporary)
        fd = os.open(temporary, flags, 0o444)
    try:
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


class Pack:
    """One ``.idx``/``.pack`` pair, mapped read-only when first searched. *members*: the ids
    it holds, when known (a pack this process wrote): a search for any other maps nothing."""

    def __init__(self, idx_path: str, members: frozenset[bytes] | None = None) -> None:
        self.path = idx_path
        self.members = members
        self._idx: mmap.mmap | None = None
        self._pack: mmap.mmap | None = None

    def _map(self) -> None:
        with open(self.path, "rb") as idx_file:
            idx = mmap.mmap(idx_file.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            with open(self.path[:-4] + ".pack", "rb") as pack_file:
                pack = mmap.mmap(pack_file.fileno(), 0, access=mmap.ACCESS_READ)
        except BaseException:
            idx.close()
            raise
        if idx[:8] != _IDX_MAGIC or pack[:4] != b"PACK":
            idx.close()
            pack.close()
            raise Unsupported(f"{self.path}: not a version-2 pack index")
        self._idx, self._pack = idx, pack
        self._names = 8 + 256 * 4
        self.count = self._count(255) if len(idx) >= self._names else 0
        self._offsets = self._names + self.count * 24  # after the names and their CRCs
        self._large = self._offsets + self.count * 4
        if len(idx) < self._large + 40:  # and two checksums
            self.close()
            raise Unsupported(f"{self.path}: a pack index shorter than its objects need")
        self._cache: dict[int, tuple[int, bytes]] = {}

    def _count(self, first: int) -> int:
        """The fan-out table's count of objects whose id's first byte is at most *first*."""
        idx = self._idx
        assert idx is not None
        at = 8 + first * 4
        return int.from_bytes(idx[at:at + 4], "big")

    def close(self) -> None:
        if self._idx is not None and self._pack is not None:
            self._idx.close()
            self._pack.close()
        self._idx = self._pack = None

    def offset(self, oid: bytes) -> int | None:
        """Where object *oid* (20 bytes) starts in the pack, or None (also when the pack
        was deleted, by a gc, before it was first searched)."""
        if self.members is not None and oid not in self.members:
            return None
        if self._idx is None:
            try:
                self._map()
            except FileNotFoundError:
                return None
        idx = self._idx
        assert idx is not None
        first = oid[0]
        low = self._count(first - 1) if first else 0
        high = self._count(first)
        names = self._names
        while low < high:
            middle = (low + high) // 2
            at = names + middle * 20
            found = idx[at:at + 20]
            if found < oid:
                low = middle + 1
            elif found > oid:
                high = middle
            else:
                at = self._offsets + middle * 4
                value = int.from_bytes(idx[at:at + 4], "big")
                if value & 0x80000000:
                    at = self._large + (value & 0x7FFFFFFF) * 8
                    value = int.from_bytes(idx[at:at + 8], "big")
                return value
        return None

    def read_at(self, offset: int, odb: ObjectDatabase) -> tuple[int, bytes]:
        """(type number, content) of the object at *offset*, deltas applied."""
        requested, chain = offset, list[bytes]()
        while True:
            cached = self._cache.get(offset)
            if cached is not None:
                kind, data = cached
                break
            kind, size, start, base = self._header(offset)
            if kind in TYPES:
                data = self._inflate(start, size)
                break
            chain.append(self._inflate(start, size))
            if isinstance(base, int):
                offset = base
                continue
            base_kind, data = odb.read(base.hex())  # a ref delta: its base may be anywhere
            kind = next(n for n, name in TYPES.items() if name == base_kind)
            break
        for delta in reversed(chain):
            data = apply_delta(data, delta)
        if chain:
            if len(self._cache) >= _CACHED:
                self._cache.pop(next(iter(self._cache)))
            self._cache[requested] = (kind, data)
        return kind, data

    def _header(self, offset: int) -> tuple[int, int, int, int | bytes]:
        """(type, inflated size, where the data starts, delta base: offset or object id)."""
        pack, begin = self._pack, offset
        assert pack is not None  # mapped by the offset that found the object
        byte = pack[offset]
        kind, size, shift = (byte >> 4) & 7, byte & 15, 4
        offset += 1
        while byte & 0x80:
            byte = pack[offset]
            size |= (byte & 0x7F) << shift
            shift += 7
            offset += 1
        base: int | bytes = 0
        if kind == _OFS_DELTA:
            byte = pack[offset]
            distance = byte & 0x7F
            offset += 1
            while byte & 0x80:
                byte = pack[offset]
                distance = ((distance + 1) << 7) | (byte & 0x7F)
                offset += 1
            base = begin - distance
        elif kind == _REF_DELTA:
            base = bytes(pack[offset:offset + 20])
            offset += 20
        elif kind not in TYPES:
            raise Unsupported(f"pack object type {kind}")
        return kind, size, offset, base

    def _inflate(self, start: int, size: int) -> bytes:
        """The object data at *start*, never inflated past the *size* its header gives (a
        damaged or hostile pack cannot make it allocate more)."""
        inflater = zlib.decompressobj()
        data = bytearray()
        position, pending = start, b""
        pack = self._pack
        assert pack is not None  # mapped by the offset that found the object
        try:
            while not inflater.eof:
                if not pending:
                    pending = pack[position:position + _CHUNK]
                    position += len(pending)
                    if not pending:
                        raise Unsupported("a pack object ends early")
                data += inflater.decompress(pending, size + 1 - len(data))
                pending = inflater.unconsumed_tail
                if len(data) > size:
                    raise Unsupported("a pack object larger than its header says")
        except zlib.error as exc:
            raise Unsupported(f"pack object: {exc}") from None
        if len(data) != size:
            raise Unsupported("a pack object's size differs from its header")
        return bytes(data)


def _varint(delta: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = delta[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


def apply_delta(base: bytes, delta: bytes) -> bytes:
    """git's delta: copy ranges of *base* and inserted bytes."""
    source_size, position = _varint(delta, 0)
    target_size, position = _varint(delta, position)
    if source_size != len(base):
        raise Unsupported("a delta's base size differs")
    out = bytearray()
    end = len(delta)
    while position < end:
        op = delta[position]
        position += 1
        if op & 0x80:
            start = length = 0
            for bit in range(4):
                if op & (1 << bit):
                    start |= delta[position] << (8 * bit)
                    position += 1
            for bit in range(3):
                if op & (0x10 << bit):
                    length |= delta[position] << (8 * bit)
                    position += 1
            out += base[start:start + (length or 0x10000)]
        elif op:
            out += delta[position:position + op]
            position += op
        else:
            raise Unsupported("a delta op 0")
    if len(out) != target_size:
        raise Unsupported("a delta's result size differs")
    return bytes(out)
