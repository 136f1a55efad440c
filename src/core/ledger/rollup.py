"""The records' small packs merged into one without reading the ledger (issue 18 items 3, 5).

``git repack --geometric`` hands the packs to ``pack-objects --stdin-packs``, which walks
every tree of the commits they hold for its delta hints: the whole ledger at each roll-up
(27 ms of a 45 ms roll-up at 10,000 runs, growing with them), on the other core while the
next records are made. The records' packs need no walk: their objects are listed from
their indexes here, and ``git pack-objects`` in its plain mode, detached, packs just those.

A pack is merged only if it is small (at most ``SMALL_PACK`` bytes) and has no file
beside its ``.pack`` and ``.idx`` (``.keep``, ``.promisor``, a cruft pack's ``.mtimes``,
a ``.bitmap`` or ``.rev``: git's own, left to git). The smallest are taken while each is
under twice what is taken so far (git's geometric rule, factor 2), at most
``ROLL_UP_BYTES`` in all, so an object is copied a few times in its life, not at every
roll-up. The new pack is named into place, its index last, before any merged pack is
deleted (index first); a failure leaves every pack as it was. Larger consolidation is
git's own gc.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

SMALL_PACK = 1 << 20  # a pack at most this large may be merged (a record's: 2-10 KiB)
ROLL_UP_BYTES = 8 << 20  # the packs one roll-up merges, at most
_PACK_NAME = re.compile(r"pack-[0-9a-f]{40}")
_IDX_HEADER = b"\377tOc\0\0\0\2"
_OWN_FILES = (".idx", ".pack")

# $1 git dir, $2 the object list, $3 the roll-ups' lock, $4 "publish" to update the server
# info (the project set repack.updateServerInfo), then the packs to merge (pack-<hash>, no
# suffix). One roll-up at a time per clone: flock, where util-linux is.
SCRIPT = r"""set -eu
git_dir=$1; list=$2; lock=$3; publish=$4; shift 4
trap 'rm -f "$list"' EXIT
if command -v flock >/dev/null 2>&1; then
  exec 9>>"$lock"
  flock -n 9 || exit 0
fi
dir=$git_dir/objects/pack
name=$(git --git-dir="$git_dir" pack-objects -q --delta-base-offset "$dir/.tmp-scp-rollup" <"$list")
case $name in *[!0-9a-f]*|"") exit 1;; esac
for suffix in pack rev idx; do
  if [ -f "$dir/.tmp-scp-rollup-$name.$suffix" ]; then
    mv -f "$dir/.tmp-scp-rollup-$name.$suffix" "$dir/pack-$name.$suffix"
  fi
done
for old in "$@"; do
  if [ "$old" != "pack-$name" ]; then rm -f "$dir/$old.idx" "$dir/$old.pack"; fi
done
if [ "$publish" = publish ]; then git --git-dir="$git_dir" update-server-info; fi
"""
LISTS_KEPT_FOR = 3600.0  # seconds: an object list older than this is a killed roll-up's


def choose(pack_dir: str) -> list[str]:
    """The packs (``pack-<hash>``) a roll-up merges now: none if fewer than two qualify."""
    try:
        names = os.listdir(pack_dir)
    except OSError:
        return []
    stems: dict[str, set[str]] = {}
    for name in names:
        stem, dot, suffix = name.partition(".")
        if dot:
            stems.setdefault(stem, set()).add("." + suffix)
    sizes = []
    for stem, suffixes in stems.items():
        if not _PACK_NAME.fullmatch(stem) or suffixes != set(_OWN_FILES):
            continue
        try:
            size = os.stat(f"{pack_dir}/{stem}.pack").st_size
        except OSError:
            continue
        if size <= SMALL_PACK:
            sizes.append((size, stem))
    sizes.sort()
    chosen: list[str] = []
    total = 0
    for size, stem in sizes:
        if (len(chosen) >= 2 and size >= 2 * total) or total + size > ROLL_UP_BYTES:
            break
        chosen.append(stem)
        total += size
    return chosen if len(chosen) >= 2 else []


def object_ids(pack_dir: str, stems: list[str]) -> list[str] | None:
    """The ids the indexes of *stems* list (hex, one per line's worth); None if one is not
    a version-2 index (or is gone: a gc deleted it since)."""
    ids: list[str] = []
    for stem in stems:
        try:
            with open(f"{pack_dir}/{stem}.idx", "rb") as index:
                head = index.read(8 + 256 * 4)
                if len(head) != 8 + 256 * 4 or head[:8] != _IDX_HEADER:
                    return None
                count = struct.unpack_from(">I", head, 8 + 255 * 4)[0]
                names = index.read(count * 20)
        except OSError:
            return None
        if len(names) != count * 20:
            return None
        ids.extend(names[at:at + 20].hex() for at in range(0, len(names), 20))
    return ids


def prepare(git_dir: Path, scp_dir: Path, lock: Path, publish: bool) -> list[str] | None:
    """The argv of a detached roll-up of the small packs of *git_dir* (its object list
    written under *scp_dir*; *publish*: update the server info after), or None when there
    are not two to merge."""
    pack_dir = f"{git_dir}/objects/pack"
    stems = choose(pack_dir)
    ids = object_ids(pack_dir, stems) if stems else None
    if not ids:
        return None
    _sweep_lists(scp_dir)
    listing = f"{scp_dir}/rollup-{os.getpid()}-{os.urandom(4).hex()}.list"
    fd = os.open(listing, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write("\n".join(ids) + "\n")
    return ["sh", "-c", SCRIPT, "scp-rollup", str(git_dir), listing, str(lock),
            "publish" if publish else "-", *stems]


def _sweep_lists(scp_dir: Path) -> None:
    """Remove the object lists of roll-ups killed before they removed their own."""
    now = time.time()
    try:
        with os.scandir(scp_dir) as found:
            stale = [entry.path for entry in found
                     if entry.name.startswith("rollup-") and entry.name.endswith(".list")
                     and now - entry.stat().st_mtime > LISTS_KEPT_FOR]
    except OSError:
        return
    for path in stale:
        with contextlib.suppress(OSError):
            os.unlink(path)
