"""The SQLite index of finished runs: a rebuildable cache, never the truth.

It remembers the ledger commit it reflects (``meta.head``). A writer that
just added one run on top of that commit inserts the run directly; anyone
else catches up from a diff of the trees. Safe for several processes (SQLite
WAL, one write transaction per change).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path

from controlplane.core import lazy
from controlplane.core.ledger import totals
from controlplane.core.ledger.index_read import SCHEMA_VERSION, recent_query
from controlplane.core.output import compact_json
from controlplane.core.runs import iso, utc_now

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")

log = lazy.Logger(__name__)
DAMAGE_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}


def _damaged(exc: BaseException) -> bool:
    """True if *exc* says the index file is damaged (not busy, not a full disk)."""
    if isinstance(exc, json.JSONDecodeError):
        return True  # a row's JSON, garbled on disk
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code is not None \
        and code & 0xFF in DAMAGE_CODES


def healing(method: Callable[..., T]) -> Callable[..., T]:
    """Decorate a RunIndex method: one caller at a time on the shared connection; a damaged
    index is replaced, refilled, and asked again."""
    @functools.wraps(method)
    def wrapper(self: RunIndex, *args: Any, **kwargs: Any) -> T:
        with self._lock:
            return self._healing(lambda: method(self, *args, **kwargs))()
    return wrapper


_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, type TEXT, subtype TEXT, status TEXT, summary TEXT,
    started_at TEXT, ended_at TEXT, duration_ms INTEGER, dir TEXT, json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_type ON runs (type, run_id);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, run_id);
CREATE INDEX IF NOT EXISTS runs_subtype ON runs (subtype, run_id);
CREATE TABLE IF NOT EXISTS chat (
    message_id TEXT PRIMARY KEY, dir TEXT, json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mentions (
    run_id TEXT, message_id TEXT, PRIMARY KEY (run_id, message_id)
);
"""


def _row(run: dict[str, Any], directory: str) -> tuple:
    return (run["run_id"], run.get("type"), run.get("subtype"), run.get("status"),
            run.get("summary") or "", run.get("started_at"), run.get("ended_at"),
            run.get("duration_ms"), directory, compact_json(run))


def _disk_full(directory: Path) -> bool:
    """No block left for us on the file system holding *directory*."""
    try:
        return os.statvfs(directory).f_bavail == 0
    except OSError:
        return False


def _like_literal(text: str) -> str:
    """*text* matched literally by ``LIKE … ESCAPE '\\'``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class RunIndex:
    """Queries over finished runs. Thread-safe: one connection per process, used by one
    thread at a time (a connection per thread held three descriptors per server thread)."""

    def __init__(self, path: Path, on_rebuilt: Callable[[], object] | None = None) -> None:
        self.path = path
        self.on_rebuilt = on_rebuilt  # refills the index from the ledger after a damaged one
        self._lock = threading.RLock()
        self._shared = _Shared()
        with self._lock:
            self._healing(lambda: self._db())()

    @property
    def lock(self) -> threading.RLock:
        """Held by every query; a caller holds it to make several one (``index_batches``)."""
        return self._lock

    def _db(self) -> _Tx:
        """The connection (caller holds the lock), reopened if the file was replaced."""
        db = self._shared.db
        if db is not None and not self._shared.in_memory:
            try:
                same = os.stat(self.path).st_ino == self._shared.inode
            except OSError:
                same = False
            if not same:
                db.close()
                db = None
        if db is None:
            self._shared.db = None
            db = self._connect()
        return _Tx(db)

    def _connect(self) -> sqlite3.Connection:
        try:
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        except OSError as exc:
            if exc.errno not in READ_ONLY_ERRNOS:
                raise
            return self._connect_in_memory(exc)
        for suffix in ("", "-wal", "-shm"):  # an older version made them world-readable
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{self.path}{suffix}", 0o600)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                             check_same_thread=False)
        try:
            self._shared.inode = os.stat(self.path).st_ino
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._prepare(db)
        except sqlite3.OperationalError:
            db.close()
            if not _disk_full(self.path.parent):
                raise
            # a full disk: SQLite cannot make its WAL or shared memory, so reads too fail
            return self._connect_in_memory(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        except BaseException:
            db.close()
            raise
        self._shared.db = db
        return db

    def _connect_in_memory(self, reason: OSError) -> sqlite3.Connection:
        """A read-only disk: a copy of the index in memory, caught up from the ledger there."""
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        try:
            if self.path.exists():
                source = sqlite3.connect(f"file:{self.path}?immutable=1", uri=True)
                try:
                    source.backup(db)
                except sqlite3.Error:
                    pass  # unreadable: the ledger refills the copy
                finally:
                    source.close()
            self._prepare(db)
        except BaseException:
            db.close()
            raise
        if not self._shared.in_memory:
            log.warning("the run index %s cannot be written (%s): reading from a copy in "
                        "memory", self.path, reason.strerror)
        self._shared.in_memory = True
        self._shared.db = db
        return db

    def _prepare(self, db: sqlite3.Connection) -> None:
        """Create the tables; empty them if they hold another schema version."""
        db.executescript(_DDL + totals.DDL)
        with _Tx(db) as tx:
            version = tx.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if version is None or version[0] != SCHEMA_VERSION:
                tx.execute("DELETE FROM runs")
                tx.execute("DELETE FROM chat")
                tx.execute("DELETE FROM mentions")
                tx.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)",
                           (SCHEMA_VERSION,))
                tx.execute("DELETE FROM meta WHERE key='head'")
                totals.reset(tx)


    def close(self) -> None:
        """Close the connection (the next use opens it again)."""
        with self._lock:
            if self._shared.db is not None:
                self._shared.db.close()
                self._shared.db = None

    def _healing(self, operation: Callable[[], T]) -> Callable[[], T]:
        """*operation*, run again on a fresh index if this one turns out to be damaged."""
        def run() -> T:
            try:
                return operation()
            except (sqlite3.DatabaseError, ValueError) as exc:
                if not _damaged(exc):
                    raise
                self._replace_damaged(self._shared.inode, exc)
            if self.on_rebuilt is not None and not self._shared.refilling:
                self._shared.refilling = True
                try:
                    self.on_rebuilt()
                finally:
                    self._shared.refilling = False
            return operation()
        return run

    def _replace_damaged(self, inode: int | None, exc: BaseException) -> None:
        """Move a damaged index aside (once, whichever process sees it first); say so."""
        db = self._shared.db
        if db is not None:
            db.close()
            self._shared.db = None
        with open(self.path.with_name(self.path.name + ".lock"), "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)  # one process replaces it; the others reopen
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                return
            if inode is not None and current != inode:
                return  # another process replaced it already
            aside = self.path.with_name(self.path.name + ".damaged")
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
        log.warning("the run index %s was damaged (%s): moved aside to %s and rebuilt from "
                    "the ledger", self.path, exc, aside.name)

    @healing
    def head(self) -> str | None:
        row = self._db().conn.execute("SELECT value FROM meta WHERE key='head'").fetchone()
        return row[0] if row else None

    @healing
    def apply(self, expected_head: str | None, new_head: str,
              upserts: Iterable[tuple[dict[str, Any], str]], removed: Iterable[str],
              messages: Iterable[tuple[dict[str, Any], str]] = ()) -> bool:
        """Move from *expected_head* to *new_head*; False (nothing done) if the head differs."""
        with self._db() as db:
            current = db.execute("SELECT value FROM meta WHERE key='head'").fetchone()
            if (current[0] if current else None) != expected_head:
                return False
            upserts = list(upserts)
            if len(upserts) > 1 and db.execute("SELECT 1 FROM runs LIMIT 1").fetchone() is None:
                rewritten = False  # an empty index filled (a rebuild): nothing replaced
            else:  # a run replaced: the totals are recomputed
                rewritten = any(db.execute("SELECT 1 FROM runs WHERE run_id = ?",
                                           (run["run_id"],)).fetchone() for run, _ in upserts)
            db.executemany("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)",
                           [_row(run, directory) for run, directory in upserts])
            gone = [(d,) for d in removed]
            if gone:
                rewritten |= db.executemany("DELETE FROM runs WHERE dir = ?", gone).rowcount > 0
                db.executemany("DELETE FROM mentions WHERE message_id IN "
                               "(SELECT message_id FROM chat WHERE dir = ?)", gone)
                db.executemany("DELETE FROM chat WHERE dir = ?", gone)
            for message, directory in messages:
                db.execute("INSERT OR REPLACE INTO chat VALUES (?,?,?)",
                           (message["message_id"], directory, json.dumps(message)))
                db.executemany("INSERT OR IGNORE INTO mentions VALUES (?,?)",
                               [(r, message["message_id"]) for r in message.get("mentions", [])
                                if isinstance(r, str)])
            totals.follow(db, expected_head, new_head,
                          [totals.row_of(run) for run, _ in upserts], rewritten)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('head', ?)", (new_head,))
            return True

    @healing
    def clear(self) -> None:
        with self._db() as db:
            db.execute("DELETE FROM runs")
            db.execute("DELETE FROM chat")
            db.execute("DELETE FROM mentions")
            db.execute("DELETE FROM meta WHERE key='head'")
            totals.reset(db)

    @healing
    def rows(self) -> list[tuple[str, str]]:
        """(directory, JSON) of every run and chat message held (for ``ledger doctor``)."""
        conn = self._db().conn
        return [*conn.execute("SELECT dir, json FROM runs"),
                *conn.execute("SELECT dir, json FROM chat")]

    @healing
    def count(self) -> int:
        return self._db().conn.execute("SELECT count(*) FROM runs").fetchone()[0]

    @healing
    def get(self, run_id: str) -> dict[str, Any] | None:
        row = self._db().conn.execute("SELECT json FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return json.loads(row[0]) if row else None

    @healing
    def recent(self, limit: int = 50, type: str | None = None, status: str | None = None,
               before: str | None = None, subtype: str | None = None) -> list[dict[str, Any]]:
        """Newest runs first, filtered; *before* is a run id cursor (exclusive)."""
        sql, args = recent_query(limit, type, status, before, subtype)
        return [json.loads(r[0]) for r in self._db().conn.execute(sql, args)]

    @healing
    def search(self, text: str, limit: int = 20) -> list[dict[str, Any]]:
        """Runs whose id starts with *text*, or whose type, subtype or summary contain it."""
        literal = _like_literal(text)
        rows = self._db().conn.execute(
            "SELECT json FROM runs WHERE run_id LIKE ? ESCAPE '\\' OR subtype LIKE ? ESCAPE '\\'"
            " OR summary LIKE ? ESCAPE '\\' ORDER BY run_id DESC LIMIT ?",
            (literal + "%", f"%{literal}%", f"%{literal}%", int(limit)),
        )
        return [json.loads(r[0]) for r in rows]

    @healing
    def ids_like(self, text: str, limit: int = 6) -> list[str]:
        """Run ids, newest first, that *text* names (``runs.names_run``, asked of the index:
        the start of the id or of its random tail, in either case)."""
        literal = _like_literal(text)
        rows = self._db().conn.execute(
            "SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' OR run_id LIKE ? ESCAPE '\\'"
            " ORDER BY run_id DESC LIMIT ?", (literal + "%", f"%-{literal}%", int(limit)))
        return [row[0] for row in rows]

    @healing
    def filtered(self, flt: Any, limit: int = 50,
                 before: str | None = None) -> list[dict[str, Any]]:
        """Newest runs first matching *flt* (a ``run_query.RunFilter``); *before* a cursor."""
        where, args = flt.where()
        if before:
            where += " AND run_id < ?"
            args.append(before)
        sql = f"SELECT json FROM runs WHERE {where} ORDER BY run_id DESC LIMIT ?"
        return [json.loads(r[0]) for r in self._db().conn.execute(sql, [*args, max(0, limit)])]

    @healing
    def filtered_metrics(self, flt: Any, minutes: int | None = None) -> dict[str, Any]:
        """``metrics`` over the runs matching *flt*, plus ``window_minutes``,
        ``last_finished_at`` and ``pipelines`` (per subtype, ``run_query.pipelines``)."""
        from controlplane.core.ledger.run_query import pipelines

        where, args = flt.where()
        if where == "1" and not minutes:
            fast = self._totals()
            if fast is not None:
                return fast
        order = ""  # a window reads the runs_started index, then sorts its few rows by id
        if minutes:
            where += " AND started_at >= ?"
            args.append(iso(utc_now() - timedelta(minutes=minutes)))
        else:
            order = " ORDER BY run_id"
        found = self._db().conn.execute(
            "SELECT run_id, type, subtype, status, duration_ms, started_at, ended_at FROM runs "
            f"WHERE {where}{order}", args).fetchall()
        rows = [r[1:] for r in (sorted(found) if minutes else found)]
        ended = [r[5] for r in rows if r[5]]
        return {**summarize([r[:5] for r in rows]), "window_minutes": minutes,
                "last_finished_at": max(ended) if ended else None,
                "pipelines": pipelines([(r[1], r[2], r[3], r[5]) for r in rows])}

    @healing
    def duration_trend(self, flt: Any, minutes: int | None = None) -> list[dict[str, Any]]:
        """Per day, the runs matching *flt* started then and their exact p50/p95 durations
        (``totals.duration_trend``), over the last *minutes* if given: one query over the
        ``runs_started`` index."""
        where, args = flt.where()
        if minutes:
            where += " AND started_at >= ?"
            args.append(iso(utc_now() - timedelta(minutes=minutes)))
        rows = self._db().conn.execute(
            f"SELECT substr(started_at, 1, 10), duration_ms FROM runs WHERE {where}", args)
        return totals.duration_trend(rows)

    @healing
    def distinct_values(self, limit: int = 200) -> dict[str, list[str]]:
        """The actors, branches and subtypes of the indexed runs (the filters' choices)."""
        conn = self._db().conn
        found = {}
        for name, expression in (("actor", "json_extract(json, '$.actor.name')"),
                                 ("branch", "json_extract(json, '$.code_ref.branch')"),
                                 ("subtype", "subtype")):
            found[name] = [r[0] for r in conn.execute(
                f"SELECT DISTINCT {expression} AS v FROM runs WHERE v IS NOT NULL AND v != '' "
                "ORDER BY v LIMIT ?", (limit,))]
        return found

    @healing
    def latest_of_action(self, path: str, subtype: str) -> dict[str, Any] | None:
        """The newest finished run an action (its route *path*, recording *subtype*) started."""
        row = self._db().conn.execute(
            "SELECT json FROM runs WHERE subtype = ? AND json_extract(json, '$.action') = ? "
            "ORDER BY run_id DESC LIMIT 1", (subtype, path)).fetchone()
        return json.loads(row[0]) if row else None

    @healing
    def message(self, message_id: str) -> dict[str, Any] | None:
        row = self._db().conn.execute("SELECT json FROM chat WHERE message_id=?",
                                      (message_id,)).fetchone()
        return json.loads(row[0]) if row else None

    @healing
    def messages(self, limit: int = 50, before: str | None = None,
                 mentioning: str | None = None) -> list[dict[str, Any]]:
        """Chat messages, newest first; only those mentioning a run if *mentioning*."""
        sql = "SELECT chat.json FROM chat"
        args: list[str | int] = []
        where = []
        if mentioning:
            sql += " JOIN mentions ON mentions.message_id = chat.message_id"
            where.append("mentions.run_id = ?")
            args.append(mentioning)
        if before:
            where.append("chat.message_id < ?")
            args.append(before)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY chat.message_id DESC LIMIT ?"
        args.append(max(0, int(limit)))
        return [json.loads(r[0]) for r in self._db().conn.execute(sql, args)]

    def _totals(self) -> dict[str, Any] | None:
        """Every run's metrics from the running totals; None when they are stale."""
        conn = self._db().conn
        conn.execute("BEGIN")  # one snapshot: head, totals and the durations' index
        try:
            head = conn.execute("SELECT value FROM meta WHERE key='head'").fetchone()
            if not totals.valid_at(conn, head[0] if head else None):
                return None
            return totals.summary(conn)
        finally:
            conn.execute("COMMIT")

    @healing
    def metrics(self, minutes: int | None = None) -> dict[str, Any]:
        """Totals, success rate, durations and breakdowns, over the last *minutes* if given."""
        if not minutes:
            fast = self._totals()
            if fast is not None:
                return {k: v for k, v in fast.items()
                        if k not in ("window_minutes", "last_finished_at", "pipelines")}
        sql = "SELECT type, subtype, status, duration_ms, started_at FROM runs"
        args: list[Any] = []
        if minutes:
            sql += " WHERE started_at >= ?"
            args.append(iso(utc_now() - timedelta(minutes=minutes)))
        sql += " ORDER BY run_id"
        rows = self._db().conn.execute(sql, args).fetchall()
        return summarize(rows)


def summarize(rows: list[tuple]) -> dict[str, Any]:
    """Metrics from (type, subtype, status, duration_ms, started_at) rows, oldest first."""
    durations = sorted(r[3] for r in rows if isinstance(r[3], int))
    ok = sum(1 for r in rows if r[2] == "ok")
    failed = sum(1 for r in rows if r[2] == "failed")
    by_type: dict[str, dict[str, int]] = {}
    by_subtype: dict[str, dict[str, int]] = {}
    by_day: dict[str, dict[str, int]] = {}
    for run_type, subtype, status, _, started in rows:
        day = (started or "")[:10]
        for table, key in ((by_type, run_type), (by_subtype, subtype), (by_day, day)):
            bucket = table.setdefault(key, {"total": 0, "ok": 0, "failed": 0})
            bucket["total"] += 1
            if status in ("ok", "failed"):
                bucket[status] += 1
    p95 = durations[min(len(durations) - 1, int(0.95 * len(durations)))] if durations else None
    return {
        "total": len(rows), "ok": ok, "failed": failed,
        "success_rate": round(ok / len(rows), 4) if rows else None,
        "avg_duration_ms": round(sum(durations) / len(durations)) if durations else None,
        "p95_duration_ms": p95,
        "last_status": rows[-1][2] if rows else None,
        "per_type": by_type, "per_subtype": by_subtype, "per_day": by_day,
    }


class _Shared:
    """The connection's state: the connection, the inode it opened, a refill under way."""

    def __init__(self) -> None:
        self.db: sqlite3.Connection | None = None
        self.inode: int | None = None
        self.refilling = False
        self.in_memory = False  # the disk is read-only: a copy in memory


class _Tx:
    """A connection used as ``with`` for one IMMEDIATE write transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, *_: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
