"""The web layer: app factory, route factory, APIs, dashboard. Depends on the core only."""

from controlplane.ui.web.app import create_app

__all__ = ["create_app"]
