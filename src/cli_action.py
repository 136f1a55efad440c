"""``controlplane action PATH``: run any declared action from a shell, as the API would.

```
controlplane action --list
controlplane action /testing/run --help          # its parameters, from its schema
controlplane action /testing/run --param path=tests
controlplane action /backup/wipe --param name=old --confirm
controlplane action /vault/init --secret-env passphrase=VAULT_PASS
```

The run goes through ``Runtime.submit`` (the web layer's start path): the same
validation, confirmation, prechecks and locks (a file lock under ``.git/scp/locks``,
so an action already running in the server answers the same 409). Its output is
streamed; the exit code is 0 for ``ok``, 1 for ``failed``/``cancelled``/
``interrupted`` and 2 when the action was refused before it started.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click
from pydantic import BaseModel

from controlplane.cli import Fail, repo_option, say
from controlplane.core.errors import ControlPlaneError, InvalidInput, RunInProgress
from controlplane.core.run_tracker import default_actor


def parse_param(text: str) -> tuple[str, Any]:
    """``k=v``: *v* as JSON when it parses, else the plain string (DECISIONS §10)."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"{text!r} is not name=value", param_hint="--param")
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


def secret_from_env(text: str) -> tuple[str, str]:
    """``field=VAR``: the secret is read from the environment variable, never from argv."""
    name, sep, var = text.partition("=")
    if not sep or not name or not var:
        raise click.BadParameter(f"{text!r} is not field=VARIABLE", param_hint="--secret-env")
    if var not in os.environ:
        raise click.BadParameter(f"the environment has no {var}", param_hint="--secret-env")
    return name, os.environ[var]


def describe(model: type[BaseModel]) -> list[str]:
    """One line per parameter: name, type, required or default, description."""
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    lines = []
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type") or "/".join(
            str(p.get("type", "?")) for p in prop.get("anyOf", [])) or "value"
        note = "required" if name in required else f"default {json.dumps(prop.get('default'))}"
        text = prop.get("description") or prop.get("title") or ""
        lines.append(f"  {name} ({kind}, {note}){': ' + text if text else ''}")
    return lines or ["  (no parameters)"]


@click.command("action", context_settings={"help_option_names": []})
@click.argument("path", required=False)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="A parameter; VALUE is read as JSON when it parses, else as a string.")
@click.option("--secret-env", "secrets", multiple=True, metavar="FIELD=VAR",
              help="A secret parameter read from environment variable VAR.")
@click.option("--confirm", is_flag=True, help="Confirm a destructive action.")
@click.option("--json", "as_json", is_flag=True, help="Print the final run.json.")
@click.option("--list", "list_actions", is_flag=True, help="List every action.")
@click.option("-h", "--help", "show_help", is_flag=True, help="This help, or PATH's parameters.")
@repo_option
def action_command(path: str | None, params: tuple[str, ...], secrets: tuple[str, ...],
                   confirm: bool, as_json: bool, list_actions: bool, show_help: bool,
                   repo: str | None) -> None:
    """Run the action served at PATH (e.g. /testing/run) as a recorded Run."""
    from controlplane.core.runtime import Runtime

    if path is None and (show_help or not list_actions):
        ctx = click.get_current_context()
        click.echo(ctx.get_help())
        return
    try:
        runtime = Runtime.build(repo)
    except (ControlPlaneError, ValueError, OSError) as exc:
        raise Fail(str(exc)) from None
    try:
        if list_actions:
            for declared in runtime.actions.values():
                mark = " (destructive: needs --confirm)" if declared.destructive else ""
                click.echo(f"{declared.path}  {declared.title}{mark}")
            return
        assert path is not None
        try:
            declared = runtime.action(path)
        except ControlPlaneError:
            raise Fail(f"no action {path}: `controlplane action --list` shows them") from None
        if show_help:
            click.echo(f"{declared.path}: {declared.title}"
                       + (" (destructive: needs --confirm)" if declared.destructive else ""))
            click.echo("parameters (--param NAME=VALUE; secrets with --secret-env):")
            for line in describe(declared.params):
                click.echo(line)
            return
        values = dict(parse_param(p) for p in params)
        values.update(secret_from_env(s) for s in secrets)
        raise SystemExit(_run(runtime, declared, values, confirm, as_json))
    finally:
        runtime.close()


def _run(runtime: Any, declared: Any, values: dict[str, Any], confirm: bool,
         as_json: bool) -> int:
    """Submit, stream the run's output, and return the exit code of its final status."""
    own: list[str] = []

    def echo_output(envelope: dict[str, Any]) -> None:
        if envelope["type"] == "run:output" and envelope.get("run_id") in own:
            data = envelope["data"]
            say(data["line"], err=data.get("stream") == "stderr")

    disconnect = runtime.bus.connect(echo_output)
    try:
        try:
            job = runtime.submit(declared, values, actor=default_actor("cli"), confirm=confirm)
        except InvalidInput as exc:
            fields = "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
            raise Fail(f"{declared.path}: invalid parameters ({fields})") from None
        except ControlPlaneError as exc:
            hint = " (pass --confirm)" if exc.status == 428 else ""
            if isinstance(exc, RunInProgress):
                hint = f": run {exc.run_id} holds it (`controlplane runs show {exc.run_id}`)"
            raise Fail(f"{declared.path}: {exc}{hint}") from None
        own.append(job.active.run_id)
        runtime.executor.wait(job.active.run_id)
    finally:
        disconnect()
    final = job.final or job.active.run.to_dict()
    if as_json:
        click.echo(json.dumps(final, indent=1))
    else:
        error = final.get("error") or {}
        tail = f": {error.get('message')}" if error.get("message") else ""
        say(f"run {final['run_id']} {final['status']}{tail}", err=final["status"] != "ok")
    return 0 if final["status"] == "ok" else 1
