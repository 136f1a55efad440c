"""The web layer: the ``ControlPlane`` Flask extension, ``create_app``, APIs, dashboard.

Depends on the core only.
"""

from controlplane.ui.web.app import create_app
from controlplane.ui.web.extension import ControlPlane, shutdown

__all__ = ["ControlPlane", "create_app", "shutdown"]
