"""Repair a ledger tip whose objects were pruned (``git gc --prune=now`` during a record).

The branch goes back to the newest commit in its reflog whose every object is
readable (or is removed if none is); the entries the lost commits held are
recorded again from what this clone still has: the view's files (exact bytes),
else the index's run (with the raw log's events). Run tags whose tag object is
gone are removed, so doctor makes them again.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from controlplane.core.ledger.demo_branch import is_demo
from controlplane.core.ledger.layout import entry_dirs, entry_of
from controlplane.core.ledger.store import BRANCH_REF, GitStore

log = logging.getLogger(__name__)


@dataclass
class TipRepair:
    """What a repair did: the broken and the readable tip, entries recorded again."""

    broken: str
    restored_to: str | None
    rerecorded: list[str] = field(default_factory=list)
    tags_removed: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"ledger tip {self.broken[:12]} missed objects (pruned during a record): "
               f"branch moved back to {(self.restored_to or 'nothing')[:12]}",
               f"entries recorded again from the view, index and logs: {len(self.rerecorded)}"]
        out += [f"  {entry_id}" for entry_id in self.rerecorded]
        out.append(f"run tags with a missing tag object removed: {len(self.tags_removed)}")
        return out


def readable(git_dir: Path, commit: str) -> bool:
    """True if *commit* and everything it reaches (history, trees, blobs) is present."""
    done = subprocess.run(["git", "--git-dir", str(git_dir), "rev-list", "--objects", commit],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False)
    return done.returncode == 0


def reflog_tips(git_dir: Path) -> list[str]:
    """The ledger branch's past values, newest first, each once."""
    try:
        lines = (git_dir / "logs" / BRANCH_REF).read_text(errors="replace").splitlines()
    except OSError:
        return []
    seen: list[str] = []
    for line in reversed(lines):
        fields = line.split(" ", 2)
        for oid in fields[1::-1] if len(fields) > 1 else ():
            if len(oid) == 40 and oid.strip("0") and oid not in seen:
                seen.append(oid)
    return seen


def known_entries(view_root: Path, index_rows: list[tuple[str, str]], logs_dir: Path
                  ) -> dict[str, dict[str, bytes]]:
    """Entry directory -> its files, from the view, else from the index and raw logs."""
    found: dict[str, dict[str, bytes]] = {}
    base = view_root / "ledger"
    for directory, _, names in os.walk(base) if base.is_dir() else ():
        relative = os.path.relpath(directory, view_root).replace(os.sep, "/")
        entry = entry_of(relative)
        if entry is None:
            continue
        files = {}
        for name in names:
            if not name.startswith("."):
                files[name] = (Path(directory) / name).read_bytes()
        if files:
            found[relative] = files
    for directory, text in index_rows:
        if directory in found or entry_of(directory) is None:
            continue
        data = json.loads(text)
        if is_demo(data):
            continue  # a demo run: on scp-demo, never lost with scp-ledger's tip
        key = "message.json" if directory.startswith("ledger/chat/") else "run.json"
        files = {key: (json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1) + "\n"
                       ).encode()}
        if key == "run.json":
            raw_log = logs_dir / f"{data.get('run_id')}.events.jsonl"
            files["events.jsonl"] = raw_log.read_bytes() if raw_log.exists() else b""
        found[directory] = files
    return found


def _message(directory: str, files: dict[str, bytes]) -> str:
    if "run.json" not in files:
        return "chat message"
    try:
        run = json.loads(files["run.json"])
        return (f"run {run['run_id']} {run.get('subtype')} {run.get('status')}\n\n"
                f"{run.get('summary') or ''}").rstrip()
    except (ValueError, KeyError, TypeError):
        return f"run {directory.rsplit('/', 1)[-1]}"


def broken_tags(store: GitStore) -> list[str]:
    """Run tag refs whose tag object is missing; removed (doctor tags those runs again)."""
    odb = pygit2.Odb(str(Path(store.repo.path) / "objects"))
    removed = []
    with store.lock:
        for name in list(store.repo.references):
            if not name.startswith(store.tag_prefix):
                continue
            ref = store.repo.references.get(name)
            if ref is not None and ref.type == pygit2.enums.ReferenceType.DIRECT \
                    and not odb.exists(ref.target):
                ref.delete()
                removed.append(name.removeprefix(store.tag_prefix))
    return removed


def repair_tip(store: GitStore, view_root: Path, index_rows: list[tuple[str, str]],
               logs_dir: Path) -> TipRepair | None:
    """Move a broken ledger tip back to a readable one and record its lost entries again.

    None when the tip is readable. Caller rebuilds view and index afterwards.
    """
    git_dir = Path(store.repo.path)
    tip = store.head()
    tags_removed = broken_tags(store)
    if tip is None or readable(git_dir, str(tip)):
        return TipRepair(str(tip), str(tip), [], tags_removed) if tags_removed else None
    entries = known_entries(view_root, index_rows, logs_dir)  # before the caches are rebuilt
    good = next((oid for oid in reflog_tips(git_dir)
                 if oid != str(tip) and readable(git_dir, oid)), None)
    with store.lock:
        ref = store.repo.references.get(BRANCH_REF)
        if ref is None:  # read as the tip above, gone since
            raise RuntimeError(f"{BRANCH_REF} vanished during the repair: "
                               "run `controlplane ledger doctor` again")
        if good is None:
            ref.delete()
        else:
            ref.set_target(pygit2.Oid(hex=good), "ledger doctor: back to the newest readable tip")
        store.repo.free()
    _drop_broken_reflog(git_dir)
    report = TipRepair(str(tip), good, [], tags_removed)
    base = pygit2.Oid(hex=good) if good else None
    for directory in sorted(entries, key=lambda d: d.rsplit("/", 1)[-1]):
        kind, entry_id = entry_of(directory) or ("", "")
        if any(store.has_path(base, place) for place in entry_dirs(kind, entry_id)):
            continue  # held, in either layout
        files = entries[directory]
        store.commit_files(directory, files, _message(directory, files))
        report.rerecorded.append(directory.rsplit("/", 1)[-1])
    return report


def _drop_broken_reflog(git_dir: Path) -> None:
    """Forget reflog entries of commits that miss objects (git fsck reports them)."""
    subprocess.run(["git", "--git-dir", str(git_dir), "reflog", "expire", "--stale-fix",
                    "--expire=never", "--expire-unreachable=never", BRANCH_REF],
                   stdin=subprocess.DEVNULL, capture_output=True, check=False)
