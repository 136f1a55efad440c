"""A small host admin with the control plane mounted under ``/ops``.

Run it from anywhere (the project is ``PROJECT_ROOT``, not the cwd)::

    PROJECT_ROOT=/path/to/repo HOST_ADMIN_PASSWORD=… python examples/host_app/app.py --port 5000

then log in at http://127.0.0.1:5000/login as ``admin`` and open /ops/.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.security import generate_password_hash

sys.path.insert(0, str(Path(__file__).parent))  # the example's own modules, run from anywhere

import host_admin
import host_auth
import routes_k8s

from controlplane.ui.web import ControlPlane


def create_host_app(project_root: str, users: dict[str, dict[str, Any]] | None = None,
                    **config: Any) -> Flask:
    """The host app: its own blueprints and login, the control plane under /ops."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("HOST_SECRET_KEY") or secrets.token_hex(32),
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        PROJECT_ROOT=project_root, HOST_USERS=users or {}, **config)
    app.register_blueprint(host_auth.bp)
    app.register_blueprint(host_admin.bp)
    app.register_blueprint(routes_k8s.bp)
    ControlPlane(app, url_prefix="/ops", actions=["testing", "quality"],
                 authorize=host_auth.authorize)
    return app


def users_from_env() -> dict[str, dict[str, Any]]:
    password = os.environ.get("HOST_ADMIN_PASSWORD") or ""
    if not password:
        sys.exit("set HOST_ADMIN_PASSWORD (the password of the user 'admin')")
    return {"admin": {"password_hash": generate_password_hash(password), "ops": True}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000, help="0: any free port")
    options = parser.parse_args()
    root = os.environ.get("PROJECT_ROOT") or sys.exit("set PROJECT_ROOT (the git repository)")
    app = create_host_app(root, users_from_env())
    from werkzeug.serving import make_server

    server = make_server(options.host, options.port, app, threaded=True)
    print(f"serving on http://{options.host}:{server.server_port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        from controlplane.ui.web import shutdown

        shutdown(app)


if __name__ == "__main__":
    main()
