"""One way to answer errors: JSON for API clients, short HTML for browsers, never a traceback."""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from controlplane.core.errors import ControlPlaneError
from controlplane.ui.web.state import local_path

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, **extra: object) -> Response:
    """A JSON error answer: ``{"error": code, "message": message, ...}``."""
    response = jsonify({"error": code, "message": message, **extra})
    response.status_code = status
    return response


def prefers_html() -> bool:
    """The request ranks HTML above JSON: a browser's navigation does, ``fetch()`` (``*/*``)
    and API clients do not. Not ``accept_mimetypes.best``: for Chromium's Accept header
    (``text/html,…,application/signed-exchange;v=b3;q=0.7``) werkzeug names the latter."""
    accept = request.accept_mimetypes
    return accept.quality("text/html") > accept.quality("application/json")


def wants_html() -> bool:
    """A browser's GET of a page (not of ``/api/``): its errors are answered as a page."""
    return (request.method == "GET" and not local_path().startswith("/api/")
            and prefers_html())


def init_app(app: Flask | Blueprint) -> None:
    """Our error handlers on *app*, or on a blueprint (only its routes' errors)."""
    @app.errorhandler(ControlPlaneError)
    def control_plane_error(exc: ControlPlaneError) -> Response:
        response = jsonify(exc.to_dict())
        response.status_code = exc.status
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response | tuple[str, int]:
        code = (exc.name or "error").lower().replace(" ", "_")
        if wants_html():
            page = render_template("controlplane/error.html", status=exc.code,
                                   message=exc.description)
            return page, exc.code or 500
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error (see the server log)")
