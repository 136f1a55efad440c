"""``create_app``: the Flask app serving one project's control plane."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask, g, request

from controlplane.core import settings as settings_module
from controlplane.core.actions import load_integrations
from controlplane.core.alerts import Alerter, alerts_for
from controlplane.core.coordination import coordinator_for
from controlplane.core.events import default_bus, use_bus
from controlplane.core.executor import Executor
from controlplane.core.ledger import Ledger
from controlplane.core.ledger.feed import LedgerFeed
from controlplane.core.ledger.sync import AutoSync
from controlplane.core.run_tracker import set_default_project_root
from controlplane.ui.web import api_chat, api_events, api_runs, errors, pages, routes, security
from controlplane.ui.web.state import ControlPlane, state

MAX_BODY_BYTES = 1024 * 1024
log = logging.getLogger(__name__)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The app for the repository ``config["REPO"]`` (default: the one holding the cwd).

    Config keys: ``REPO``, ``TOKEN`` (default: the token file), ``TOOL_ENV`` (the
    environment tools run with), ``SETTINGS`` (flag-level settings), ``FEED``
    (follow other processes' runs; default True), ``TESTING``.
    """
    config = dict(config or {})
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    app.json.sort_keys = False  # keep declaration order (forms show fields as declared)
    app.config.update({k: v for k, v in config.items() if k.isupper()})

    ledger = Ledger.open(config.get("REPO"))
    set_default_project_root(ledger.root)
    loaded = settings_module.values(ledger.root, config.get("SETTINGS"))
    for warning in settings_module.warnings(ledger.root):
        log.warning("%s", warning)
    bus = use_bus(loaded["bus"]) if loaded["bus"] != "memory" else default_bus()
    coordinator = coordinator_for(loaded["bus"], loaded["executor_limit"])
    plane = ControlPlane(
        ledger=ledger, bus=bus,
        executor=Executor(bus, limit=loaded["executor_limit"], coordinator=coordinator),
        settings=loaded, token=config.get("TOKEN") or security.load_or_create_token(ledger,
                                                                                  loaded),
        tool_env=config.get("TOOL_ENV"),
    )
    if config.get("FEED", True):
        plane.feed = LedgerFeed(ledger, bus).start()
    if loaded["auto_sync"] > 0:
        plane.extra["auto_sync"] = AutoSync(ledger, loaded["ledger_remote"],
                                            loaded["auto_sync"]).start()
    alerts = alerts_for(ledger.root)
    if alerts is not None:
        plane.extra["alerter"] = Alerter(alerts, bus)
    app.extensions["controlplane"] = plane

    load_integrations()
    app.after_request(_name_the_worker)
    errors.init_app(app)
    security.init_app(app)
    api_runs.init_app(app)
    api_chat.init_app(app)
    api_events.init_app(app)
    routes.init_app(app)
    pages.init_app(app)
    return app


def _name_the_worker(response):
    """Say which worker process answered (with ``--workers N`` there are several), to
    authenticated callers only: a stranger learns no pid."""
    authenticated = g.get("controlplane_auth")
    if authenticated is None and request.path in security.OPEN_PATHS:
        authenticated = security.authenticate(state())  # /healthz is open to anyone
    if authenticated:
        response.headers["X-Controlplane-Worker"] = str(os.getpid())
    return response


def shutdown_app(app: Flask, graceful: bool = False) -> None:
    """Record every in-flight run (cancelled, or finished if *graceful*) and stop the feed."""
    plane: ControlPlane = app.extensions["controlplane"]
    plane.executor.shutdown(graceful=graceful)
    set_default_project_root(None)
    if plane.feed is not None:
        plane.feed.stop()
    if "auto_sync" in plane.extra:
        plane.extra.pop("auto_sync").stop()
    if "alerter" in plane.extra:
        plane.extra.pop("alerter").close()


def repo_from_env() -> Path:
    return Path(os.environ.get("CONTROLPLANE_REPO") or os.getcwd())
