"""Per-app state, kept in ``app.extensions["controlplane"]`` (never on module globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import current_app

from controlplane.core.events import EventBus
from controlplane.core.executor import Executor
from controlplane.core.ledger import Ledger
from controlplane.core.ledger.feed import LedgerFeed


@dataclass
class ControlPlane:
    """Everything a request handler needs: the project's ledger, the bus, the executor."""

    ledger: Ledger
    bus: EventBus
    executor: Executor
    settings: dict[str, Any]
    token: str
    tool_env: dict[str, str] | None = None  # environment for tools (tests give their own PATH)
    feed: LedgerFeed | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.ledger.root


def state() -> ControlPlane:
    """The state of the app handling this request."""
    return current_app.extensions["controlplane"]
