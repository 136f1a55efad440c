"""The host's own login: a plain session login (no Flask-Login needed).

Users come from the app's ``HOST_USERS`` config: ``{name: {"password_hash": …, "ops": bool}}``.
Only users with ``ops`` may use the control plane mounted under ``/ops``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Request,
    abort,
    current_app,
    redirect,
    render_template_string,
    request,
    session,
    url_for,
)
from werkzeug.security import check_password_hash

bp = Blueprint("auth", __name__)

LOGIN_FORM = """<!doctype html><title>Log in · Host admin</title>
<h1>Log in</h1>{% if error %}<p>{{ error }}</p>{% endif %}
<form method="post"><label>Name <input name="username"></label>
<label>Password <input name="password" type="password"></label><button>Log in</button></form>"""


def current_user() -> dict[str, Any] | None:
    """The logged-in user's entry (with its name), or None."""
    name = session.get("user")
    entry = current_app.config["HOST_USERS"].get(name) if name else None
    return {"name": name, **entry} if entry else None


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """The host's decorator for its own routes: 401 unless logged in."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            abort(401)
        return view(*args, **kwargs)

    return wrapper


def authorize(req: Request) -> dict[str, str] | bool | None:
    """For ``ControlPlane(authorize=...)``: who may use the dashboard under /ops.

    The actor dict is recorded as the actor of the runs they start; None → 401
    (not logged in); False → 403 (logged in, but not an ops user).
    """
    user = current_user()
    if user is None:
        return None
    if not user.get("ops"):
        return False
    return {"kind": "web", "name": user["name"]}


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    if request.method == "POST":
        name = request.form.get("username", "")
        entry = current_app.config["HOST_USERS"].get(name)
        if entry and check_password_hash(entry["password_hash"], request.form.get("password", "")):
            session.clear()
            session["user"] = name
            return redirect(request.args.get("next") or url_for("admin.home"), code=303)
        error = "Wrong name or password."
    return render_template_string(LOGIN_FORM, error=error), (401 if error else 200)


@bp.post("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("auth.login"), code=303)
