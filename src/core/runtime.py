"""One ``Runtime`` per project: its actions, ledger, bus, executor and settings.

Whoever serves or scripts a project builds one (the Flask extension, the CLI, a
script) and owns it; nothing lives on process globals. ``submit`` is the one way
an action starts: the web routes, rerun and ``controlplane action`` all call it,
so validation, confirmation of destructive actions, prechecks and locks are
decided in one place.

```python
runtime = Runtime.build("/path/to/repo")
job = runtime.submit("/testing/run", {"path": "tests"}, actor={"kind": "cli", "name": "me"})
runtime.executor.wait(job.active.run_id)
runtime.close()
```

Thread-safe where its parts are (the executor, ledger and bus are).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controlplane.core import settings as settings_module
from controlplane.core.actions import (
    REGISTRY,
    Action,
    ActionContext,
    load_integrations,
    stored_params,
)
from controlplane.core.context import (
    current_runtime,
    reset_current_runtime,
    runtime_for,
    serve_root,
    set_current_runtime,
    stop_serving_root,
)
from controlplane.core.errors import ConfirmationRequired, NotFound
from controlplane.core.events import EventBus, bus_from_url
from controlplane.core.executor import Executor, Job
from controlplane.core.ledger import Ledger

__all__ = ["Runtime", "current_runtime", "runtime_for", "select_actions"]


def select_actions(actions: str | Iterable[str] | None) -> dict[str, Action]:
    """``"all"``, integration names (``["testing", "quality"]``), action paths, or None."""
    if actions is None:
        return {}
    load_integrations()
    if actions == "all":
        return dict(REGISTRY)
    wanted = {actions} if isinstance(actions, str) else set(actions)
    chosen = {path: a for path, a in REGISTRY.items()
              if a.integration in wanted or path in wanted}
    unknown = wanted - {a.integration for a in chosen.values()} - set(chosen)
    if unknown:
        raise ValueError(f"no such integration or action: {', '.join(sorted(unknown))}")
    return chosen


@dataclass
class Runtime:
    """The project's control plane without any web framework."""

    ledger: Ledger
    bus: EventBus
    executor: Executor
    settings: dict[str, Any]
    actions: Mapping[str, Action] = field(default_factory=dict)
    token: str | None = None  # the web layer's access token (set by the Flask extension)
    tool_env: Mapping[str, str] | None = None  # environment for tools (tests give their PATH)
    feed: Any = None  # a LedgerFeed following other processes' runs, when started
    extra: dict[str, Any] = field(default_factory=dict)
    set_up: bool = False  # True once served: the action table is final
    # who is acting, asked when a run starts without an explicit actor (the Flask extension
    # answers with its ``authorize(request)``, so a host route's run records the host's user)
    actor_provider: Callable[[], dict[str, Any] | None] | None = None

    def current_actor(self) -> dict[str, Any] | None:
        """The actor the provider names for this context, or None (never raises)."""
        if self.actor_provider is None:
            return None
        try:
            actor = self.actor_provider()
        except Exception:
            return None
        return actor if isinstance(actor, dict) and actor.get("name") else None

    @classmethod
    def build(cls, repo: str | os.PathLike[str] | None = None, *,
              settings: Mapping[str, Any] | None = None,
              actions: str | Iterable[str] | None = "all",
              bus: EventBus | None = None, tool_env: Mapping[str, str] | None = None,
              feed: bool = False) -> Runtime:
        """Open the project holding *repo* (default: the cwd) with its effective settings.

        *settings* are flag-level values; *bus* defaults to a bus of this runtime's own
        (or the shared backend the settings name); *feed* follows other processes' runs.
        """
        ledger = Ledger.open(repo)
        loaded = settings_module.values(ledger.root, dict(settings or {}))
        if bus is None:
            bus, owned = bus_from_url(loaded["bus"]), True  # a process default outlives it
        else:
            owned = False
        from controlplane.core.coordination import coordinator_for

        executor = Executor(bus, limit=loaded["executor_limit"],
                            coordinator=coordinator_for(loaded["bus"], loaded["executor_limit"],
                                                    ledger.scp_dir / "locks"))
        runtime = cls(ledger=ledger, bus=bus, executor=executor, settings=loaded,
                      actions=select_actions(actions), tool_env=tool_env)
        runtime.extra["owns_bus"] = owned
        if feed:
            from controlplane.core.ledger.feed import LedgerFeed

            runtime.feed = LedgerFeed(ledger, bus).start()
        serve_root(ledger.root, runtime)
        return runtime

    @property
    def root(self) -> Path:
        return self.ledger.root

    def register(self, *actions: Action) -> None:
        """Serve more actions; only before setup ends (as Flask refuses late routes)."""
        if self.set_up:
            raise RuntimeError(f"register() after setup: {', '.join(a.path for a in actions)} "
                               "would be listed but not served; register before the app "
                               "is built")
        table = dict(self.actions)
        for action in actions:
            if table.get(action.path, action) is not action:
                raise ValueError(f"action {action.path} declared twice")
            table[action.path] = action
        self.actions = table

    # -- the one way an action starts -----------------------------------------------

    def action(self, path: str) -> Action:
        """The declaration served at *path*; NotFound if this runtime does not serve it."""
        found = self.actions.get(path)
        if found is None:
            raise NotFound(f"no action {path}")
        return found

    def submit(self, action: Action | str, params: Mapping[str, Any], *,
               actor: dict[str, str], confirm: bool = False, rerun_of: str | None = None,
               route: str | None = None) -> Job:
        """Validate, confirm, precheck, lock and queue one run of *action*.

        Raises InvalidInput (naming every bad field), ConfirmationRequired for a
        destructive action without *confirm*, the precheck's refusal, or
        RunInProgress; a refusal records nothing. *route* is the concrete path
        (``<name>`` filled in) used for the lock; default the action's path.
        """
        declared = self.action(action) if isinstance(action, str) else action
        validated = declared.validate(params, self.root)
        if declared.destructive and not confirm:
            what = f"rerun of {rerun_of}" if rerun_of else declared.path
            raise ConfirmationRequired(f"{what} is destructive ({declared.title}): "
                                       'send "confirm": true')
        if declared.precheck is not None:
            declared.precheck(self.root, validated)
        from controlplane.core.run_tracker import open_run

        active = open_run(declared.run_type, declared.subtype, summary=declared.title,
                          project_root=self.root, bus=self.bus,
                          params=stored_params(validated), actor=actor, rerun_of=rerun_of)
        active.run.action = declared.path
        context = ActionContext(project_root=self.root, run=active, env=self.tool_env,
                                timeout=self.settings.get("action_timeout"),
                                settings=self.settings)

        service = declared.service
        if not declared.writes_for(validated):  # checks never write: the guard tells if one did
            from controlplane.core.integrations._read_only import read_only

            service = read_only(service)

        def call_service(run: Any) -> Any:
            return service(context, validated)

        lock = declared.lock_for(validated, route or declared.path)
        return self.executor.submit(active, call_service, lock)

    # -- context and life cycle -----------------------------------------------------

    @contextmanager
    def activated(self) -> Iterator[Runtime]:
        """Make this runtime current (``tracked_run`` records to it) inside the block."""
        token = set_current_runtime(self)
        try:
            yield self
        finally:
            reset_current_runtime(token)

    def activate(self) -> Any:
        """Make this runtime current; returns the token for ``deactivate``."""
        return set_current_runtime(self)

    @staticmethod
    def deactivate(token: Any) -> None:
        reset_current_runtime(token)

    def close(self, graceful: bool = False) -> None:
        """Record every in-flight run (cancelled, or finished if *graceful*); stop followers."""
        self.executor.shutdown(graceful=graceful)
        if self.feed is not None:
            self.feed.stop()
        for name in ("auto_sync", "alerter", "heartbeat", "simulator"):
            part = self.extra.pop(name, None)
            if part is not None:
                (part.stop if hasattr(part, "stop") else part.close)()
        stop_serving_root(self.root, self)
        if self.extra.pop("owns_bus", False):
            self.bus.close()

