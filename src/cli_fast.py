"""The click-free part of the ``controlplane`` command: the console script's entry point.

``exec`` and ``runs list`` run often (a Run around every test run, a glance at the
list): :func:`main` runs their plain forms without importing click (issue 18 item 8).
Any other form (``--help``, a value click would refuse, ``--opt=value``, another
command) goes to the click group in :mod:`controlplane.cli`, so help and errors are
click's. The bodies here are those of the click commands too.
"""

from __future__ import annotations

import codecs
import errno
import json
import os
import sys

from controlplane.core import terminal
from controlplane.core.ledger import disk_errors
from controlplane.core.run_names import RUN_TYPES, RunStatus

TYPE_CHECKING = False  # a plain `runs list` imports neither typing nor the ledger's modules
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from controlplane.core.ledger import Ledger
    from controlplane.core.tools import ToolResult

LIST_LIMIT = (1, 10_000)


def expected_errors() -> tuple[type[BaseException], ...]:
    """The errors a command reports in one line (the ledger's, imported when needed)."""
    from controlplane.core.ledger import LedgerWriteError, NotARepository

    return (NotARepository, LedgerWriteError, ValueError, OSError)


def _ledger_write_error() -> type[BaseException]:
    from controlplane.core.ledger import LedgerWriteError

    return LedgerWriteError


class CommandFailed(Exception):
    """A one-line error, exit code 2 (``cli.Fail`` under click)."""


def echo(text: str, err: bool = False) -> None:
    """``click.echo(text, err=err, color=True)`` without importing click."""
    stream = sys.stderr if err else sys.stdout
    if stream is None:
        return
    if _ascii(stream):  # click re-wraps a misconfigured ascii stream: let it
        import click

        click.echo(text, err=err, color=True)
        return
    stream.write(f"{text}\n")
    stream.flush()


def _ascii(stream: Any) -> bool:
    try:
        return codecs.lookup(stream.encoding).name == "ascii"
    except (AttributeError, LookupError, TypeError):
        return True


def say(text: str, err: bool = False) -> None:
    """Echo *text* that others wrote (runs, events, errors) without its terminal controls."""
    echo(terminal.clean_for(sys.stderr if err else sys.stdout, text), err=err)


def open_ledger(repo: str | None, writing: bool = False) -> Ledger:
    """The ledger of *repo* (default: the repository holding the current directory).

    *writing*: fail at once, in one line, when ``.git/scp`` cannot be written (a read-only
    ``.git``), before opening the ledger warns that it reads from copies.
    """
    from controlplane.core.ledger import Ledger, find_git_dir

    try:
        if writing:
            _check_writable(os.path.join(find_git_dir(repo)[1], "scp", "journal"))
        ledger = Ledger.open(repo, caches=not writing)  # a run's record brings them along
    except expected_errors() as exc:
        raise CommandFailed(str(exc)) from None
    _index_wals.append(f"{ledger.index_path}-wal")  # see exit_without_teardown
    return ledger


def _check_writable(directory: str) -> None:
    """Write a byte to a new file in *directory* and remove it; fail naming it and what to
    do if the disk refuses (read-only, full)."""
    probe = os.path.join(directory, f".probe.{os.getpid()}.tmp")  # swept by the journal
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, b"\n")  # a block of its own: ENOSPC here on a full disk
        finally:
            os.close(fd)
            try:  # noqa: SIM105 - contextlib is one more import for every command
                os.unlink(probe)
            except FileNotFoundError:
                pass
    except OSError as exc:
        raise CommandFailed(f"cannot write {directory} ({disk_errors.reason(exc)}); "
                            f"{disk_errors.what_to_do(exc)}") from None


def one_line(exc: BaseException) -> str:
    """*exc* as one line that ends with what to do."""
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return text if "retry" in text else f"{text}; {disk_errors.what_to_do(exc)}"


# -- the bodies of `runs list` and `exec` -------------------------------------


def runs_list(run_type: str | None, status: str | None, limit: int, as_json: bool,
              repo: str | None) -> None:
    """Newest runs first, in-flight ones included."""
    from controlplane.core.ledger import index_read  # sqlite3: exec leaves its run queued

    found = index_read.recent_if_current(repo, limit, run_type, status)
    if found is None:  # something to catch up, recover or merge in: the ledger does it
        found = open_ledger(repo).recent(limit=limit, type=run_type, status=status)
    if as_json:
        say(json.dumps(found, indent=1))
        return
    for run in found:
        duration = run.get("duration_ms")
        took = f"{duration / 1000:.1f}s" if isinstance(duration, int) else "-"
        say(f"{run['run_id']}  {run.get('status', '?'):<11} {run.get('subtype', ''):<24} "
            f"{took:>8}  {run.get('summary', '')}")


def exec_run(subtype: str, command: tuple[str, ...], summary: str | None,
             timeout: float | None, repo: str | None) -> NoReturn:
    """Run *command* as a Run of *subtype*; exits with its code (see ``controlplane exec``)."""
    from controlplane.core import provenance

    provenance.prefetch(repo or os.getcwd())  # git works meanwhile on the imports below
    import shlex  # the summary: the command as a shell would take it back

    from controlplane.core.events import default_bus
    from controlplane.core.forward_signals import SignalForwarder, shell_exit_code
    from controlplane.core.ledger import LedgerWriteError
    from controlplane.core.ledger.journal import JournalWriteError
    from controlplane.core.run_tracker import default_actor, tracked_run
    from controlplane.core.tools import run_tool

    run_type = subtype.partition(":")[0]
    ledger = open_ledger(repo, writing=True)
    argv = list(command)

    own_run: list[str] = []  # a shared bus (CONTROLPLANE_BUS) carries other runs too

    def echo_output(envelope: dict[str, Any]) -> None:
        if envelope["type"] == "run:output" and envelope.get("run_id") in own_run:
            data = envelope["data"]  # the child's own output: unchanged, as if run directly
            echo(data["line"], err=data.get("stream") == "stderr")

    result: ToolResult
    disconnect = default_bus().connect(echo_output)
    try:
        with SignalForwarder() as forwarder, tracked_run(
                run_type, subtype, summary=summary or shlex.join(argv),
                project_root=ledger.root, actor=default_actor("cli"),
                params={"argv": argv}) as run:
            own_run.append(run.run_id)
            result = run_tool(argv, cwd=None, timeout=timeout, run=forwarder.bind(run))
            run.result = {"exit_code": result.exit_code}
            if forwarder.received:
                run.cancel_requested.clear()  # handled here: the error names the signal
                run.run.error = {"code": "cancelled", "message": f"controlplane exec received "
                                 f"{forwarder.signal_name}: the command was stopped"}
                run.status = "cancelled"
            elif not result.ok and result.error is not None:
                run.fail(result.error["code"], result.error["message"])
    except (ValueError, JournalWriteError) as exc:  # the run did not start
        raise CommandFailed(str(exc)) from None
    except LedgerWriteError as exc:  # the run ended but its record could not be written
        raise CommandFailed(f"run {run.run_id} {run.run.status}, not recorded: {exc}") from None
    except KeyboardInterrupt:
        echo(f"controlplane: run {run.run_id} cancelled", err=True)
        sys.exit(130)
    finally:
        disconnect()
    echo(f"controlplane: run {run.run_id} {run.run.status}", err=True)
    if forwarder.exit_code is not None:
        sys.exit(forwarder.exit_code)
    if result.error and result.error["code"] == "tool_missing":
        echo(f"controlplane: error: {result.error['message']}", err=True)
        sys.exit(127)
    sys.exit(shell_exit_code(result.exit_code))


# -- the plain forms, parsed without click ------------------------------------

LIST_OPTIONS = {"--type": "run_type", "--status": "status", "--limit": "limit",
                "--repo": "repo"}
EXEC_OPTIONS = {"--summary": "summary", "--timeout": "timeout", "--repo": "repo"}


def _options(args: list[str], known: dict[str, str], flags: dict[str, str]
             ) -> tuple[dict[str, Any], list[str]] | None:
    """Leading ``--name value`` pairs and flags, each at most once; the rest. None: a form
    left to click (``--name=value``, a value that looks like an option, a repeat)."""
    found: dict[str, Any] = {}
    index = 0
    while index < len(args) and args[index].startswith("-") and args[index] != "--":
        name = args[index]
        if name in flags and flags[name] not in found:
            found[flags[name]] = True
            index += 1
            continue
        if name not in known or known[name] in found or index + 1 >= len(args) \
                or args[index + 1].startswith("-"):
            return None
        found[known[name]] = args[index + 1]
        index += 2
    return found, args[index:]


def _repo_value(value: str | None) -> bool:
    """True unless click's ``Path(file_okay=False)`` would refuse *value* (an existing file)."""
    return value is None or not os.path.isfile(value)


def _plain_list(args: list[str]) -> dict[str, Any] | None:
    parsed = _options(args, LIST_OPTIONS, {"--json": "as_json"})
    if parsed is None or parsed[1]:
        return None
    found = parsed[0]
    limit = found.get("limit", "20")
    if not (limit.isascii() and limit.isdigit() and len(limit) <= 6) \
            or not LIST_LIMIT[0] <= int(limit) <= LIST_LIMIT[1]:
        return None
    if found.get("run_type", RUN_TYPES[0]) not in RUN_TYPES \
            or found.get("status", RunStatus.OK.value) not in {s.value for s in RunStatus} \
            or not _repo_value(found.get("repo")):
        return None
    return {"run_type": found.get("run_type"), "status": found.get("status"),
            "limit": int(limit), "as_json": found.get("as_json", False),
            "repo": found.get("repo")}


def _plain_exec(args: list[str]) -> dict[str, Any] | None:
    parsed = _options(args, EXEC_OPTIONS, {})
    if parsed is None or not parsed[1] or parsed[1][0].startswith("-"):
        return None
    found, (subtype, *rest) = parsed
    if rest[:1] == ["--"]:
        command = rest[1:]
    elif any(arg.startswith("-") for arg in rest):
        return None  # click matches options among the command's words
    else:
        command = rest
    timeout = found.get("timeout")
    if not command or not _repo_value(found.get("repo")) or (
            timeout is not None and not _simple_number(timeout)):
        return None
    return {"subtype": subtype, "command": tuple(command), "summary": found.get("summary"),
            "timeout": float(timeout) if timeout is not None else None,
            "repo": found.get("repo")}


def _simple_number(text: str) -> bool:
    whole, _, fraction = text.partition(".")
    return whole.isascii() and whole.isdigit() and (not fraction or
                                                    (fraction.isascii() and fraction.isdigit()))


def plain_command(argv: list[str]) -> tuple[str, dict[str, Any]] | None:
    """("list" or "exec", its arguments) for a plain form of those commands; else None."""
    if argv[:2] == ["runs", "list"]:
        found = _plain_list(argv[2:])
        return ("list", found) if found is not None else None
    if argv[:1] == ["exec"]:
        found = _plain_exec(argv[1:])
        return ("exec", found) if found is not None else None
    return None


def main() -> Any:
    """The console script: a plain ``exec``/``runs list`` here, anything else with click."""
    plain = plain_command(sys.argv[1:])
    if plain is None:
        from controlplane.cli import main as click_main

        return click_main()
    _run_plain(*plain)


def _run_plain(name: str, arguments: dict[str, Any]) -> NoReturn:
    """What click's standalone mode does around a command, for the plain forms."""
    try:
        if name == "exec":
            exec_run(**arguments)
        runs_list(**arguments)
    except SystemExit as done:
        if name == "exec" and isinstance(done.code, int | None):
            exit_without_teardown(done.code or 0)
        raise
    except CommandFailed as exc:
        _fail(str(exc))
    except (_ledger_write_error(), OSError) as exc:  # evaluated only if an error gets here
        if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
            _quiet_streams()  # stdout closed by `| head`: click exits 1, quietly
            sys.exit(1)
        _fail(one_line(exc))
    except (EOFError, KeyboardInterrupt):
        echo("", err=True)
        echo("Aborted!", err=True)
        sys.exit(1)
    exit_without_teardown(0)
    sys.exit(0)


WAL_LEFT_BYTES = 1 << 20  # an index WAL larger than this is checkpointed at exit
_index_wals: list[str] = []  # of the ledgers this command opened


def exit_without_teardown(code: int) -> None:
    """Exit as Python would (atexit handlers, then the standard streams flushed) but skip
    the interpreter's teardown; returns (the teardown follows) if a thread that is not a
    daemon still runs or an index's WAL has outgrown ``WAL_LEFT_BYTES``.

    The teardown closes the index's SQLite connection, whose WAL checkpoint fdatasyncs
    the WAL and the database: 5 to 60 ms of every exit on a busy disk, for a command that
    opened the index (``runs list`` through the ledger; an ``exec`` queues its run and opens
    it only to apply a full queue, ``index_queue``). Left open, the WAL
    stays as after a crash, which SQLite is made for: the next connection reads it back.
    Each process re-reads the whole WAL and SQLite restarts it only after a checkpoint seen
    by the same process, so the exit that finds it over 1 MiB (about 20 runs) checkpoints.
    """
    import atexit
    import threading

    if any(thread.is_alive() and not thread.daemon and thread is not threading.main_thread()
           for thread in threading.enumerate()):
        return
    if any(_size(wal) > WAL_LEFT_BYTES for wal in _index_wals):
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            os._exit(120)  # what Python exits with when flushing a standard stream fails
    os._exit(code)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _fail(message: str) -> NoReturn:
    say(f"controlplane: error: {message}", err=True)
    sys.exit(2)


class _Quiet:
    """click's PacifyFlushWrapper: a closed pipe's flush at exit raises nothing."""

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped

    def flush(self) -> None:
        try:
            self.wrapped.flush()
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.wrapped, attr)


def _quiet_streams() -> None:
    sys.stdout = _Quiet(sys.stdout)
    sys.stderr = _Quiet(sys.stderr)
