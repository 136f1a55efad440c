"""The host's own pages (not the control plane's business: no token, its own login)."""

from __future__ import annotations

from flask import Blueprint, render_template_string
from host_auth import current_user

bp = Blueprint("admin", __name__)

HOME = """<!doctype html><title>Host admin</title>
<h1>Host admin</h1>
{% if user %}<p>Logged in as {{ user.name }}.</p>
<form method="post" action="{{ url_for('k8s.apply') }}"><button>Apply manifests</button></form>
<p><a href="/ops/">Operations dashboard</a></p>
<form method="post" action="{{ url_for('auth.logout') }}"><button>Log out</button></form>
{% else %}<p><a href="{{ url_for('auth.login') }}">Log in</a></p>{% endif %}"""


@bp.get("/")
def home() -> str:
    return render_template_string(HOME, user=current_user())


@bp.get("/status")
def status() -> dict:
    """A public route of the host: no login, no control plane token."""
    return {"ok": True}
