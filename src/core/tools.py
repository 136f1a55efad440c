"""The one subprocess wrapper: every external tool (git, kubectl, terraform, …) runs here.

``run_tool`` never uses a shell (argv lists only), runs tools non-interactively (stdin
closed unless data is given, ``GIT_TERMINAL_PROMPT=0``, ssh ``BatchMode=yes``), gives each
tool its own process group so a timeout or a cancel reaches its children too, and streams
every output line, redacted, to the current run while capturing a bounded copy.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from controlplane.core import lazy
from controlplane.core import redact as _redact
from controlplane.core.context import current_run
from controlplane.core.plain_data import plain_data

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    from typing import IO

    from controlplane.core.context import RunSink

log = lazy.Logger(__name__)

DEFAULT_TIMEOUT = 600.0
"""Seconds a tool may run unless the caller says otherwise (None: no limit)."""

VERSION_TIMEOUT = 10.0
_POLL_INTERVAL = 0.05  # how often a running tool is checked for a cancel or its deadline
_DRAIN_TIMEOUT = 5.0  # how long output may still arrive after the tool has exited
_LINE_LIMIT = 1 << 20  # a longer line is passed on in pieces of this size

# A run's tool starts as this shell, in a session of its own, which waits for "go" on its stdin
# before it becomes the tool (``exec``, same pid and group). The group is journaled first: a
# crash before "go" closes the pipe, the shell reads EOF and exits, the tool never runs. With
# no stdin data the tool then gets /dev/null, else the rest of the pipe (the data).
_SHELL = "/bin/sh"
_GATE_SCRIPT = """IFS= read -r go && [ "$go" = go ] || exit 125
[ "$0" = stdin ] || exec </dev/null
exec "$@"
"""


@plain_data
class ToolResult:
    """What a tool did: its exit status and its captured, redacted output."""

    argv: list[str]
    exit_code: int | None
    status: str  # "ok" | "failed" | "cancelled"
    error: dict[str, str] | None  # {"code": ..., "message": ...} when not ok
    stdout: str
    stderr: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        """True if the tool ran and exited with status 0."""
        return self.status == "ok"

    @property
    def error_message(self) -> str:
        """The error's message; empty when the tool succeeded."""
        return self.error["message"] if self.error is not None else ""


class ToolMissing(Exception):
    """A required tool is not installed or not on PATH; ``.tool`` names it."""

    def __init__(self, tool: str, message: str | None = None) -> None:
        self.tool = tool
        super().__init__(message or missing_message(tool))


def missing_message(tool: str) -> str:
    """The message shown when *tool* cannot be found."""
    return f"{tool} is not installed or not on PATH"


def tool_env(
    env: Mapping[str, str] | None = None, extra_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment a tool runs with: *env* (default ``os.environ``) plus *extra_env*,
    made non-interactive. Its secret-looking values (``*_TOKEN``, ``*PASSWORD*``…) are
    registered for redaction: a tool may print them."""
    result = dict(os.environ if env is None else env)
    result.update(extra_env or {})
    _redact.register_env(result)
    result["GIT_TERMINAL_PROMPT"] = "0"
    result.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    result["PYTHONUNBUFFERED"] = "1"
    return result


def which(name: str, path: str | None = None) -> str | None:
    """``shutil.which(name, path=path)`` on POSIX: the first executable file *name* on *path*
    (default ``$PATH``), or *name* itself if it holds a ``/``. shutil imports bz2, lzma and
    fnmatch: ~2 ms of the start of every ``exec`` on a bare interpreter (issue 18, item 8)."""
    if os.path.dirname(name):
        return name if _executable(name) else None
    if path is None:
        path = os.environ.get("PATH")
        if path is None:
            try:
                path = os.confstr("CS_PATH") or os.defpath
            except (AttributeError, ValueError):
                path = os.defpath
    seen: set[str] = set()
    for directory in path.split(os.pathsep) if path else ():
        if directory not in seen:
            seen.add(directory)
            candidate = os.path.join(directory, name)
            if _executable(candidate):
                return candidate
    return None


def _executable(path: str) -> bool:
    return os.path.exists(path) and os.access(path, os.F_OK | os.X_OK) and not os.path.isdir(path)


def require_tool(name: str, path: str | None = None) -> str:
    """Return the full path of *name* on *path* (default: ``$PATH``); raise ToolMissing."""
    found = which(name, path=path)
    if found is None:
        raise ToolMissing(name)
    return found


def tool_version(
    name: str, args: Sequence[str] = ("--version",), env: Mapping[str, str] | None = None
) -> str | None:
    """The first line *name* prints for *args*, or None if it is missing or fails."""
    result = _execute(
        [name, *args],
        cwd=None,
        env=tool_env(env),
        timeout=VERSION_TIMEOUT,
        stdin_data=None,
        sink=None,
        cancel=None,
        max_capture=64_000,
        grace_period=1.0,
    )
    if not result.ok:
        return None
    for text in (result.stdout, result.stderr):  # some tools print their version on stderr
        for line in text.splitlines():
            if line.strip():
                return line.strip()
    return None


def run_tool(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    stdin_data: str | bytes | None = None,
    run: RunSink | None = None,
    cancel_event: threading.Event | None = None,
    max_capture: int = 1_000_000,
    grace_period: float = 3.0,
) -> ToolResult:
    """Run one tool and wait for it; never raises for the tool's own failures.

    - *argv*: a list or tuple of str (a str is refused: there is no shell). ``argv[0]`` is
      looked up on the PATH of the environment used; if absent, nothing is spawned and the
      result's error code is ``tool_missing``.
    - *env* replaces ``os.environ``, *extra_env* is added on top.
    - *stdin_data* is written to the tool's stdin, which is then closed (the way to pass a
      secret); without it stdin is /dev/null.
    - *run* (default: the current run) receives each output line and the process group;
      *cancel_event* (default: the run's ``cancel_requested``) interrupts the tool: SIGINT,
      SIGTERM after *grace_period* seconds, then SIGKILL, all sent to its process group.
    - *timeout* seconds (None: no limit), then SIGTERM and SIGKILL to the group.
    - stdout and stderr are captured redacted, each keeping its last *max_capture* bytes.
    """
    if run is None:
        run = current_run()
    if cancel_event is None and run is not None:
        cancel_event = getattr(run, "cancel_requested", None)
    return _execute(
        _check_argv(argv),
        cwd=cwd,
        env=tool_env(env, extra_env),
        timeout=timeout,
        stdin_data=stdin_data,
        sink=run,
        cancel=cancel_event,
        max_capture=max_capture,
        grace_period=grace_period,
    )


def _check_argv(argv: Sequence[str]) -> list[str]:
    if isinstance(argv, (str, bytes)):
        raise TypeError("argv must be a list of arguments, not a string (no shell is used)")
    args = [os.fspath(arg) if isinstance(arg, os.PathLike) else arg for arg in argv]
    if not args:
        raise ValueError("argv is empty")
    bad = [arg for arg in args if not isinstance(arg, str)]
    if bad:
        raise TypeError(f"argv items must be str, got {type(bad[0]).__name__}")
    return args


def _resolve(name: str, env: Mapping[str, str], cwd: str | Path | None) -> str | None:
    """The executable *name* would run, looked up like exec does with *env*'s PATH."""
    if os.sep in name:
        candidate = name if cwd is None or os.path.isabs(name) else os.path.join(cwd, name)
        return which(candidate)
    return which(name, path=env.get("PATH", os.defpath))


def _execute(
    argv: list[str],
    *,
    cwd: str | Path | None,
    env: dict[str, str],
    timeout: float | None,
    stdin_data: str | bytes | None,
    sink: RunSink | None,
    cancel: threading.Event | None,
    max_capture: int,
    grace_period: float,
) -> ToolResult:
    tool = os.path.basename(argv[0])
    started = time.monotonic()

    def result(
        status: str,
        exit_code: int | None,
        code: str | None,
        message: str = "",
        out: _Capture | None = None,
        err: _Capture | None = None,
    ) -> ToolResult:
        error = {"code": code, "message": _redact.redact(message)} if code else None
        return ToolResult(
            argv=argv,
            exit_code=exit_code,
            status=status,
            error=error,
            stdout=out.text() if out else "",
            stderr=err.text() if err else "",
            duration_ms=int((time.monotonic() - started) * 1000),
        )

    executable = _resolve(argv[0], env, cwd)
    if executable is None:
        return result("failed", None, "tool_missing", missing_message(tool))
    if cancel is not None and cancel.is_set():
        return result("cancelled", None, "cancelled", f"{tool} was cancelled before it started")
    gated = sink is not None  # a run's tool waits until its group is journaled
    try:
        process = subprocess.Popen(
            _gated(argv, executable, stdin_data is not None) if gated else argv,
            executable=_SHELL if gated else executable,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE if gated or stdin_data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return result("failed", None, "exception", f"{tool} could not be started: {exc}")

    pgid = process.pid  # start_new_session: the tool leads a new process group
    out, err = _Capture(max_capture), _Capture(max_capture)
    emit = _Emitter(sink)
    threads = [
        threading.Thread(target=_pump, args=(process.stdout, "stdout", out, emit), daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, "stderr", err, emit), daemon=True),
    ]
    data = None
    if stdin_data is not None:
        data = stdin_data.encode() if isinstance(stdin_data, str) else stdin_data
        threads.append(threading.Thread(target=_feed, args=(process.stdin, data), daemon=True))
    outcome = None
    attached = False
    exited_alone = False  # True once the tool exited by itself (no timeout, cancel or error)
    try:
        if sink is not None:  # journaled before the tool runs: a crash from here on leaves
            sink.attach_process(process.pid, pgid)  # a group that recovery can kill
            attached = True
            _open_gate(process, keep_stdin=data is not None)
        for thread in threads:
            thread.start()
        deadline = None if timeout is None else started + timeout
        outcome = _wait(process, pgid, deadline, cancel, grace_period)
        exited_alone = outcome is None
    except BaseException:  # e.g. KeyboardInterrupt: the tool must not outlive us
        _escalate(process, pgid, (signal.SIGINT, signal.SIGTERM), grace_period)
        raise
    finally:
        if process.poll() is None:
            _signal_group(pgid, signal.SIGKILL)
            process.wait()
        if not exited_alone:  # nothing of a timed-out or cancelled tool may survive
            _signal_group(pgid, signal.SIGKILL)
        _join(threads, pgid)
        emit.close()
        if attached and sink is not None:
            sink.detach_process(process.pid)

    code = process.returncode
    if outcome == "timeout":
        message = f"{tool} timed out after {timeout:g} seconds"
        return result("failed", code, "timeout", message, out, err)
    if outcome == "cancelled":
        return result("cancelled", code, "cancelled", f"{tool} was cancelled", out, err)
    if code == 0:
        return result("ok", code, None, "", out, err)
    if code < 0:
        message = f"{tool} was killed by signal {_signal_name(-code)}"
    else:
        message = f"{tool} exited with status {code}"
    if err.last_line:
        message += f": {err.last_line}"
    return result("failed", code, "exit_status", message, out, err)


def _wait(
    process: subprocess.Popen[bytes],
    pgid: int,
    deadline: float | None,
    cancel: threading.Event | None,
    grace_period: float,
) -> str | None:
    """Wait for the tool; returns None when it exited, else "timeout" or "cancelled"."""
    while True:
        step = _POLL_INTERVAL
        if deadline is not None:
            step = min(step, deadline - time.monotonic())
            if step <= 0:
                _escalate(process, pgid, (signal.SIGTERM,), grace_period)
                return "timeout"
        try:
            process.wait(timeout=step)
            return None
        except subprocess.TimeoutExpired:
            pass
        if cancel is not None and cancel.is_set():
            _escalate(process, pgid, (signal.SIGINT, signal.SIGTERM), grace_period)
            return "cancelled"


def _escalate(
    process: subprocess.Popen[bytes], pgid: int, signals: Sequence[int], grace_period: float
) -> None:
    """Send *signals* to the group one by one until the tool exits, then SIGKILL."""
    for sig in signals:
        _signal_group(pgid, sig)
        try:
            process.wait(timeout=grace_period)
            return
        except subprocess.TimeoutExpired:
            pass
    _signal_group(pgid, signal.SIGKILL)
    process.wait()


def _gated(argv: list[str], executable: str, keep_stdin: bool) -> list[str]:
    """The gate's argv: the shell, its script, then the tool's argv as ``"$@"``."""
    tool = argv if not argv[0].startswith("-") else [executable, *argv[1:]]  # not an option
    return ["sh", "-c", _GATE_SCRIPT, "stdin" if keep_stdin else "devnull", *tool]


def _open_gate(process: subprocess.Popen[bytes], keep_stdin: bool) -> None:
    """Let the gated tool run (its group is journaled); stdin stays open for its data."""
    assert process.stdin is not None
    try:
        process.stdin.write(b"go\n")
        process.stdin.flush()
    except OSError:  # the shell died (killed from outside): nothing runs
        pass
    if not keep_stdin:
        with contextlib.suppress(OSError):
            process.stdin.close()


def _signal_group(pgid: int, sig: int) -> None:
    # the group may be gone already (PermissionError: only a zombie of it is left on macOS)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _join(threads: list[threading.Thread], pgid: int) -> None:
    """Wait for the readers; a leftover child holding the pipes open is killed."""
    threads = [thread for thread in threads if thread.ident is not None]  # started ones
    deadline = time.monotonic() + _DRAIN_TIMEOUT
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        _signal_group(pgid, signal.SIGKILL)
        for thread in threads:
            thread.join(1.0)
        # a process outside the group still has the pipe: its reader drops what comes


class _Capture:
    """The last *limit* bytes of one stream, as lines."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.lines: deque[tuple[str, int]] = deque()
        self.size = 0
        self.omitted = 0
        self.last_line = ""  # the last non-blank line, for error messages

    def add(self, line: str) -> None:
        if line.strip():
            self.last_line = line.strip()
        size = len(line.encode("utf-8", "replace")) + 1
        self.lines.append((line, size))
        self.size += size
        while self.size > self.limit and self.lines:
            old, old_size = self.lines.popleft()
            self.size -= old_size
            if not self.lines and self.limit > 1:  # one huge line: keep its tail
                encoded = old.encode("utf-8", "replace")
                tail = encoded[len(encoded) - (self.limit - 1) :].decode("utf-8", "ignore")
                tail_size = len(tail.encode()) + 1
                self.lines.append((tail, tail_size))
                self.size += tail_size
                self.omitted += old_size - tail_size
                break
            self.omitted += old_size

    def text(self) -> str:
        body = "".join(line + "\n" for line, _ in self.lines)
        if self.omitted:
            return f"[... {self.omitted} bytes omitted ...]\n{body}"
        return body


class _Emitter:
    """Passes lines to the run one at a time; drops them once the tool's call is over."""

    def __init__(self, sink: RunSink | None) -> None:
        self.sink = sink
        self.lock = threading.Lock()
        self.closed = False

    def __call__(self, line: str, stream: str, capture: _Capture) -> None:
        with self.lock:
            if self.closed:
                return
            capture.add(line)
            if self.sink is None:
                return
            try:
                self.sink.output(line, stream)
            except Exception:  # a broken sink must not stop the pipe being drained
                log.exception("run sink failed to take a line of tool output")

    def close(self) -> None:
        with self.lock:
            self.closed = True


def _pump(
    pipe: IO[bytes], stream: str, capture: _Capture, emit: Callable[[str, str, _Capture], None]
) -> None:
    """Read one of the tool's output pipes line by line until EOF."""
    try:
        for raw in iter(lambda: pipe.readline(_LINE_LIMIT), b""):
            line = raw.decode("utf-8", errors="replace")
            if line.endswith("\n"):
                line = line[:-1].removesuffix("\r")
            emit(_redact.redact(line), stream, capture)
    finally:
        pipe.close()


def _feed(pipe: IO[bytes], data: bytes) -> None:
    """Write *data* to the tool's stdin, then close it so the tool sees EOF."""
    with contextlib.suppress(OSError):  # the tool may exit without reading it all
        try:
            pipe.write(data)
        finally:
            pipe.close()
