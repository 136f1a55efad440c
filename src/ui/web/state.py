"""Per-app state, kept in ``app.extensions["controlplane"]`` (never on module globals)."""

from __future__ import annotations

from flask import current_app

from controlplane.core.runtime import Runtime


ControlPlane = Runtime  # the per-app state is the core Runtime (old name kept for imports)


def state() -> Runtime:
    """The runtime of the app handling this request."""
    return current_app.extensions["controlplane"]
