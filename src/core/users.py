"""People's tokens: one per user, so the runs they start record who they are.

The users file (default ``<git dir>/scp/users.json``, mode 0600) maps a user
name to the SHA-256 of their token; the token itself is shown once, when it is
created, and stored nowhere. The server checks the file on every request (see
``Users.entries``), so adding or removing a user needs no restart and a removed
user's token is refused from the next request on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

USERS_FILE = "users.json"
SETTLED_NS = 1_000_000_000  # a file unchanged this long has a trustworthy stat
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\Z")


class UsersError(ValueError):
    """A user name that cannot be used, or a users file that cannot be read."""


def token_digest(token: str) -> str:
    """The SHA-256 hex digest a token is stored and compared as."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def check_name(name: str) -> str:
    """*name* if it is a valid user name (letters, digits, ``._@-``; up to 64), else UsersError."""
    if not isinstance(name, str) or not USER_NAME.match(name):
        raise UsersError(f"user name {name!r}: use letters, digits and . _ @ - (at most 64)")
    return name


class Users:
    """The users file of one project: add, remove, list, and match a presented token."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cache: tuple[bytes | None, dict[str, dict[str, Any]]] = (None, {})
        self._settled: tuple[int, int, int, int] | None = None  # stat of a file read long after

    # -- reading -------------------------------------------------------------

    def entries(self) -> dict[str, dict[str, Any]]:
        """``name -> {"token_sha256", "created"}``, read again when the file may have changed.

        mtime and size alone are not trusted ("racy git"): ``users remove bob; users add
        bob`` within one tick of a coarse file clock keeps both, and the old token would
        live on. So the file is stat-cached only once it was read more than a second
        after its last change; until then it is read each time, and parsed when its
        bytes change.
        """
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            found = None
        except OSError as exc:
            raise UsersError(f"{self.path}: cannot read the users file: {exc}") from None
        stamp = None if found is None else (
            found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)
        with self._lock:
            if stamp is not None and stamp == self._settled:
                return self._cache[1]
        try:
            raw: bytes | None = self.path.read_bytes() if found else None
        except FileNotFoundError:
            raw = None
        except OSError as exc:
            raise UsersError(f"{self.path}: cannot read the users file: {exc}") from None
        with self._lock:
            if raw != self._cache[0]:
                self._cache = (raw, self._parse(raw) if raw is not None else {})
            changed = max(found.st_mtime_ns, found.st_ctime_ns) if found else 0
            self._settled = stamp if time.time_ns() - changed > SETTLED_NS else None
            return self._cache[1]

    def _parse(self, raw: bytes) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsersError(f"{self.path}: cannot read the users file: {exc}") from None
        users = data.get("users") if isinstance(data, dict) else None
        if not isinstance(users, dict):
            raise UsersError(f"{self.path}: expected {{\"users\": {{name: …}}}}")
        return {name: entry for name, entry in users.items()
                if isinstance(entry, dict) and isinstance(entry.get("token_sha256"), str)}

    def names(self) -> list[str]:
        return sorted(self.entries())

    def user_for(self, token: str) -> str | None:
        """The user whose token this is, or None. Compares digests in constant time."""
        if not token:
            return None
        digest = token_digest(token)
        found = None
        for name, entry in self.entries().items():
            if hmac.compare_digest(digest, entry["token_sha256"]):
                found = name
        return found

    # -- writing -------------------------------------------------------------

    def add(self, name: str) -> str:
        """Create *name* with a fresh token and return the token (shown once, stored hashed)."""
        check_name(name)
        users = dict(self.entries())
        if name in users:
            raise UsersError(f"user {name!r} exists: remove it first to give a new token")
        token = secrets.token_urlsafe(32)
        users[name] = {"token_sha256": token_digest(token),
                       "created": datetime.now(UTC).isoformat(timespec="seconds")}
        self._write(users)
        return token

    def remove(self, name: str) -> None:
        """Forget *name*; their token is refused from the next request on."""
        users = dict(self.entries())
        if users.pop(name, None) is None:
            raise UsersError(f"no user {name!r}")
        self._write(users)

    def _write(self, users: dict[str, dict[str, Any]]) -> None:
        """Replace the file atomically, mode 0600."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        spare = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                text = json.dumps({"users": users}, indent=2, sort_keys=True) + "\n"
                os.write(fd, text.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(spare, self.path)
        except BaseException:  # a full disk: no spare file stays behind
            spare.unlink(missing_ok=True)
            raise


def users_for(scp_dir: str | os.PathLike[str], settings: dict[str, Any]) -> Users:
    """The project's users: the ``users_file`` setting, else ``<git dir>/scp/users.json``."""
    return Users(settings.get("users_file") or Path(scp_dir) / USERS_FILE)
