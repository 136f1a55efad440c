"""``tracked_run`` and ``run_tracked``: how any code becomes a recorded Run.

```python
with tracked_run("test", "test:nightly", summary="nightly suite") as run:
    run.output("collected 12 items")
    run.result = {"passed": 12}
```

Enter: the run is journaled and ``run:started`` published. Exit: the status is
set (an exception → ``failed`` with ``error.code = "exception"``, re-raised;
KeyboardInterrupt → ``cancelled``), the run is recorded in the ledger and
``run:completed`` published. The promise holds in ``finally``: no run is left
``running`` by a live process.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from controlplane.core import lazy, provenance, redact
from controlplane.core.context import (
    current_run,
    current_runtime,
    reset_current_run,
    runtime_for,
    set_current_run,
)
from controlplane.core.events import (
    BusUnavailable,
    EventBus,
    RunCompleted,
    RunQueued,
    RunStarted,
    default_bus,
)
from controlplane.core.ledger import Ledger, LedgerWriteError
from controlplane.core.ledger.journal import JournalEntry
from controlplane.core.output import EventLog, bound_result, cap_events, clip_line, compact_json
from controlplane.core.runs import Run, RunStatus, check_subtype, iso, process_start_time, utc_now

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

log = lazy.Logger(__name__)
_RUN_FIELDS = ("params", "target", "actor", "rerun_of", "parent_run_id", "artifacts")
_bus_down_said = False  # "the bus is down" is logged once per process
_default_root: ContextVar[str | None] = ContextVar("controlplane_project_root", default=None)


def set_default_project_root(path: str | os.PathLike[str] | None) -> None:
    """Where runs are recorded when no ``project_root`` is given (the server sets it)."""
    _default_root.set(str(path) if path else None)
    global _process_root
    _process_root = str(path) if path else None


_process_root: str | None = None


def default_actor(kind: str = "script") -> dict[str, str]:
    return {"kind": kind, "name": _user_name(os.getuid(), *map(os.environ.get, _USER_VARS))}


_USER_VARS = ("LOGNAME", "USER", "LNAME", "USERNAME")  # what getpass.getuser reads first


@functools.lru_cache(maxsize=8)
def _user_name(uid: int, *environ: str | None) -> str:
    """What getpass.getuser() answers (the first of *environ* set, else the passwd entry of
    *uid*), remembered per uid and variables. getpass itself imports termios."""
    for value in environ:
        if value:
            return value
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OSError):
        return str(uid)


_env_seen: tuple[dict[bytes, bytes], object] | None = None


def _register_env() -> None:
    """Register the environment's secret-looking values with the redactor, unless the
    environment and the redactor's values are as at the last run (a scan of every variable)."""
    global _env_seen
    data = getattr(os.environ, "_data", None)
    literals = getattr(redact.redactor, "_literals", None)  # a new set after clear()
    seen = _env_seen
    if data is not None and seen is not None and seen[1] is literals and seen[0] == data:
        return
    redact.register_env()
    _env_seen = (dict(data), literals) if data is not None else None


class ActiveRun:
    """A run in flight: what the code inside it reports, spooled, numbered and published.

    Thread-safe: tool output arrives from reader threads.
    """

    def __init__(self, run: Run, ledger: Ledger, bus: EventBus) -> None:
        self.run = run
        self.run_id = run.run_id
        self.ledger = ledger
        self.bus = bus
        # announced live by this process: feeds on a shared bus must not announce it again
        self._on_bus(lambda: bus.announce(run.run_id))
        # set here, or by a cancel request another process wrote into the journal
        self.cancel_requested: threading.Event = ledger.journal.cancel_flag(run.run_id)
        self._lock = threading.Lock()
        self._events = EventLog()  # head and tail only: a long run stays bounded
        self._entry: JournalEntry | None = None
        self._spool: BinaryIO | None = None

    # what code inside a run reports

    @property
    def summary(self) -> str:
        return self.run.summary

    @summary.setter
    def summary(self, text: str) -> None:
        self.run.summary = redact.redact(str(text))

    @property
    def status(self) -> RunStatus:
        """``running`` inside the block; set ``"ok"``/``"failed"`` (or a final RunStatus)
        to choose the status recorded when the block ends without an exception."""
        return self.run.status

    @status.setter
    def status(self, value: RunStatus | str) -> None:
        try:
            status = RunStatus(value)
        except ValueError:
            status = None
        if status is None or not status.is_final or status == RunStatus.INTERRUPTED:
            raise ValueError(f"run.status must be 'ok', 'failed' or 'cancelled', not {value!r}")
        self.run.status = status
        if status == RunStatus.OK:
            self.run.error = None
        elif self.run.error is None:
            self.run.error = {"code": str(status),
                              "message": f"the run set its own status to {status}"}

    @property
    def result(self) -> dict[str, Any]:
        return self.run.result

    @result.setter
    def result(self, value: dict[str, Any]) -> None:
        self.run.result = value

    @property
    def target(self) -> dict[str, Any]:
        return self.run.target

    def output(self, line: str, stream: str = "stdout") -> None:
        """One line of output: spooled, kept for the ledger and published as ``run:output``."""
        line = clip_line(redact.redact(str(line).rstrip("\n")))
        self._event("run:output", {"stream": stream, "line": line})

    def progress(self, done: int, total: int) -> None:
        self._event("run:progress", {"done": int(done), "total": int(total)})

    def fail(self, code: str, message: str) -> None:
        """Mark the run failed (it still runs to the end of its block)."""
        self.run.status = RunStatus.FAILED
        self.run.error = {"code": code, "message": redact.redact(message)}

    def add_artifact(self, path: str, sha256: str | None = None, **info: Any) -> None:
        self.run.artifacts.append({"path": path, "sha256": sha256, **info})

    def attach_process(self, pid: int, pgid: int) -> None:
        with self._lock:
            if self._entry is not None:
                self._entry.groups[str(pgid)] = process_start_time(pgid)
                self.ledger.journal.update(self._entry)

    def detach_process(self, pid: int) -> None:
        with self._lock:
            if self._entry is not None and self._entry.groups.pop(str(pid), None) is not None:
                self.ledger.journal.update(self._entry)

    # life cycle

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        with self._lock:
            seq = len(self._events) + 1
            event = {"seq": seq, "type": kind, "at": iso(utc_now()), "data": data}
            self._events.append(event)
            if self._spool is not None:
                self._spool.write(_jsonl(event))
            if kind == "run:output":
                self._on_bus(lambda: self.bus.publish(kind, {"seq": seq, **data},
                                                      run_id=self.run_id))
            elif kind == "run:progress":
                self._on_bus(lambda: self.bus.publish(kind, data, run_id=self.run_id))

    def queue(self) -> None:
        """Journal the run as ``queued`` and publish ``run:queued``."""
        self.run.status = RunStatus.QUEUED
        self._entry = self.ledger.journal.start(self.run.to_dict())
        queued = RunQueued.from_data(self.run.to_dict())
        self._on_bus(lambda: self.bus.publish_event(queued))

    def start(self) -> None:
        """Journal the run as ``running``, open its event spool, publish ``run:started``."""
        self.run.status = RunStatus.RUNNING
        data = self.run.to_dict()
        if self._entry is None:  # the spool as the journal opened it: no second open
            self._entry, spool = self.ledger.journal.start_spooled(data)
            self._spool = open(spool, "ab", buffering=0, closefd=True)  # noqa: SIM115
        else:
            self._entry.run = data
            self.ledger.journal.update(self._entry)
            self._spool = open(self.ledger.journal.spool_of(self.run_id), "ab", buffering=0)  # noqa: SIM115
        self._event("run:started", {"summary": self.run.summary})
        started = RunStarted.from_data(data)
        self._on_bus(lambda: self.bus.publish_event(started))

    def finish(self, status: RunStatus, error: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record the final state; returns the final run.json."""
        if self.cancel_requested.is_set() and status != RunStatus.OK:
            status, error = RunStatus.CANCELLED, error or {"code": "cancelled",
                                                           "message": "cancelled by request"}
        run = self.run
        run.result = redact.redact_obj(bound_result(run.result or {}))
        run.error = redact.redact_obj(run.error) if run.error else None
        run.finish(status, error)
        self._event("run:completed", {"status": str(run.status), "error": run.error})
        with self._lock:
            if self._spool is not None:
                self._spool.close()
                self._spool = None
            events, _ = cap_events(self._events)
        run.events = len(events)
        final = run.to_dict()  # recorded and published
        try:
            self.ledger.record(run, events, final)
        except LedgerWriteError:  # kept in memory (and journaled): recorded at the next open
            self.ledger.unrecorded[self.run_id] = (run, events)
            completed = RunCompleted.from_data(final)
            self._on_bus(lambda: self.bus.publish_event(completed))
            raise
        self.ledger.journal.finish(
            self.run_id, keep_events_at=f"{self.ledger.logs_dir}/{self.run_id}.events.jsonl",
            spare=True)  # its file is the next run's entry: no inode freed per run
        self._on_bus(lambda: self.bus.publish_event(RunCompleted.from_data(final)))
        return final

    def _on_bus(self, send: Callable[[], object]) -> None:
        """Publish through *send*; a bus that is down never stops the run (the ledger
        records it) and is said once per process."""
        try:
            send()
        except BusUnavailable as exc:
            global _bus_down_said
            if not _bus_down_said:
                _bus_down_said = True
                log.warning("%s; runs are still recorded in the ledger", exc.message)


def _jsonl(event: dict[str, Any]) -> bytes:
    return compact_json(event).encode() + b"\n"


def open_run(run_type: str, subtype: str, *, summary: str = "",
             project_root: str | os.PathLike[str] | None = None, bus: EventBus | None = None,
             **metadata: Any) -> ActiveRun:
    """Create (not start) a run: checks the type, reads the code ref, redacts params.

    This process's secret-looking environment variables are registered with the
    redactor first: code inside a run may print them (a script's ``$DEPLOY_TOKEN``)."""
    check_subtype(run_type, subtype)
    _register_env()
    runtime = current_runtime()
    where = (project_root or _flask_project_root()
             or (runtime.root if runtime is not None else None)
             or _default_root.get() or _process_root)
    ledger = Ledger.open(where, caches=False)  # the record brings view and index along
    if bus is None:  # the bus of the runtime serving this project, if one is open here
        owner = runtime if runtime is not None and runtime.root == ledger.root \
            else runtime_for(ledger.root)
        bus = owner.bus if owner is not None else None
    parent = current_run()
    values: dict[str, Any] = {k: metadata.pop(k) for k in _RUN_FIELDS if k in metadata}
    if "actor" not in values:
        provided = runtime.current_actor() if runtime is not None else None
        values["actor"] = provided or default_actor()
    if parent is not None:
        values.setdefault("parent_run_id", parent.run_id)
    values["params"] = redact.redact_obj(values.get("params") or {})
    code_ref = provenance.code_ref(ledger, where or os.getcwd())  # the worktree it runs in
    run = Run.new(subtype, summary=redact.redact(summary), code_ref=code_ref, **values)
    if metadata:
        run.extra["metadata"] = redact.redact_obj(metadata)
    return ActiveRun(run, ledger, bus or default_bus())


@contextmanager
def running(active: ActiveRun) -> Iterator[ActiveRun]:
    """Start *active* and finish it with the right status whatever the block does.

    An exception → ``failed`` (``error.code = "exception"``) and re-raised;
    KeyboardInterrupt → ``cancelled``; ``fail()`` inside the block → ``failed``.
    """
    active.start()
    token = set_current_run(active)
    status, error = RunStatus.OK, None
    try:
        yield active
    except KeyboardInterrupt:
        status, error = RunStatus.CANCELLED, {"code": "cancelled", "message": "interrupted by user"}
        raise
    except BaseException as exc:
        status = RunStatus.FAILED
        error = {"code": "exception", "message": f"{type(exc).__name__}: {exc}"}
        raise
    finally:
        reset_current_run(token)
        if status == RunStatus.OK and active.run.status.is_final:
            status = active.run.status  # the block called fail() or set a status itself
        active.finish(status, error)


def _flask_project_root() -> str | None:
    """``current_app.config["PROJECT_ROOT"]`` inside a Flask app context (Flask not imported)."""
    flask = sys.modules.get("flask")
    if flask is None or not flask.has_app_context():
        return None
    root = flask.current_app.config.get("PROJECT_ROOT")
    return str(root) if root else None


def _call_shape(args: tuple[Any, ...], summary: str,
                project_root: str | os.PathLike[str] | None
                ) -> tuple[str, str, str, str | os.PathLike[str] | None]:
    """(run_type, subtype, summary, project_root) from either documented call shape."""
    if len(args) == 2:
        return str(args[0]), str(args[1]), summary, project_root
    if len(args) in (3, 4):
        if project_root is not None:
            raise TypeError("tracked_run() got project_root both positionally and by keyword")
        if len(args) == 4:
            if summary:
                raise TypeError("tracked_run() got summary both positionally and by keyword")
            summary = str(args[3])
        return str(args[1]), str(args[2]), summary, args[0]
    raise TypeError("tracked_run() takes (run_type, subtype) or "
                    f"(project_root, run_type, subtype[, summary]), got {len(args)} arguments")


@contextmanager
def tracked_run(*args: Any, summary: str = "",
                project_root: str | os.PathLike[str] | None = None,
                **metadata: Any) -> Iterator[ActiveRun]:
    """Run the block as a recorded Run; see the module docstring.

    Call as ``tracked_run(run_type, subtype, ...)`` or
    ``tracked_run(project_root, run_type, subtype[, summary], **metadata)``.
    """
    run_type, subtype, summary, project_root = _call_shape(args, summary, project_root)
    active = open_run(run_type, subtype, summary=summary, project_root=project_root, **metadata)
    with running(active):
        yield active


def apply_result(active: ActiveRun, value: Any, ok_key: str = "ok") -> tuple[RunStatus, Any]:
    """Status and result from what a tracked function returned (dict, tuple, response-like).

    A dict with ``ok: False``, an ``error`` or a 4xx/5xx status means failed. JSON
    bodies get ``run_id`` (and ``status``, filled in by the caller) added.
    """
    body, code, rest = value, None, ()
    if isinstance(value, tuple) and value and isinstance(value[-1 if len(value) == 2 else 1], int):
        body, code, rest = value[0], value[1], value[2:]
    response_like = hasattr(body, "get_json") and hasattr(body, "status_code")
    if response_like:
        code = code or body.status_code
        data = body.get_json(silent=True)
    else:
        data = body
    failed = code is not None and code >= 400
    if isinstance(data, dict):
        failed = failed or data.get(ok_key) is False
        active.result = {k: v for k, v in data.items() if k not in ("run_id", "status")}
        error = data.get("error")
        if failed and active.run.error is None:
            if isinstance(error, dict) and "code" in error:
                active.run.error = {"code": str(error["code"]),
                                    "message": str(error.get("message") or error["code"])}
            else:
                message = data.get("message") or (error if isinstance(error, str) else None)
                active.run.error = {"code": "failed" if code is None else "http_status",
                                    "message": str(message or f"answered {code}")}
    elif failed:
        active.run.error = {"code": "http_status", "message": f"answered {code}"}
    return (RunStatus.FAILED if failed else RunStatus.OK), (body, code, rest, data, response_like)


def _final_summary(data: Any, summary_fn: Callable[[dict[str, Any]], Any] | None,
                   summary_key: str) -> str | None:
    """The summary from the result: ``summary_fn(result)``, else ``result[summary_key]``."""
    result = data if isinstance(data, dict) else {}
    if summary_fn is not None:
        try:
            text = summary_fn(result)
        except Exception as exc:  # the default summary stays; the run's own status is kept
            log.warning("summary_fn raised %s: %s; the default summary is kept",
                        type(exc).__name__, exc)
            return None
        return None if text is None else str(text)
    text = result.get(summary_key)
    return text if isinstance(text, str) and text else None


def run_tracked(run_type: str, subtype: str, *,
                summary_fn: Callable[[dict[str, Any]], Any] | None = None,
                summary_key: str = "summary", ok_key: str = "ok", summary: str | None = None
                ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a function or a Flask view so each call is a recorded Run.

    - The run's status follows what it returns (see ``apply_result``): ``result[ok_key]``
      false, an ``error`` or a 4xx/5xx status mean ``failed``.
    - ``run:started`` carries *summary* (default: the function's name); at the end the
      summary becomes ``summary_fn(result)``, else ``result[summary_key]`` when present.
    - Inside a Flask app, runs go to ``current_app.config["PROJECT_ROOT"]`` when set.
    - A JSON body gets the ``run_id`` and ``status``.
    """
    check_subtype(run_type, subtype)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        default_summary = summary if summary is not None else fn.__name__.replace("_", " ")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with tracked_run(run_type, subtype, summary=default_summary) as active:
                value = fn(*args, **kwargs)
                status, (body, code, rest, data, response_like) = apply_result(
                    active, value, ok_key)
                final_summary = _final_summary(data, summary_fn, summary_key)
                if final_summary is not None:
                    active.summary = final_summary
                if status == RunStatus.FAILED:
                    active.run.status = RunStatus.FAILED
            final_status = str(active.run.status)
            if isinstance(data, dict):
                data = {**data, "run_id": active.run_id, "status": final_status}
                if response_like:
                    body.set_data(json.dumps(data))
                else:
                    body = data
            return (body, code, *rest) if isinstance(value, tuple) else body

        return wrapper

    return decorate


def project_root_of(path: str | os.PathLike[str] | None = None) -> Path:
    """The work tree of the git repository holding *path* (default: cwd)."""
    return Ledger.open(path, recover=False).root
