"""CI runs waiting for their completion: ``.git/scp/ingest/`` (see :mod:`.ingest`).

``<sha256 of key>.json`` holds a pending run with its key; ``done/<sha256 of key>`` the
id of the run a key was recorded as. Light on purpose: the ledger lists pending runs.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from controlplane.core.lazy import Lazy
from controlplane.core.ledger.journal import write_atomic
from controlplane.core.runs import Run, is_run_id

TYPE_CHECKING = False  # typing costs `runs list` ~3 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    import hashlib
    from typing import Any
else:
    hashlib = Lazy(globals(), "hashlib")  # listing runs reads this directory, hashes nothing

INGEST_DIR = "ingest"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class IngestStore:
    """``.git/scp/ingest/``: pending runs (``<digest>.json``) and done keys (``done/``)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    @classmethod
    def of(cls, scp_dir: Path) -> IngestStore:
        """The store of the clone whose ``.git/scp`` is *scp_dir*."""
        return cls(scp_dir / INGEST_DIR)

    @contextmanager
    def locked(self) -> Iterator[IngestStore]:
        """The store, held against every other ingest in any process of this clone."""
        (self.dir / "done").mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            yield self

    def pending(self, key: str) -> Run | None:
        try:
            data = json.loads((self.dir / f"{digest(key)}.json").read_bytes())
            return Run.from_dict(data["run"]) if data.get("key") == key else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def hold(self, key: str, run: Run) -> None:
        body = json.dumps({"key": key, "run": run.to_dict()}, ensure_ascii=False).encode()
        write_atomic(self.dir / f"{digest(key)}.json", body)

    def drop_pending(self, key: str) -> None:
        (self.dir / f"{digest(key)}.json").unlink(missing_ok=True)

    def done(self, key: str) -> str | None:
        try:
            run_id = (self.dir / "done" / digest(key)).read_text().strip()
        except OSError:
            return None
        return run_id if is_run_id(run_id) else None

    def mark_done(self, key: str, run_id: str) -> None:
        write_atomic(self.dir / "done" / digest(key), run_id.encode())

    def runs(self) -> list[dict[str, Any]]:
        """Every pending run (for listings), oldest first."""
        found = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                found.append(Run.from_dict(json.loads(path.read_bytes())["run"]).to_dict())
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return sorted(found, key=lambda run: run["run_id"])


def pending_runs(scp_dir: Path) -> list[dict[str, Any]]:
    """The CI runs waiting for their completion in the clone whose ``.git/scp`` is *scp_dir*."""
    store = IngestStore.of(scp_dir)
    return store.runs() if store.dir.is_dir() else []
