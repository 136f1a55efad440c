"""``metrics:update`` on a bus when runs end, are ingested or arrive by sync: at most once
a second per bus and process, however many end at once (the KPI cards refetch on it)."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from controlplane.core.events import BusUnavailable, EventBus

TRIGGERS = frozenset({"run:completed", "ledger:synced"})
INTERVAL = 1.0

_feeds: dict[int, MetricsFeed] = {}
_feeds_lock = threading.Lock()


class MetricsFeed:
    """Coalesces the triggers of one bus into ``metrics:update`` events."""

    def __init__(self, bus: EventBus, interval: float = INTERVAL) -> None:
        self.bus, self.interval = bus, interval
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._pending: threading.Timer | None = None
        self.published = 0

    def receive(self, envelope: dict[str, Any]) -> None:
        """A bus receiver: schedule one update (publishing here would re-enter the bus)."""
        if envelope.get("type") not in TRIGGERS:
            return
        with self._lock:
            if self._pending is not None:
                return  # the pending update covers this one
            delay = max(0.0, self._last + self.interval - time.monotonic())
            self._pending = threading.Timer(delay, self._publish)
            self._pending.daemon = True
            self._pending.name = "metrics-update"
            self._pending.start()

    def _publish(self) -> None:
        with self._lock:
            self._pending = None
            self._last = time.monotonic()
            self.published += 1
        with contextlib.suppress(BusUnavailable):  # the clients resync when the bus is back
            self.bus.publish("metrics:update", {})


def follow(bus: EventBus) -> MetricsFeed:
    """The feed of *bus* in this process, connected on first use (idempotent, cheap)."""
    feed = _feeds.get(id(bus))
    if feed is not None and feed.bus is bus:
        return feed
    with _feeds_lock:
        feed = _feeds.get(id(bus))
        if feed is None or feed.bus is not bus:
            feed = MetricsFeed(bus)
            bus.connect(feed.receive)
            _feeds[id(bus)] = feed
    return feed
