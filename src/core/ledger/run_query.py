"""The runs list's filters (text search, actor, branch, subtype, dates) and per-pipeline metrics.

One ``RunFilter`` answers both ways: as SQL over the index's finished runs
(``RunIndex.filtered``) and as a predicate over the in-flight runs of the journal,
so a live row and a listed row follow the same rules.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from datetime import date, timedelta
from typing import Any

from controlplane.core.errors import InvalidInput

DAY = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
MAX_TEXT = 100
TEXT_COLUMNS = ("run_id", "summary", "json_extract(json, '$.actor.name')",
                "json_extract(json, '$.code_ref.branch')", "json_extract(json, '$.params')")


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


@dataclass(frozen=True)
class RunFilter:
    """What the runs list shows: every field empty means every run.

    ``text`` is a case-insensitive substring of the id, summary, actor, branch or
    params; ``since``/``until`` are days (``YYYY-MM-DD``, UTC, both included) of the start.
    """

    text: str = ""
    type: str = ""
    status: str = ""
    subtype: str = ""
    actor: str = ""
    branch: str = ""
    since: str = ""
    until: str = ""

    @classmethod
    def of(cls, values: dict[str, str], strict: bool = True) -> RunFilter:
        """From query parameters (``q`` is the text); a bad day raises InvalidInput naming it,
        or is dropped when not *strict* (a page ignores what it cannot use)."""
        found = {f.name: str(values.get("q" if f.name == "text" else f.name) or "").strip()
                 for f in fields(cls)}
        found["text"] = found["text"][:MAX_TEXT]
        for name in ("since", "until"):
            if found[name] and not _valid_day(found[name]):
                if strict:
                    raise InvalidInput({name: "must be a day as YYYY-MM-DD"})
                found[name] = ""
        return cls(**found)

    def query(self) -> dict[str, str]:
        """The non-empty fields as query parameters (``q`` for the text)."""
        return {("q" if k == "text" else k): v for k, v in asdict(self).items() if v}

    def where(self) -> tuple[str, list[Any]]:
        """An SQL condition over the index's ``runs`` table (``1`` when nothing is filtered)."""
        parts: list[str] = []
        args: list[Any] = []
        for column in ("type", "status", "subtype"):
            if getattr(self, column):
                parts.append(f"{column} = ?")
                args.append(getattr(self, column))
        if self.actor:
            parts.append("json_extract(json, '$.actor.name') = ?")
            args.append(self.actor)
        if self.branch:
            parts.append("json_extract(json, '$.code_ref.branch') = ?")
            args.append(self.branch)
        if self.since:
            parts.append("started_at >= ?")
            args.append(self.since)
        if self.until:
            parts.append("started_at < ?")
            args.append(_next_day(self.until))
        if self.text:
            parts.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in TEXT_COLUMNS) + ")")
            args += [_like(self.text)] * len(TEXT_COLUMNS)
        return (" AND ".join(parts) or "1"), args

    def matches(self, run: dict[str, Any]) -> bool:
        """The same rules over one run's dict (an in-flight run from the journal)."""
        actor = (run.get("actor") or {}).get("name") or ""
        branch = (run.get("code_ref") or {}).get("branch") or ""
        started = str(run.get("started_at") or run.get("queued_at") or "")
        if any(getattr(self, k) and run.get(k) != getattr(self, k)
               for k in ("type", "status", "subtype")):
            return False
        if (self.actor and actor != self.actor) or (self.branch and branch != self.branch):
            return False
        if self.since and started < self.since:
            return False
        if self.until and started >= _next_day(self.until):
            return False
        if not self.text:
            return True
        params = json.dumps(run.get("params") or {}, ensure_ascii=False, separators=(",", ":"))
        haystack = "\n".join([run.get("run_id") or "", run.get("summary") or "", actor, branch,
                              params]).lower()
        return self.text.lower() in haystack


def _valid_day(text: str) -> bool:
    if not DAY.match(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def pipelines(rows: list[tuple]) -> list[dict[str, Any]]:
    """Per subtype (a pipeline): totals, success rate, average duration, last status and end,
    from (subtype, status, duration_ms, ended_at) rows oldest first; most runs first."""
    table: dict[str, dict[str, Any]] = {}
    for subtype, status, duration, ended in rows:
        entry = table.setdefault(subtype or "", {
            "subtype": subtype or "", "total": 0, "ok": 0, "failed": 0, "durations": [],
            "last_status": None, "last_finished_at": None})
        entry["total"] += 1
        if status in ("ok", "failed"):
            entry[status] += 1
        if isinstance(duration, int):
            entry["durations"].append(duration)
        entry["last_status"] = status
        if ended and (entry["last_finished_at"] or "") < ended:
            entry["last_finished_at"] = ended
    out = []
    for entry in table.values():
        durations = entry.pop("durations")
        finished = entry["ok"] + entry["failed"]
        entry["success_rate"] = round(entry["ok"] / finished, 4) if finished else None
        entry["avg_duration_ms"] = round(sum(durations) / len(durations)) if durations else None
        out.append(entry)
    return sorted(out, key=lambda e: (-e["total"], e["subtype"]))


def find_runs(ledger: Any, flt: RunFilter, limit: int,
              before: str | None = None) -> list[dict[str, Any]]:
    """Newest first: the index's finished runs matching *flt*, in-flight runs merged in."""
    ledger.catch_up()
    runs = ledger.index.filtered(flt, limit=limit, before=before)
    listed = {r["run_id"] for r in runs}  # a run just finished: the index's copy wins
    active = [r for r in ledger.active() if r["run_id"] not in listed
              and flt.matches(r) and (not before or r["run_id"] < before)]
    if active:
        runs = sorted(runs + active, key=lambda r: r["run_id"], reverse=True)[:limit]
    return runs
