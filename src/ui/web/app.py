"""``create_app``: the Flask app serving one project's control plane (``ControlPlane`` on a
fresh Flask app, so there is one way to set it up)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask, g

from controlplane.core import settings as settings_module
from controlplane.core.events import default_bus
from controlplane.core.ledger import Ledger
from controlplane.core.run_tracker import set_default_project_root
from controlplane.ui.web import security
from controlplane.ui.web.extension import ControlPlane, shutdown
from controlplane.ui.web.state import local_path, state

MAX_BODY_BYTES = 1024 * 1024
log = logging.getLogger(__name__)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The app for the repository ``config["REPO"]`` (default: the one holding the cwd).

    Config keys: ``REPO``, ``TOKEN`` (default: the token file), ``TOOL_ENV`` (the
    environment tools run with), ``SETTINGS`` (flag-level settings), ``FEED``
    (follow other processes' runs; default True), ``TESTING``.
    """
    config = dict(config or {})
    app = Flask(__name__, static_folder=None)  # the extension's blueprint serves /static
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep declaration order
    app.config.update({k: v for k, v in config.items() if k.isupper()})

    root = Ledger.open(config.get("REPO")).root
    loaded = settings_module.values(root, config.get("SETTINGS"))
    for warning in settings_module.warnings(root):
        log.warning("%s", warning)
    ControlPlane(repo=root, settings=config.get("SETTINGS"), token=config.get("TOKEN"),
                 bus=default_bus() if loaded["bus"] == "memory" else None,
                 feed=config.get("FEED", True), tool_env=config.get("TOOL_ENV"),
                 ).init_app(app, whole_app=True)
    set_default_project_root(root)
    app.after_request(_name_the_worker)
    return app


def _name_the_worker(response):
    """Say which worker process answered (with ``--workers N`` there are several), to
    authenticated callers only: a stranger learns no pid."""
    authenticated = g.get("controlplane_auth")
    if authenticated is None and local_path() in security.OPEN_PATHS:
        authenticated = security.authenticate(state())  # /healthz is open to anyone
    if authenticated:
        response.headers["X-Controlplane-Worker"] = str(os.getpid())
    return response


def shutdown_app(app: Flask, graceful: bool = False) -> None:
    """Record every in-flight run (cancelled, or finished if *graceful*) and stop the feed."""
    shutdown(app, graceful=graceful)
    set_default_project_root(None)


def repo_from_env() -> Path:
    return Path(os.environ.get("CONTROLPLANE_REPO") or os.getcwd())
