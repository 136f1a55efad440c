"""Browser logins, stored one file per login under ``<git dir>/scp/logins/`` (mode 0600).

A login file is named after the SHA-256 of its session id (the cookie's value
is on no disk) and holds the login's CSRF token, its user (None: the server's
token) and the SHA-256 of the token it was made from, so the web layer can end
it once that token is removed or replaced. Files survive a restart and are
shared by every server process of the repository. Each file is written to a
spare name and renamed into place (atomic); an unreadable file counts as no
login. A file is written once and never changed, so a login read before is
only checked to still exist (another process may have ended it). At most
``limit`` logins are kept per token: the oldest of that token are dropped,
never another token's. Without a directory (unit tests) logins
live in memory. Thread- and process-safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOGINS_DIR = "logins"
MAX_LOGINS_PER_TOKEN = 50  # a token holder's oldest logins are dropped beyond this
MAX_REMEMBERED = 10_000  # login files kept parsed in memory (then forgotten and read again)
LOGIN_FILE = re.compile(r"[0-9a-f]{64}\.json")


@dataclass(frozen=True)
class Session:
    """One browser login: the cookie's value and the CSRF token that goes with it."""

    session_id: str
    csrf: str
    user: str | None = None  # who logged in with their own token (None: the server's token)
    token_sha256: str | None = None  # the token it was made from
    created_ns: int = 0


def login_key(session_id: str) -> str:
    """The name a login is stored under: the SHA-256 of its session id."""
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


class Sessions:
    """The login sessions of one repository (or of memory when *directory* is None)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None,
                 limit: int = MAX_LOGINS_PER_TOKEN) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.limit = limit
        self._memory: dict[str, dict[str, Any]] = {}
        self._read_before: dict[str, dict[str, Any]] = {}  # login files read, by key
        self._lock = threading.Lock()
        self._last_ns = 0

    # -- the public surface --------------------------------------------------

    def create(self, user: str | None = None, token_sha256: str | None = None, *,
               still_valid: Callable[[dict[str, Any]], bool] | None = None) -> Session:
        """A new login for *token_sha256*; drops that token's oldest beyond the limit.

        *still_valid(record)* (if given) also drops every login whose token is gone.
        """
        session = Session(session_id=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32),
                          user=user, token_sha256=token_sha256, created_ns=self._now())
        self._store(login_key(session.session_id),
                    {"csrf": session.csrf, "user": user, "token_sha256": token_sha256,
                     "created_ns": session.created_ns})
        self._prune(token_sha256, still_valid)
        return session

    def get(self, session_id: str) -> Session | None:
        """The login whose cookie holds *session_id*, or None."""
        record = self._load(login_key(session_id))
        if record is None:
            return None
        return Session(session_id=session_id, csrf=record["csrf"], user=record.get("user"),
                       token_sha256=record.get("token_sha256"),
                       created_ns=record.get("created_ns", 0))

    def end(self, session_id: str) -> bool:
        """Forget a login; a cookie holding its id is refused from now on."""
        return self._delete(login_key(session_id))

    def __len__(self) -> int:
        return sum(1 for _ in self._records())

    # -- pruning -------------------------------------------------------------

    def _now(self) -> int:
        """Nanoseconds since the epoch, strictly increasing within this process."""
        with self._lock:
            self._last_ns = max(time.time_ns(), self._last_ns + 1)
            return self._last_ns

    def _prune(self, token_sha256: str | None,
               still_valid: Callable[[dict[str, Any]], bool] | None) -> None:
        same_token = []
        for key, record in self._records():
            if still_valid is not None and not still_valid(record):
                self._delete(key)
            elif record.get("token_sha256") == token_sha256:
                same_token.append((record.get("created_ns", 0), key))
        same_token.sort()
        for _, key in same_token[: max(0, len(same_token) - self.limit)]:
            self._delete(key)

    # -- storage -------------------------------------------------------------

    def _store(self, key: str, record: dict[str, Any]) -> None:
        if self.directory is None:
            with self._lock:
                self._memory[key] = record
            return
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.directory.stat().st_mode & 0o077:
            self.directory.chmod(0o700)
        spare = self.directory / f".{key}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                os.write(fd, json.dumps(record).encode())
            finally:
                os.close(fd)
            os.replace(spare, self.directory / f"{key}.json")
        except BaseException:  # a full disk: no spare file stays behind
            spare.unlink(missing_ok=True)
            raise

    def _load(self, key: str) -> dict[str, Any] | None:
        if self.directory is None:
            with self._lock:
                return self._memory.get(key)
        path = os.path.join(self.directory, f"{key}.json")
        with self._lock:
            known = self._read_before.get(key)
        if known is not None:  # a login file is written once, never changed: is it still there?
            if os.path.exists(path):
                return known
            with self._lock:
                self._read_before.pop(key, None)
            return None
        record = _read_record(Path(path))
        if record is not None:
            with self._lock:
                if len(self._read_before) >= MAX_REMEMBERED:
                    self._read_before.clear()
                self._read_before[key] = record
        return record

    def _delete(self, key: str) -> bool:
        with self._lock:
            self._read_before.pop(key, None)
            if self.directory is None:
                return self._memory.pop(key, None) is not None
        try:
            (self.directory / f"{key}.json").unlink()
        except FileNotFoundError:
            return False
        return True

    def _records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        if self.directory is None:
            with self._lock:
                yield from list(self._memory.items())
            return
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return
        for name in names:
            if LOGIN_FILE.fullmatch(name):
                record = _read_record(self.directory / name)
                if record is not None:
                    yield name[: -len(".json")], record


def _read_record(path: Path) -> dict[str, Any] | None:
    """A login file's record, or None if it is missing or unreadable (a crash mid-write)."""
    try:
        record = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("csrf"), str):
        return None
    return record
