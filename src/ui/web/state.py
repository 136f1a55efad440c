"""Per-app state, kept in ``app.extensions["controlplane"]`` (never on module globals)."""

from __future__ import annotations

from flask import current_app, request

from controlplane.core.runtime import Runtime

PREFIX_KEY = "url_prefix"  # Runtime.extra key: where the extension is mounted ("" or "/ops")


def state() -> Runtime:
    """The runtime of the app handling this request."""
    return current_app.extensions["controlplane"]


def url_prefix() -> str:
    """The control plane's mount point in this app (``""`` or e.g. ``"/ops"``)."""
    return str(state().extra.get(PREFIX_KEY, ""))


def local_path() -> str:
    """This request's path below the mount point (``/ops/api/x`` → ``/api/x``)."""
    prefix, path = url_prefix(), request.path
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        return path[len(prefix):] or "/"
    return path


def base_url() -> str:
    """Where the control plane's pages and APIs start for a browser (WSGI script root + prefix)."""
    return request.script_root + url_prefix()
