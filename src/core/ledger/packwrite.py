"""A record's new objects as one version-2 pack and its index, as ``git fast-import`` and
``git receive-pack`` store what they receive.

A record makes a dozen objects (two blobs, the trees on its path, the commit). Written
loose, each is a file created and renamed in its own ``objects/xx`` directory; on ext4 the
creations dominate the record. One pack is two files. Small packs are rolled up by ``git
repack --geometric`` (``Ledger.packs_due``) before git's own ``gc.autoPackLimit`` is near.

The pack is written and renamed first, its index last: git, libgit2 and ``odb`` find packs
by their ``.idx``, so a reader never sees an index without its pack, and a crash leaves at
worst a temporary file (``tmp_pack_*``, which ``git gc`` removes) or a pack no index names.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Sequence

from controlplane.core.ledger.odb import STORED_UP_TO, deflate, publish, sha1, stored

TYPE_NUMBERS = {"commit": 1, "tree": 2, "blob": 3, "tag": 4}
_IDX_HEADER = b"\377tOc\0\0\0\2"  # version 2


def object_id(kind: str, data: bytes) -> bytes:
    """The 20-byte id git gives *data* as an object of *kind*."""
    return sha1(b"%s %d\0" % (kind.encode(), len(data)) + data).digest()


def _entry_header(kind: str, size: int) -> bytes:
    """A pack entry's type and size: 3 bits of type, the size in 4 then 7-bit groups."""
    first = (TYPE_NUMBERS[kind] << 4) | (size & 15)
    if size < 0x800:  # a record's objects but its events: one or two bytes
        return bytes((first,)) if size < 16 else bytes((first | 0x80, size >> 4))
    out = bytearray([first])
    size >>= 4
    while size:
        out[-1] |= 0x80
        out.append(size & 0x7F)
        size >>= 7
    return bytes(out)


def pack_bytes(objects: Sequence[tuple[str, bytes]], ids: Sequence[bytes] | None = None
               ) -> tuple[bytes, bytes]:
    """(pack, index) holding *objects* ((type, content)), undeltified, zlib level 1 (git's
    ``core.compression`` for loose objects). *ids*: their ids when the caller has them."""
    chunks = [b"PACK\0\0\0\2" + len(objects).to_bytes(4, "big")]
    entries: list[tuple[bytes, int, int]] = []  # (id, crc32 of the entry, offset)
    offset = 12
    for number, (kind, data) in enumerate(objects):
        if kind != "tree":
            packed = deflate(data)
        elif len(data) <= STORED_UP_TO:
            packed = stored(data)
        else:
            packed = tree_stream(data)
        entry = _entry_header(kind, len(data)) + packed
        oid = ids[number] if ids is not None else object_id(kind, data)
        entries.append((oid, zlib.crc32(entry), offset))
        offset += len(entry)
        chunks.append(entry)
    body = b"".join(chunks)
    pack = body + sha1(body).digest()
    entries.sort()
    if offset >= 0x80000000:
        raise ValueError("a record's pack over 2 GiB")
    ids_sorted, crcs, offsets = zip(*entries, strict=True) if entries else ((), (), ())
    index = b"".join([
        _IDX_HEADER, fanout_table(ids_sorted), b"".join(ids_sorted),
        *(crc.to_bytes(4, "big") for crc in crcs),
        *(at.to_bytes(4, "big") for at in offsets), pack[-20:],
    ])
    return pack, index + sha1(index).digest()


TREE_PIECE = 2048  # bytes of a tree deflated on their own (a big tree's changed piece)
_PIECES_KEPT = 64  # deflated pieces kept: a busy day's day tree is 4
_pieces: dict[bytes, bytes] = {}  # piece -> its deflate blocks, least recently used first
_pieces_lock = threading.Lock()  # the stores of several ledgers may write at once
_FINAL_EMPTY_BLOCK = b"\x03\x00"  # BFINAL, fixed codes, end of block


def tree_stream(data: bytes) -> bytes:
    """*data* (a tree) as a zlib stream of pieces deflated on their own.

    A record rewrites the trees on its run's path with one entry changed. On a busy day
    the day tree holds 256 buckets (7.4 KiB of mostly ids, which do not compress), and
    deflating it whole took 55-80 µs of every record. Each ``TREE_PIECE`` bytes are
    deflated alone, ended by a full flush (byte-aligned, the compressor's history reset,
    so a piece's blocks depend on the piece only), and kept: only the piece that holds
    the changed entry is deflated again. Each piece's own Huffman table costs ~50 bytes.
    The stream is plain deflate (blocks then a final empty one): any git reads it."""
    pieces, kept = [], _pieces
    for start in range(0, len(data), TREE_PIECE):
        piece = data[start:start + TREE_PIECE]
        with _pieces_lock:
            packed = kept.pop(piece, None)
        if packed is None:
            compressor = zlib.compressobj(1, zlib.DEFLATED, -13, 7)
            packed = compressor.compress(piece) + compressor.flush(zlib.Z_FULL_FLUSH)
        with _pieces_lock:
            kept[piece] = packed  # the most recently used last
            if len(kept) > _PIECES_KEPT:
                del kept[next(iter(kept))]
        pieces.append(packed)
    return b"".join([b"\x78\x01", *pieces, _FINAL_EMPTY_BLOCK,
                     zlib.adler32(data).to_bytes(4, "big")])


def fanout_table(ids_sorted: Sequence[bytes]) -> bytes:
    """The index's 256 big-endian counts of the objects whose id's first byte is at most
    each value: a run of equal counts per gap between the objects' first bytes (``struct``
    is one more module for every ``exec`` to import)."""
    parts, filled = [], 0  # entries written
    for number, oid in enumerate(ids_sorted):
        if oid[0] > filled:  # entries filled..first byte - 1 count the objects before it
            parts.append(number.to_bytes(4, "big") * (oid[0] - filled))
            filled = oid[0]
    parts.append(len(ids_sorted).to_bytes(4, "big") * (256 - filled))
    return b"".join(parts)


def write_pack(objects_dir: str, objects: Sequence[tuple[str, bytes]],
               ids: Sequence[bytes] | None = None) -> str:
    """Write *objects* (with their *ids* if known) as ``objects/pack/pack-<checksum>.{pack,
    idx}``; returns the index's path. An existing pack of that name is kept (the same bytes)."""
    pack, index = pack_bytes(objects, ids)
    directory, checksum = f"{objects_dir}/pack", pack[-20:].hex()
    name = f"{directory}/pack-{checksum}"
    temporary = f"{directory}/tmp_pack_{os.getpid()}_{checksum[:12]}"
    for suffix, data in ((".pack", pack), (".idx", index)):  # the index last: it publishes
        publish(temporary, name + suffix, data)
    return name + ".idx"
