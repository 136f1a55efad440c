"""``ledger doctor``: check the ledger, repair what caches and tags can repair."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
from dataclasses import dataclass, field

from controlplane.core.ledger.ledger import Ledger
from controlplane.core.ledger.locks import clear_stale_locks
from controlplane.core.ledger.repair import TipRepair, repair_tip
from controlplane.core.runs import Run

log = logging.getLogger(__name__)


@dataclass
class DoctorReport:
    fsck_ok: bool = True
    fsck_output: str = ""
    runs: int = 0
    interrupted: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    tags_recreated: list[str] = field(default_factory=list)
    stale_locks: list[str] = field(default_factory=list)  # removed: their git process died
    unrecorded: list[str] = field(default_factory=list)  # runs of dead processes still unrecorded
    repair: TipRepair | None = None  # the tip missed objects (gc --prune=now) and was repaired

    @property
    def healthy(self) -> bool:
        return self.fsck_ok and not self.unreadable and not self.unrecorded

    def lines(self) -> list[str]:
        out = [f"stale git locks removed: {len(self.stale_locks)}"]
        out += [f"  {path}" for path in self.stale_locks]
        out.append(f"git fsck: {'ok' if self.fsck_ok else 'FAILED'}")
        if not self.fsck_ok:
            out += ["  " + line for line in self.fsck_output.splitlines()[:20]]
        if self.repair is not None:
            out += self.repair.lines()
        out.append(f"runs in the ledger: {self.runs} (index rebuilt)")
        out.append(f"interrupted runs recorded: {len(self.interrupted)}")
        out += [f"  {run_id}" for run_id in self.interrupted]
        out.append(f"runs of dead processes not recorded: {len(self.unrecorded)}")
        out += [f"  {run_id} (see the errors above; run doctor again)"
                for run_id in self.unrecorded]
        out.append(f"unreadable run files: {len(self.unreadable)}")
        out += [f"  {path}" for path in self.unreadable]
        out.append(f"run tags recreated: {len(self.tags_recreated)}")
        return out


def diagnose(ledger: Ledger) -> DoctorReport:
    """Run every check; the index and view are rebuilt from the ledger."""
    report = DoctorReport()
    report.stale_locks = clear_stale_locks(ledger.git_dir, ledger.root)  # before any write
    ledger.wait_background()  # a roll-up or gc deleting packs under fsck reads as damage
    _fsck(ledger, report)
    if not report.fsck_ok:  # a tip with pruned objects: back to a readable one, then re-record
        try:
            rows = ledger.index.rows()
        except (sqlite3.Error, ValueError) as exc:
            log.warning("the index could not be read for the repair: %s", exc)
            rows = []
        report.repair = repair_tip(ledger.store, ledger.view.root, rows, ledger.logs_dir)
        if report.repair is not None:
            ledger.rebuild_index()
            _fsck(ledger, report)
    report.interrupted = [r["run_id"] for r in ledger.interrupted + ledger.recover()]
    ledger.interrupted.clear()
    report.unrecorded = ledger.journal.stranded()
    head = ledger.store.head()
    for directory in ledger.store.walk_run_dirs(head):
        raw = ledger.store.read_blob(head, f"{directory}/run.json")
        try:
            run = Run.from_dict(json.loads(raw or b"null"))
        except ValueError:
            report.unreadable.append(f"{directory}/run.json")
            continue
        events = ledger.store.read_blob(head, f"{directory}/events.jsonl") or b""
        try:
            for line in events.splitlines():
                json.loads(line)
        except ValueError:
            report.unreadable.append(f"{directory}/events.jsonl")
        commit = (run.code_ref or {}).get("commit")
        if commit and commit in ledger.store.repo and ledger.store.tag_run(
                run.run_id, commit, f"{run.subtype} {run.status}"):
            report.tags_recreated.append(run.run_id)
    report.runs = ledger.rebuild_index()
    return report


def _fsck(ledger: Ledger, report: DoctorReport) -> None:
    fsck = subprocess.run(["git", "--git-dir", str(ledger.git_dir), "fsck", "--no-dangling"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    report.fsck_ok = fsck.returncode == 0
    report.fsck_output = (fsck.stdout + fsck.stderr).strip()
