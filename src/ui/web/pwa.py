"""The dashboard as an installable web app: its manifest, service worker and offline shell.

- ``GET /manifest.webmanifest``: name, icons, ``start_url`` and ``scope`` (the mount
  point, so ``/ops/`` under a prefix), ``display: standalone``, theme colours.
- ``GET /sw.js``: ``static/sw.js`` served from the mount point (not ``/static``) so its
  default scope covers every page; no ``Service-Worker-Allowed`` needed.
- ``GET /offline``: the shell the worker shows when a page cannot be fetched; it says
  it is offline and shows what the browser last saw (``static/js/offline.js``).

All three are behind the same login as the pages (the manifest link asks for
credentials). The worker never answers ``/api/*`` or ``/ws/*`` from its cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, send_from_directory, url_for

from controlplane.ui.web.state import base_url

STATIC_DIR = Path(__file__).parent / "static"
THEME_COLOR = "#0b5cad"  # the favicon's blue
BACKGROUND_COLOR = "#ffffff"
MANIFEST_TYPE = "application/manifest+json"

bp = Blueprint("pwa", __name__)


def static_url(filename: str) -> str:
    return url_for("controlplane.static", filename=filename)


def manifest() -> dict[str, Any]:
    """The web app manifest of this mount point."""
    home = base_url() + "/"
    return {
        "id": home,
        "name": "Control plane",
        "short_name": "Control plane",
        "description": "Runs, actions and metrics of this project, each run recorded in git.",
        "start_url": home,
        "scope": home,
        "display": "standalone",
        "theme_color": THEME_COLOR,
        "background_color": BACKGROUND_COLOR,
        "icons": [
            {"src": static_url("favicon.svg"), "sizes": "any", "type": "image/svg+xml"},
            {"src": static_url("icons/icon-192.png"), "sizes": "192x192", "type": "image/png"},
            {"src": static_url("icons/icon-512.png"), "sizes": "512x512", "type": "image/png"},
        ],
    }


@bp.get("/manifest.webmanifest")
def manifest_file() -> Response:
    response = jsonify(manifest())
    response.mimetype = MANIFEST_TYPE
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/sw.js")
def service_worker() -> Response:
    """The worker script, from the mount point so its scope is the mount point."""
    response = send_from_directory(STATIC_DIR, "sw.js", mimetype="text/javascript",
                                   max_age=0)
    response.headers["Cache-Control"] = "no-cache"  # a new version is picked up at once
    return response


@bp.get("/offline")
def offline_page() -> str:
    """The offline shell (cached by the worker at install, shown when a page fails)."""
    return render_template("controlplane/offline.html", page="offline", offline_shell=True)
