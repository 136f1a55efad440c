"""Running totals in the run index: the unfiltered metrics without reading every run.

One row per (kind, key): ``all``, each ``type``, ``subtype`` (a pipeline) and ``day`` of
the start. Rows are folded in as runs are applied, in the same transaction; a removed or
replaced run (a branch moved back, a repair) makes them be recomputed from the runs table.
``meta.totals`` names the head they reflect: a writer that does not keep them (an older
version) leaves them stale, and readers then scan as before. The p95 duration is exact: read
from the top of an index on ``duration_ms``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    from typing import Any

VERSION = "1"
DDL = """
CREATE TABLE IF NOT EXISTS totals (
    kind TEXT, key TEXT, total INTEGER, ok INTEGER, failed INTEGER, dur_n INTEGER,
    dur_sum INTEGER, last_run TEXT, last_status TEXT, last_ended TEXT,
    PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS runs_duration ON runs (duration_ms);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at, duration_ms);
"""
ROW_SQL = "SELECT run_id, type, subtype, status, duration_ms, started_at, ended_at FROM runs"
_COLUMNS = "total, ok, failed, dur_n, dur_sum, last_run, last_status, last_ended"


def row_of(run: dict[str, Any]) -> tuple:
    """The totals' view of a run: (run_id, type, subtype, status, duration, started, ended)."""
    return (run["run_id"], run.get("type"), run.get("subtype"), run.get("status"),
            run.get("duration_ms"), run.get("started_at"), run.get("ended_at"))


def marker(head: str | None) -> str:
    return f"{VERSION}:{head or ''}"


def valid_at(db: sqlite3.Connection, head: str | None) -> bool:
    """True if the totals reflect the index at *head*."""
    row = db.execute("SELECT value FROM meta WHERE key='totals'").fetchone()
    return row is not None and row[0] == marker(head)


def reset(db: sqlite3.Connection) -> None:
    """Empty totals for an empty index (inside the caller's transaction)."""
    db.execute("DELETE FROM totals")
    db.execute("INSERT OR REPLACE INTO meta VALUES ('totals', ?)", (marker(None),))


def follow(db: sqlite3.Connection, old_head: str | None, new_head: str, added: list[tuple],
           rewritten: bool) -> None:
    """Bring the totals from *old_head* to *new_head* (inside the apply's transaction)."""
    if rewritten or not valid_at(db, old_head):
        db.execute("DELETE FROM totals")
        added = db.execute(ROW_SQL).fetchall()
    _add(db, added)
    db.execute("INSERT OR REPLACE INTO meta VALUES ('totals', ?)", (marker(new_head),))


def _fold(acc: dict[tuple[str, str], list[Any]], rows: Iterable[tuple]) -> None:
    for run_id, run_type, subtype, status, duration, started, ended in rows:
        timed = isinstance(duration, int)
        figures = [1, int(status == "ok"), int(status == "failed"), int(timed),
                   duration if timed else 0, run_id, status if run_id is not None else None,
                   ended or None]  # as merged into an empty entry
        for key in (("all", ""), ("type", run_type or ""), ("subtype", subtype or ""),
                    ("day", (started or "")[:10])):
            entry = acc.get(key)
            if entry is None:
                acc[key] = figures.copy()
            else:
                _merge(entry, figures)


def _merge(entry: list[Any], other: list[Any] | tuple) -> None:
    for i in range(5):
        entry[i] += other[i]
    if other[5] is not None and (entry[5] is None or other[5] > entry[5]):
        entry[5], entry[6] = other[5], other[6]
    if other[7] and (entry[7] is None or other[7] > entry[7]):
        entry[7] = other[7]


_UPSERT = (  # _merge in SQL: counts added, the latest run and end kept (SET reads the old row)
    f"INSERT INTO totals (kind, key, {_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT (kind, key) DO UPDATE SET total = total + excluded.total, "
    "ok = ok + excluded.ok, failed = failed + excluded.failed, "
    "dur_n = dur_n + excluded.dur_n, dur_sum = dur_sum + excluded.dur_sum, "
    "last_run = iif(_old_run, last_run, excluded.last_run), "
    "last_status = iif(_old_run, last_status, excluded.last_status), "
    "last_ended = iif(last_ended IS NOT NULL AND last_ended != '' AND "
    "(excluded.last_ended IS NULL OR last_ended > excluded.last_ended), "
    "last_ended, excluded.last_ended)"
).replace("_old_run", "last_run IS NOT NULL AND "
          "(excluded.last_run IS NULL OR last_run > excluded.last_run)")


def _add(db: sqlite3.Connection, rows: Iterable[tuple]) -> None:
    acc: dict[tuple[str, str], list[Any]] = {}
    _fold(acc, rows)
    if acc:
        db.executemany(_UPSERT, [(kind, key, *entry) for (kind, key), entry in acc.items()])


def _figures(total: int, ok: int, failed: int, dur_n: int, dur_sum: int) -> dict[str, Any]:
    return {"total": total, "ok": ok, "failed": failed,
            "avg_duration_ms": round(dur_sum / dur_n) if dur_n else None}


def summary(db: sqlite3.Connection) -> dict[str, Any]:
    """What ``index.summarize`` and ``run_query.pipelines`` give over every run."""
    per: dict[str, dict[str, Any]] = {"type": {}, "subtype": {}, "day": {}}
    whole: tuple | None = None
    pipelines = []
    for kind, key, *entry in db.execute(f"SELECT kind, key, {_COLUMNS} FROM totals"):
        total, ok, failed, dur_n, dur_sum, _, last_status, last_ended = entry
        if kind == "all":
            whole = tuple(entry)
            continue
        per[kind][key] = {"total": total, "ok": ok, "failed": failed}
        if kind == "subtype":
            finished = ok + failed
            pipelines.append({**_figures(total, ok, failed, dur_n, dur_sum), "subtype": key,
                              "last_status": last_status, "last_finished_at": last_ended,
                              "success_rate": round(ok / finished, 4) if finished else None})
    total, ok, failed, dur_n, dur_sum, _, last_status, last_ended = \
        whole or (0, 0, 0, 0, 0, None, None, None)
    return {**_figures(total, ok, failed, dur_n, dur_sum),
            "success_rate": round(ok / total, 4) if total else None,
            "p95_duration_ms": _p95(db, dur_n), "last_status": last_status,
            "per_type": per["type"], "per_subtype": per["subtype"], "per_day": per["day"],
            "window_minutes": None, "last_finished_at": last_ended,
            "pipelines": sorted(pipelines, key=lambda e: (-e["total"], e["subtype"]))}


def _p95(db: sqlite3.Connection, timed: int) -> int | None:
    """The duration at rank int(0.95 n) of the n timed runs, read from the top of the index."""
    if not timed:
        return None
    rank = min(timed - 1, int(0.95 * timed))
    row = db.execute("SELECT duration_ms FROM runs WHERE duration_ms IS NOT NULL "
                     "ORDER BY duration_ms DESC LIMIT 1 OFFSET ?", (timed - 1 - rank,)).fetchone()
    return row[0] if row else None


def nearest_rank(ordered: list[int], percent: int) -> int:
    """The *percent* percentile of *ordered* (ascending, not empty) by nearest rank: the value
    at rank ceil(percent / 100 * n), counting from 1."""
    rank = -(-percent * len(ordered) // 100)
    return ordered[max(1, rank) - 1]


def duration_trend(rows: Iterable[tuple]) -> list[dict[str, Any]]:
    """Per day of the start (oldest first): the runs started that day and the exact p50 and p95
    of the durations (nearest rank, seconds) of those that have one, from (day, ms) rows."""
    days: dict[str, tuple[list[int], list[int]]] = {}
    for day, duration in rows:
        if not day:
            continue
        count, timed = days.setdefault(day, ([0], []))
        count[0] += 1
        if isinstance(duration, int):
            timed.append(duration)
    trend = []
    for day in sorted(days):
        count, timed = days[day]
        timed.sort()
        trend.append({"day": day, "runs": count[0],
                      "p50_s": nearest_rank(timed, 50) / 1000 if timed else None,
                      "p95_s": nearest_rank(timed, 95) / 1000 if timed else None})
    return trend
