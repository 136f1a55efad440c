"""``ControlPlane``: the control plane as a Flask extension, mountable in any Flask app.

```python
app = Flask(__name__)
app.config["PROJECT_ROOT"] = "/srv/project"
ControlPlane(app, url_prefix="/ops", authorize=lambda request: {"kind": "web", "name": "ana"})
```

It registers one parent blueprint (``controlplane``) holding the runs API, the
event stream (SSE and WebSocket), chat, the dashboard pages, login/logout and the
chosen actions, under ``url_prefix``. The security gate, headers and error pages
are the blueprint's: the host app's own routes are left alone. The app's state is
the core :class:`~controlplane.core.runtime.Runtime` in ``app.extensions["controlplane"]``;
it is made current for every request of the app, so the host's ``@run_tracked``
routes record to it and are announced on its ``/api/events``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Request, g, has_request_context, request

from controlplane.core.alerts import Alerter, alerts_for, page_base
from controlplane.core.events import EventBus
from controlplane.core.ledger.sync import AutoSync
from controlplane.core.runtime import Runtime
from controlplane.ui.web import (
    api_backups,
    api_chat,
    api_events,
    api_ops,
    api_runs,
    api_simulate,
    errors,
    ops_forms,
    pages,
    pwa,
    routes,
    run_forms,
    security,
)
from controlplane.ui.web.state import PREFIX_KEY

log = logging.getLogger(__name__)

Authorize = Callable[[Request], "dict[str, str] | bool | None"]
WEB_DIR = Path(__file__).parent
SOCK_OPTIONS = {"ping_interval": 25}


class ControlPlane:
    """The extension: ``ControlPlane(app, ...)``, or ``cp = ControlPlane(...)`` then
    ``cp.init_app(app)`` (one ``ControlPlane`` may set up several apps, each its own runtime).

    - *repo*: the project (default ``app.config["PROJECT_ROOT"]``, then the cwd).
    - *url_prefix*: where everything is mounted (``""`` or e.g. ``"/ops"``).
    - *actions*: ``"all"``, integration names or action paths, or None (no actions).
    - *authorize*: ``authorize(request)`` → actor dict (e.g. ``{"kind": "web", "name": …}``),
      None (401) or False (403): the host's login decides; default the built-in tokens.
    - *settings*: flag-level settings; *token*: the access token (default the token file);
      *bus*: an event bus (default one of this app's own); *feed*: follow other
      processes' runs of the project; *tool_env*: the environment tools run with.
    """

    def __init__(self, app: Flask | None = None, repo: str | os.PathLike[str] | None = None,
                 url_prefix: str = "", actions: str | Iterable[str] | None = "all",
                 authorize: Authorize | None = None, settings: Mapping[str, Any] | None = None,
                 token: str | None = None, bus: EventBus | None = None, feed: bool = True,
                 tool_env: Mapping[str, str] | None = None) -> None:
        if url_prefix and (not url_prefix.startswith("/") or url_prefix.endswith("/")):
            raise ValueError(f"url_prefix {url_prefix!r} must start with / and not end with /")
        self.repo, self.url_prefix, self.actions = repo, url_prefix, actions
        self.authorize, self.settings, self.token = authorize, settings, token
        self.bus, self.feed, self.tool_env = bus, feed, tool_env
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, *, whole_app: bool = False) -> Runtime:
        """Build this app's runtime and register the blueprint; returns the runtime.

        *whole_app* (``create_app``): every route of *app* is ours, so the gate, headers
        and error pages also cover unmatched URLs.
        """
        if "controlplane" in app.extensions:
            raise RuntimeError("ControlPlane is already set up on this app")
        repo = self.repo or app.config.get("PROJECT_ROOT") or None
        plane = Runtime.build(repo, settings=self.settings, actions=self.actions, bus=self.bus,
                              tool_env=self.tool_env, feed=self.feed)
        try:
            plane.token = self.token or security.load_or_create_token(plane.ledger,
                                                                      plane.settings)
            plane.extra[PREFIX_KEY] = self.url_prefix
            if self.authorize is not None:
                plane.extra[security.AUTHORIZE_KEY] = self.authorize
                plane.actor_provider = request_actor_from(self.authorize)
            start_followers(plane)
            app.extensions["controlplane"] = plane
            app.config.setdefault("SOCK_SERVER_OPTIONS", SOCK_OPTIONS)
            app.register_blueprint(build_blueprint(app, plane, whole_app=whole_app),
                                   url_prefix=self.url_prefix or None)
        except BaseException:
            app.extensions.pop("controlplane", None)
            plane.close()
            raise
        plane.set_up = True  # the action table is final: a late register() is refused
        app.before_request(activate_runtime)
        app.teardown_request(deactivate_runtime)
        return plane


def request_actor_from(authorize: Authorize) -> Callable[[], dict[str, Any] | None]:
    """The host's logged-in user as a run's actor, inside a request (its own routes too)."""

    def actor() -> dict[str, Any] | None:
        if not has_request_context():
            return None
        found = authorize(request)
        return found if isinstance(found, dict) else None

    return actor


def start_followers(plane: Runtime) -> None:
    """This worker's heartbeat; auto sync and alerts, when the project's settings ask."""
    api_ops.start_heartbeat(plane)
    if plane.settings["auto_sync"] > 0:
        plane.extra["auto_sync"] = AutoSync(plane.ledger, plane.settings["ledger_remote"],
                                            plane.settings["auto_sync"]).start()
    alerts = alerts_for(plane.root)
    if alerts is not None:
        plane.extra["alerter"] = Alerter(alerts, plane.bus, page_base(
            plane.settings, plane.extra.get(PREFIX_KEY, "")))


def build_blueprint(app: Flask, plane: Runtime, *, whole_app: bool) -> Blueprint:
    """The parent blueprint: every route of ours nested in it, gated by it."""
    parent = Blueprint("controlplane", __name__, static_folder=str(WEB_DIR / "static"),
                       static_url_path="/static", template_folder=str(WEB_DIR / "templates"))
    api_backups.install(app, parent, whole_app=whole_app)  # its body limit: before the gate
    security.install(app, parent, whole_app=whole_app)
    errors.init_app(parent)
    if whole_app:
        errors.init_app(app)
    for target in ((app, parent) if whole_app else (parent,)):
        target.context_processor(pages.navigation)
    parent.add_app_template_filter(pages.format_json, "cp_json")  # macros have no context
    parent.add_app_template_test(pages.in_flight, "cp_in_flight")
    for child in (api_runs.bp, api_chat.bp, api_events.bp, api_ops.bp, pages.bp, pwa.bp,
                  run_forms.bp, ops_forms.bp, api_simulate.bp,
                  *routes.build_blueprints(dict(plane.actions))):
        parent.register_blueprint(child)
    return parent


def activate_runtime() -> None:
    """Make the app's runtime current for this request (``tracked_run`` records to it)."""
    from flask import current_app

    g.controlplane_runtime_token = current_app.extensions["controlplane"].activate()


def deactivate_runtime(exc: BaseException | None = None) -> None:
    token = g.pop("controlplane_runtime_token", None)
    if token is not None:
        with contextlib.suppress(ValueError):  # reset from another context: nothing to undo
            Runtime.deactivate(token)


def shutdown(app: Flask, graceful: bool = False) -> None:
    """Record *app*'s in-flight runs (cancelled, or finished if *graceful*); stop followers."""
    plane: Runtime | None = app.extensions.get("controlplane")
    if plane is not None:
        plane.close(graceful=graceful)
