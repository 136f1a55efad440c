"""The journal of in-flight runs: local to this clone, never synced.

Under ``.git/scp/journal/`` each running run has ``<run_id>.json`` (the run as
it started, host, pid, process start time, the process groups it spawned)
and ``<run_id>.events.jsonl`` (its events, appended as they happen). Other
processes read them to show the run live; the next process to open the
ledger finds runs whose process died and records them ``interrupted``, one at a
time: kill the groups it left, claim the entry (an ``flock`` the kernel drops if the
recoverer dies too), record it, remove it. Every step may be repeated by the next
recoverer, so a crash during recovery loses nothing.

Any process may cancel a live run of another (``cancel_in_flight``): it writes
``<run_id>.cancel`` (who asked, when), which the owner's ``run.cancel_requested``
reflects (its tool runner then stops the tool and the run is recorded ``cancelled``),
and signals the run's recorded process groups itself, SIGTERM then SIGKILL after a
grace period, in case the owner does not look. A run with no group gets the request
alone: code inside it checks ``run.cancel_requested.is_set()``.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import signal
import threading
import time
from contextlib import suppress
from pathlib import Path

from controlplane.core.ledger import disk_errors
from controlplane.core.ledger.store import LedgerWriteError
from controlplane.core.output import event_seq
from controlplane.core.plain_data import field, plain_data
from controlplane.core.runs import default_host, iso, process_alive, process_start_time, utc_now

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    from typing import Any

CANCEL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL, as the tool runner's grace period
_POLL = 0.05  # how often a signalled group is checked for members left


def write_atomic(path: Path, data: bytes) -> None:
    """Write *data* to *path* via a temporary file and a rename; on failure, no file is left."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


class JournalWriteError(LedgerWriteError):
    """A run could not be journaled (read-only ``.git``, disk full): it did not start."""


@plain_data
class JournalEntry:
    """What the journal knows of one in-flight run."""

    run: dict[str, Any]
    host: str
    pid: int
    pid_start: float | None
    groups: dict[str, float | None] = field(default_factory=dict)  # pgid -> leader start time

    def to_json(self) -> bytes:
        return json.dumps(
            {"run": self.run, "host": self.host, "pid": self.pid, "pid_start": self.pid_start,
             "groups": self.groups}, ensure_ascii=False
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> JournalEntry:
        data = json.loads(raw)
        return cls(run=data["run"], host=data["host"], pid=int(data["pid"]),
                   pid_start=data.get("pid_start"), groups=data.get("groups") or {})

    @property
    def alive(self) -> bool:
        return self.host == default_host() and process_alive(self.pid, self.pid_start)


def _moved(source: str, target: str | Path) -> bool:
    """Move *source* to *target*, its directory made if missing; False if *source* is gone."""
    try:
        os.replace(source, target)
    except FileNotFoundError:
        if not os.path.exists(source):
            return False
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(source, target)
    return True


class Journal:
    """The directory of in-flight runs. Safe for several processes."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._text = os.fspath(directory)  # a run's own files, joined as text (no Path each)
        self._writers: dict[str, tuple[str, int, float | None]] = {}  # entry -> host, pid, start
        self._spare_kept = False
        self._spare_lock = threading.Lock()

    def _file(self, run_id: str, suffix: str) -> str:
        return f"{self._text}/{run_id}{suffix}"

    def spool_of(self, run_id: str) -> str:
        """``events_path`` as text: a run opens its spool at its start."""
        return self._file(run_id, ".events.jsonl")

    def meta_path(self, run_id: str) -> Path:
        return self.dir / f"{run_id}.json"

    def events_path(self, run_id: str) -> Path:
        return self.dir / f"{run_id}.events.jsonl"

    def cancel_path(self, run_id: str) -> Path:
        return self.dir / f"{run_id}.cancel"

    def cancel_flag(self, run_id: str) -> CancelFlag:
        """The event a run's code checks: set here, or by a cancel request of any process."""
        return CancelFlag(self.cancel_path(run_id))

    def entry(self, run_id: str) -> JournalEntry | None:
        """The readable entry of *run_id*, if it is in flight."""
        try:
            return JournalEntry.from_json(self.meta_path(run_id).read_bytes())
        except (OSError, ValueError, KeyError):
            return None

    def cancel_in_flight(self, run_id: str, by: dict[str, Any] | None = None,
                         grace: float = CANCEL_GRACE) -> str | None:
        """Cancel a live run of any process of this host; None if there is none to cancel.

        Returns ``"cancelling"`` when its process groups were signalled (SIGTERM now,
        SIGKILL after *grace* seconds for what is left, in a background thread) or
        ``"requested"`` when it has none (the request alone: its code may honour it).
        """
        entry = self.entry(run_id)
        if entry is None or not entry.alive:
            return None
        request = {"requested_at": iso(utc_now()), "by": by or {}}
        write_atomic(self.cancel_path(run_id), json.dumps(request).encode())
        if self.entry(run_id) is None:  # it ended meanwhile: drop our request again
            self.cancel_path(run_id).unlink(missing_ok=True)
            return None
        if not entry.groups:
            return "requested"
        threading.Thread(target=stop_groups, args=(dict(entry.groups), grace), daemon=True,
                         name=f"scp-cancel-{run_id}").start()
        return "cancelling"

    def start(self, run: dict[str, Any]) -> JournalEntry:
        """Journal a run that this process starts now."""
        entry, spool = self.start_spooled(run)
        os.close(spool)
        return entry

    def start_spooled(self, run: dict[str, Any]) -> tuple[JournalEntry, int]:
        """``start``, with the run's event spool left open for appending (its fd)."""
        pid = os.getpid()
        entry = JournalEntry(run=run, host=default_host(), pid=pid,
                             pid_start=process_start_time(pid))
        run_id = run["run_id"]
        try:
            self._write_entry(self._file(run_id, ".json"), entry.to_json())  # no orphan spool
            spool = os.open(self._file(run_id, ".events.jsonl"),
                            os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            for path in (self._file(run_id, ".events.jsonl"), self._file(run_id, ".json")):
                with suppress(OSError):  # neither half of an entry stays behind
                    os.unlink(path)
            raise JournalWriteError(
                f"run {run_id} not started: cannot write the journal {self.dir} "
                f"({disk_errors.reason(exc)}); {disk_errors.what_to_do(exc)}") from None
        return entry, spool

    def _write_entry(self, path: str, data: bytes) -> None:
        """A new entry at *path*: written into this process's spare file (``_spare``) and
        renamed into place, or through a temporary file when there is none. Written over,
        not truncated first: the spare's block is reused, not freed and allocated again."""
        with self._spare_lock:  # one thread at a time writes into the spare
            spare = self._spare()
            try:
                fd = os.open(spare, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:  # none yet (the first run) or not a plain file of ours
                fd = -1
            if fd >= 0:
                try:
                    try:
                        written = os.write(fd, data)
                        os.ftruncate(fd, written)
                    finally:
                        os.close(fd)
                    if written == len(data):
                        os.rename(spare, path)
                        return
                except OSError:
                    with suppress(OSError):
                        os.unlink(spare)  # a disk full midway: no half entry, no spare
                    raise
                with suppress(OSError):
                    os.unlink(spare)
        write_atomic(Path(path), data)

    def update(self, entry: JournalEntry) -> None:
        write_atomic(self.meta_path(entry.run["run_id"]), entry.to_json())

    def finish(self, run_id: str, keep_events_at: str | Path | None = None,
               spare: bool = False) -> None:
        """Forget a recorded run; its event spool moves to *keep_events_at* (the raw log).

        *spare*: keep the entry's file for this process's next run (``_spare``).
        """
        events, meta = self._file(run_id, ".events.jsonl"), self._file(run_id, ".json")
        with suppress(FileNotFoundError):
            if keep_events_at is None or not _moved(events, keep_events_at):
                os.unlink(events)
        with suppress(FileNotFoundError):  # the entry last: no spool or cancel request outlives it
            os.unlink(self._file(run_id, ".cancel"))
        if not spare:
            with suppress(FileNotFoundError):
                os.unlink(meta)
            return
        try:
            os.rename(meta, self._spare())
        except FileNotFoundError:
            return
        except OSError:
            with suppress(FileNotFoundError):
                os.unlink(meta)
            return
        if not self._spare_kept:  # a process that ends leaves none (a crash: swept later)
            self._spare_kept = True
            atexit.register(self._drop_spare)

    def _drop_spare(self) -> None:
        with suppress(OSError):
            os.unlink(self._spare())

    def _spare(self) -> str:
        """A finished entry's file kept for the next one (swept once this process is gone).

        On ext4 without a journal, creating a file scans past every inode freed in the
        last minutes of its block group: unlinking an entry per run made the next run's
        files (entry, spool, objects, refs) 0.5-1 ms slower each.
        """
        return f"{self._text}/.spare.{os.getpid()}.tmp"

    def entries(self) -> list[JournalEntry]:
        """Every readable entry, oldest run first."""
        found = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                found.append(JournalEntry.from_json(path.read_bytes()))
            except (OSError, ValueError, KeyError):
                continue  # being written or removed right now
        return found

    def read_events(self, run_id: str, after: int = 0) -> list[dict[str, Any]]:
        """The spooled events of a run with ``seq`` above *after*."""
        try:
            raw = self.events_path(run_id).read_bytes()
        except OSError:
            return []
        events = []
        for line in raw.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            seq = event_seq(event)
            if seq is not None and seq > after:
                events.append(event)
        return events

    def dead_entries(self) -> list[tuple[JournalEntry, Path]]:
        """The readable entries of this host whose process died, oldest run first."""
        host = default_host()
        found = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                entry = JournalEntry.from_json(path.read_bytes())
            except (OSError, ValueError, KeyError):
                continue
            if entry.host == host and not entry.alive:
                found.append((entry, path))
        return found

    def claim(self, path: Path) -> Claim | None:
        """Take over the entry at *path* (its process died); None if another process has it.

        The claim is an exclusive ``flock`` on the entry file: the kernel drops it when
        the claimer dies, so a claim never outlives its claimer (no pid to reuse).
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None  # recorded and removed meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            opened, current = os.fstat(fd), os.stat(path)
            if (opened.st_dev, opened.st_ino) != (current.st_dev, current.st_ino):
                raise FileNotFoundError(path)  # removed (and the name reused) meanwhile
            with os.fdopen(os.dup(fd), "rb") as fh:
                entry = JournalEntry.from_json(fh.read())
        except (OSError, ValueError, KeyError):
            os.close(fd)
            return None
        return Claim(entry, path, fd)

    def sweep(self) -> None:
        """Remove what dead writers left: spools without an entry, ``.<name>.<pid>.tmp``."""
        for path in self.dir.glob("*.events.jsonl"):
            if not self.meta_path(path.name.removesuffix(".events.jsonl")).exists():
                path.unlink(missing_ok=True)  # a spool is created after its entry
        for path in self.dir.glob("*.cancel"):
            if not self.meta_path(path.name.removesuffix(".cancel")).exists():
                path.unlink(missing_ok=True)  # asked as the run ended
        for path in self.dir.glob(".*.tmp"):
            pid_text = path.name.rsplit(".", 2)[-2]
            if pid_text.isascii() and pid_text.isdigit() and not process_alive(int(pid_text),
                                                                                 None):
                path.unlink(missing_ok=True)

    def needs_recovery(self) -> bool:
        """True unless one listing shows only entries of live processes and nothing to sweep.

        The hot path of every run (``Ledger.open``): one ``scandir`` instead of five globs;
        an entry's writer is remembered by name, so its file is read once, not per run.
        """
        try:
            with os.scandir(self.dir) as found:
                names = {item.name for item in found}
        except OSError:
            return True  # the full recovery reports it
        entries = {n for n in names if n.endswith(".json") and not n.startswith(".")}
        own = str(os.getpid())
        for name in names:
            if ".json.claimed-" in name:
                return True  # a legacy claim
            if name.startswith("."):  # a writer's temporary file or spare: its writer alive?
                pid = name.rsplit(".", 2)[-2] if name.endswith(".tmp") else ""
                if pid != own and not (pid.isascii() and pid.isdigit()
                                       and process_alive(int(pid), None)):
                    return True
                continue
            for suffix in (".events.jsonl", ".cancel"):
                if name.endswith(suffix) and name.removesuffix(suffix) + ".json" not in entries:
                    return True  # left without its entry
        writers, host = self._writers, default_host()
        for name in list(writers):
            if name not in entries:
                del writers[name]
        for name in entries:
            writer = writers.get(name)
            if writer is None:
                try:
                    entry = JournalEntry.from_json((self.dir / name).read_bytes())
                except (OSError, ValueError, KeyError):
                    continue  # being written or removed right now: as ``dead_entries``
                writer = writers[name] = (entry.host, entry.pid, entry.pid_start)
            if writer[0] == host and not process_alive(writer[1], writer[2]):
                return True
        return False

    def restore_legacy_claims(self) -> list[str]:
        """Give back ``<id>.json.claimed-<pid>`` files of dead claimers (older versions)."""
        restored = []
        for path in sorted(self.dir.glob("*.json.claimed-*")):
            pid_text = path.name.rpartition("-")[2]
            if pid_text.isascii() and pid_text.isdigit() and process_alive(int(pid_text), None):
                continue  # its claimer may still be recording it
            target = path.with_name(path.name.partition(".claimed-")[0])
            try:
                os.rename(path, target)
            except OSError:
                continue
            restored.append(target.stem)
        return restored

    def stranded(self) -> list[str]:
        """Run ids whose process died and that are still unrecorded (for ``ledger doctor``)."""
        ids = [entry.run.get("run_id", path.stem) for entry, path in self.dead_entries()]
        return ids + [p.name for p in sorted(self.dir.glob("*.json.claimed-*"))]


@plain_data
class Claim:
    """An entry of a dead process, held by this process until ``release``."""

    entry: JournalEntry
    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def kill_left_groups(groups: dict[str, float | None]) -> list[dict[str, Any]]:
    """Kill process groups a dead run left behind, checked by pid plus start time."""
    report = []
    for pgid_text, start in groups.items():
        pgid = int(pgid_text)
        leader_start = process_start_time(pgid)
        if leader_start is not None and start is not None and leader_start != start:
            report.append({"pgid": pgid, "state": "gone (its id now names another process)"})
            continue
        # The leader may have died while children of its group live on; a group id is not
        # reused while the group has members, so killing the group is safe.
        try:
            os.killpg(pgid, signal.SIGKILL)
            report.append({"pgid": pgid, "state": "killed"})
        except ProcessLookupError:
            report.append({"pgid": pgid, "state": "gone"})
        except PermissionError as exc:
            report.append({"pgid": pgid, "state": f"not killed: {exc}"})
    return report


class CancelFlag(threading.Event):
    """A run's ``cancel_requested``: set in this process, or by ``<run_id>.cancel`` on disk.

    ``is_set`` costs one ``stat`` until it is true; the tool runner polls it.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def is_set(self) -> bool:
        if super().is_set():
            return True
        if self.path.exists():
            super().set()
            return True
        return False

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        super().clear()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
            if left <= 0:
                return False
            super().wait(left)
        return True


def _group_is(pgid: int, start: float | None) -> bool:
    """True while group *pgid* has members and its id still names the recorded group."""
    leader_start = process_start_time(pgid)
    if leader_start is not None and start is not None and leader_start != start:
        return False  # the id now names another process's group
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_groups(groups: dict[str, float | None], grace: float = CANCEL_GRACE) -> None:
    """SIGTERM each recorded group, then SIGKILL what is left after *grace* seconds."""
    live = {int(pgid): start for pgid, start in groups.items()}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        live = {pgid: start for pgid, start in live.items() if _group_is(pgid, start)}
        for pgid in live:
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                continue
        if sig == signal.SIGKILL:
            return
        deadline = time.monotonic() + grace
        while live and time.monotonic() < deadline:
            time.sleep(_POLL)  # another process's group: no handle to wait on
            live = {pgid: start for pgid, start in live.items() if _group_is(pgid, start)}
