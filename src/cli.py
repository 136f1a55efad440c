"""The ``controlplane`` command. Errors are one line on stderr and exit code 2.

Text from the ledger, the journal, the bus or ingest goes through :func:`say`: only
SGR colours survive, and only on a terminal (``exec`` shows its own child's output as is).
"""

from __future__ import annotations

import errno
import importlib
import json
import sys
import time
from typing import Any

import click

from controlplane import cli_fast
from controlplane.cli_fast import CommandFailed, expected_errors, one_line, say
from controlplane.core.ledger import Ledger, LedgerWriteError
from controlplane.core.ledger.journal import JournalWriteError
from controlplane.core.runs import RUN_TYPES, RunStatus, names_run

__all__ = ["Fail", "expected_errors", "main", "one_line", "open_ledger", "say"]


class Fail(click.ClickException):
    """A one-line error, exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        say(f"controlplane: error: {self.format_message()}", err=True)


def open_ledger(repo: str | None, writing: bool = False) -> Ledger:
    """:func:`cli_fast.open_ledger`, failing as :class:`Fail`."""
    try:
        return cli_fast.open_ledger(repo, writing)
    except CommandFailed as exc:
        raise Fail(str(exc)) from None


LAZY_COMMANDS = {"users": ("controlplane.cli_users", "users_group"),
                 "action": ("controlplane.cli_action", "action_command")}


class LazyGroup(click.Group):
    """Subcommands defined in other modules, imported when named (pydantic and the rest
    would otherwise cost every command's start-up)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS and name not in self.commands:
            module, attribute = LAZY_COMMANDS[name]
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        """Any command: a write the disk refused is one line and exit 2, not a traceback."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise  # click's own handling (stdout closed by `| head`)
        except CommandFailed as exc:  # the bodies shared with the plain forms (cli_fast)
            raise Fail(str(exc)) from None
        except (LedgerWriteError, OSError) as exc:
            raise Fail(one_line(exc)) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="solution-control-plane")
def main() -> None:
    """Solution Control Plane: every action is a Run, recorded in git and shown live."""


repo_option = click.option("--repo", type=click.Path(file_okay=False), default=None,
                           help="Project repository (default: the one holding the current dir).")


# -- exec ------------------------------------------------------------------


@main.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("subtype")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--summary", default=None, help="One line for humans (default: the command).")
@click.option("--timeout", type=float, default=None, help="Seconds before the command is killed.")
@repo_option
def exec_command(subtype: str, command: tuple[str, ...], summary: str | None,
                 timeout: float | None, repo: str | None) -> None:
    """Run COMMAND as a Run of SUBTYPE (e.g. `exec test:nightly -- pytest -q`).

    Exits with the command's code (128+n if signal n killed it). SIGTERM or SIGHUP to
    exec is passed on to the command's process group and records the run cancelled.
    """
    cli_fast.exec_run(subtype, command, summary, timeout, repo)


# -- runs ------------------------------------------------------------------


@main.group()
def runs() -> None:
    """List, show and follow runs."""


@runs.command("list")
@click.option("--type", "run_type", type=click.Choice(RUN_TYPES), default=None)
@click.option("--status", type=click.Choice([s.value for s in RunStatus]), default=None)
@click.option("--limit", type=click.IntRange(*cli_fast.LIST_LIMIT), default=20)
@click.option("--json", "as_json", is_flag=True, help="One JSON array of run.json objects.")
@repo_option
def runs_list(run_type: str | None, status: str | None, limit: int, as_json: bool,
              repo: str | None) -> None:
    """Newest runs first, in-flight ones included."""
    cli_fast.runs_list(run_type, status, limit, as_json, repo)


def run_of(ledger: Ledger, text: str) -> dict[str, Any]:
    """The run *text* names: its id, or the start of one (its time), or its tail (the
    dashboard's ``…3f9a0c1e``) when only one run has it."""
    run = ledger.get(text)
    if run is not None:
        return run
    part = text.lstrip("…")
    in_flight = [r["run_id"] for r in ledger.active() if names_run(part, r["run_id"])]
    found = sorted({*in_flight, *(ledger.index.ids_like(part) if part else [])}, reverse=True)
    if len(found) == 1 and (run := ledger.get(found[0])) is not None:
        return run
    if len(found) > 1:
        listed = ", ".join(found[:5]) + (", …" if len(found) > 5 else "")
        raise Fail(f"{text} names more than one run ({listed}): give more of its id")
    raise Fail(f"no run {text} in this project (`controlplane runs list` shows the run ids)")


@runs.command("show")
@click.argument("run_id")
@click.option("--events", "with_events", is_flag=True, help="Include the run's events.")
@repo_option
def runs_show(run_id: str, with_events: bool, repo: str | None) -> None:
    """A run's run.json (RUN_ID: the id, its start or its last 8 characters)."""
    ledger = open_ledger(repo)
    run = run_of(ledger, run_id)
    if with_events:
        run = {**run, "events": ledger.events(run["run_id"])}
    say(json.dumps(run, indent=1))


@runs.command("tail")
@click.argument("run_id")
@click.option("--interval", type=float, default=0.2, hidden=True)
@repo_option
def runs_tail(run_id: str, interval: float, repo: str | None) -> None:
    """Print a run's output, following it while it runs."""
    ledger = open_ledger(repo)
    run_id = run_of(ledger, run_id)["run_id"]
    seq = 0
    while True:
        in_flight = ledger.journal.meta_path(run_id).exists()
        for event in ledger.events(run_id, after=seq):
            seq = event["seq"]
            if event.get("type") == "run:output":
                data = event.get("data") or {}
                say(str(data.get("line", "")), err=data.get("stream") == "stderr")
        if not in_flight:
            break
        time.sleep(interval)  # following a file another process appends to
    final = ledger.get(run_id) or {}
    say(f"controlplane: run {run_id} {final.get('status', 'gone')}", err=True)


# -- ledger ----------------------------------------------------------------


@main.group("ledger")
def ledger_group() -> None:
    """Check and repair the ledger."""


@ledger_group.command("doctor")
@repo_option
def ledger_doctor(repo: str | None) -> None:
    """git fsck, interrupted runs, unreadable run files, index rebuild."""
    from controlplane.core.ledger.doctor import diagnose

    ledger = open_ledger(repo, writing=True)
    report = diagnose(ledger)
    for line in report.lines():
        say(line)
    if not report.healthy:
        sys.exit(1)


# -- ledger sync, chat, demo ---------------------------------------------


def _tracked_sync(repo: str | None, subtype: str, work) -> dict:
    """Run a ledger sync as a Run of *subtype* (a person asked for it); Fail on errors."""
    from controlplane.core.ledger.sync import SyncError
    from controlplane.core.run_tracker import default_actor, tracked_run

    ledger = open_ledger(repo, writing=True)
    try:
        with tracked_run("git", subtype, summary=subtype.replace("git:", "").replace("_", " "),
                         project_root=ledger.root, actor=default_actor("cli")) as run:
            try:
                report = work(ledger).to_dict()
            except (SyncError, ValueError) as exc:
                run.fail(getattr(exc, "code", "invalid_input"), str(exc))
                report = None
            else:
                run.result = report
    except JournalWriteError as exc:  # the run did not start
        raise Fail(str(exc)) from None
    except LedgerWriteError as exc:
        raise Fail(f"run {run.run_id} {run.run.status}, not recorded: {exc}") from None
    if report is None:  # run.fail set the run's (redacted) error
        raise Fail((run.run.error or {}).get("message", "failed"))
    return report


@ledger_group.command("push")
@click.argument("remote", required=False)
@click.option("--include-unpublished", is_flag=True,
              help="Also push run tags whose code commit is not on the remote (publishes it).")
@repo_option
def ledger_push(remote: str | None, include_unpublished: bool, repo: str | None) -> None:
    """Push the ledger and run tags to REMOTE (default: the ledger_remote setting)."""
    from controlplane.core.ledger.sync import LedgerSync

    def work(ledger: Ledger):
        sync = LedgerSync(ledger, remote or _setting(ledger, "ledger_remote"))
        return sync.push(include_unpublished=include_unpublished)

    report = _tracked_sync(repo, "git:ledger_push", work)
    click.echo(f"pushed to {report['remote']}: {report['tags_pushed']} run tags; "
               f"{report['tags_held_count']} held (their commits are not on the remote); "
               f"{report['pulled_runs']} runs pulled first")


@ledger_group.command("pull")
@click.argument("remote", required=False)
@click.option("--auto", "every", type=click.IntRange(1, 86_400), default=None, metavar="N",
              help="Keep pulling every N seconds until Ctrl-C (not recorded as runs).")
@repo_option
def ledger_pull(remote: str | None, every: int | None, repo: str | None) -> None:
    """Fetch and merge the ledger of REMOTE: a pull never drops a local run."""
    from controlplane.core.ledger.sync import LedgerSync

    if every:
        ledger = open_ledger(repo)
        _pull_every(LedgerSync(ledger, remote or _setting(ledger, "ledger_remote")), every)
        return

    def work(ledger: Ledger):
        return LedgerSync(ledger, remote or _setting(ledger, "ledger_remote")).pull()

    report = _tracked_sync(repo, "git:ledger_pull", work)
    click.echo(f"pulled from {report['remote']}: {report['pulled_runs']} new runs"
               + (" (merged)" if report["merged"] else ""))
    if report.get("warning"):  # remote deletions/edits not applied (append-only)
        click.echo(f"controlplane: warning: {report['warning']}", err=True)


def _pull_every(sync: Any, seconds: int) -> None:
    """Pull now and every *seconds* until Ctrl-C; one line per pull that brought runs."""
    from controlplane.core.ledger.sync import SyncError

    click.echo(f"pulling the ledger from {sync.remote} every {seconds} s (Ctrl-C stops)")
    try:
        while True:
            try:
                report = sync.pull().to_dict()
            except (SyncError, OSError) as exc:
                say(f"controlplane: pull failed: {exc}", err=True)
            else:
                if report["pulled_runs"] or report["merged"]:
                    click.echo(f"{time.strftime('%H:%M:%S')} pulled {report['pulled_runs']} "
                               f"new runs from {report['remote']}")
                if report.get("warning"):
                    click.echo(f"controlplane: warning: {report['warning']}", err=True)
            time.sleep(seconds)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)


def _setting(ledger: Ledger, name: str):
    from controlplane.core import settings as settings_module

    return settings_module.values(ledger.root)[name]


@main.group()
def chat() -> None:
    """Post to the chat (messages live in the ledger, like runs)."""


@chat.command("post")
@click.argument("text")
@repo_option
def chat_post(text: str, repo: str | None) -> None:
    """Post TEXT; mention runs as @run:<run_id>."""
    from controlplane.core.chat import MessageNotStored, post_message
    from controlplane.core.errors import InvalidInput
    from controlplane.core.events import default_bus
    from controlplane.core.run_tracker import default_actor

    ledger = open_ledger(repo, writing=True)
    try:
        message = post_message(ledger, default_bus(), text, default_actor("cli"))
    except InvalidInput as exc:
        raise Fail("; ".join(f"{k}: {v}" for k, v in exc.fields.items())) from None
    except MessageNotStored as exc:
        raise Fail(exc.message) from None
    click.echo(message["message_id"])


@main.command("demo")
@click.option("--runs", type=click.IntRange(1, 100_000), default=200)
@click.option("--days", type=click.IntRange(1, 3650), default=42)
@repo_option
def demo(runs: int, days: int, repo: str | None) -> None:
    """Fill this (throwaway) repository's ledger with realistic runs over past weeks."""
    from controlplane.core.demo import fill

    ledger = open_ledger(repo, writing=True)
    recorded = fill(ledger, runs=runs, days=days)
    click.echo(f"recorded {len(recorded)} demo runs in {ledger.root}")


# -- serve and config ------------------------------------------------------


def _repo_root(repo: str | None) -> tuple[Any, Any]:
    """(work tree, git dir) of *repo* without opening its ledger; Fail outside a repository."""
    from controlplane.core.ledger import find_git_dir

    try:
        return find_git_dir(repo)
    except expected_errors() as exc:
        raise Fail(str(exc)) from None


def _read_token_file(path: str) -> str:
    try:
        token = open(path, encoding="utf-8").read().strip()  # noqa: SIM115 - read and closed
    except (OSError, UnicodeDecodeError) as exc:
        raise Fail(f"cannot read the token file {path}: {exc}") from None
    if not token:
        raise Fail(f"the token file {path} is empty")
    return token


@main.command("serve")
@click.option("--host", default=None, help="Address to listen on (default: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default: 8000).")
@click.option("--threads", type=int, default=None,
              help="Server threads: the cap on open streams plus requests (default: 512).")
@click.option("--token-file", type=click.Path(dir_okay=False), default=None,
              help="Read the access token from this file (like CONTROLPLANE_TOKEN).")
@click.option("--open", "open_browser", is_flag=True, help="Open the login URL in a browser.")
@click.option("--graceful", is_flag=True,
              help="On stop, let in-flight runs finish (else they are cancelled).")
@click.option("--workers", type=click.IntRange(1, 64), default=1,
              help="Worker processes; more than one needs --bus redis://… (shared bus).")
@click.option("--bus", default=None, help="Event bus: memory (default) or redis://host:port/db.")
@click.option("--auto", "auto_sync", type=click.IntRange(0, 86_400), default=None,
              help="Pull the ledger from its remote every N seconds (not recorded as runs).")
@click.option("--simulator", is_flag=True,
              help="Serve POST /api/simulate: live demo runs, kept local (never pushed).")
@repo_option
def serve(host: str | None, port: int | None, threads: int | None, token_file: str | None,
          open_browser: bool, graceful: bool, workers: int, bus: str | None,
          auto_sync: int | None, simulator: bool, repo: str | None) -> None:
    """Serve the dashboard and API (gunicorn, one worker); prints the login URL."""
    from controlplane.core import settings as settings_module
    from controlplane.ui.web import server
    from controlplane.ui.web.security import TOKEN_FILE, token_from_file

    root, git_dir = _repo_root(repo)
    flags = {"host": host, "port": port, "threads": threads, "bus": bus, "auto_sync": auto_sync,
             "simulator": simulator or None}
    explicit = _read_token_file(token_file) if token_file else None
    try:
        values = settings_module.values(root, {**flags, "token": explicit})
    except settings_module.SettingsError as exc:
        raise Fail(str(exc)) from None
    _warn_refused_settings(root)
    host, port, threads = values["host"], values["port"], values["threads"]
    if not 1 <= port <= 65535:
        raise Fail(f"port {port} is not between 1 and 65535")
    if threads < 1:
        raise Fail(f"threads must be at least 1, not {threads}")
    if workers > 1 and values["bus"] == "memory":
        raise Fail("--workers above 1 needs a shared bus: --bus redis://127.0.0.1:6379/0 "
                   "(or CONTROLPLANE_BUS)")
    token = values["token"]
    if not server.is_loopback(host) and not token:
        raise Fail(f"refusing to listen on {host} (not loopback) without an explicit token: "
                   "set CONTROLPLANE_TOKEN or pass --token-file")
    try:
        token = token or token_from_file(git_dir / "scp" / TOKEN_FILE)
        server.check_bindable(host, port)
    except OSError as exc:
        what_to_do = ("; something already listens there: pass another --port"
                      if exc.errno == errno.EADDRINUSE else "")
        raise Fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}{what_to_do}"
                   ) from None
    server.serve(server.ServeOptions(
        root=root, host=host, port=port, threads=threads, token=token, graceful=graceful,
        workers=workers,
        settings={k: v for k, v in flags.items() if v is not None}, open_browser=open_browser))


@main.command("config")
@repo_option
def config_command(repo: str | None) -> None:
    """Print the effective settings and where each came from (secrets masked)."""
    from controlplane.core import settings as settings_module

    root, _ = _repo_root(repo)
    try:
        lines = settings_module.describe(settings_module.load(root))
    except settings_module.SettingsError as exc:
        raise Fail(str(exc)) from None
    for line in lines:
        say(line)
    _warn_refused_settings(root)


def _warn_refused_settings(root: Any) -> None:
    """One stderr line per setting refused from the project file."""
    from controlplane.core import settings as settings_module

    for warning in settings_module.warnings(root):
        say(f"controlplane: warning: {warning}", err=True)
