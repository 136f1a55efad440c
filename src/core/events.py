"""The event bus: typed events in one envelope, replay, and bounded subscribers.

Envelope: ``{"id": "<epoch>-<seq>", "type", "run_id", "at", "data"}``. ``epoch``
names this bus (so a process restart is visible to a resuming client) and
``seq`` increases by one per event. Publishing is thread-safe and never waits
for a consumer: a subscriber whose queue is full is dropped and receives a
``resync`` event in place of what it missed. Receivers are held strongly, in a tuple
replaced at each connect or disconnect (delivery reads it without a lock), and one failing
receiver does not stop the others. (DESIGN.md put blinker underneath: one signal with
strong receivers is all the bus used of it, and blinker imports ``inspect`` and ``typing``,
~10 ms of the start of every ``exec`` and script on a bare interpreter; issue 18, item 8.)
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping

from controlplane.core import lazy
from controlplane.core.errors import ControlPlaneError
from controlplane.core.plain_data import as_dict, field, field_names, plain_data, required_names
from controlplane.core.runs import iso, utc_now

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    import queue
    from typing import Any, ClassVar, Self, TypeVar

    from controlplane.core.contracts import BusBackend
else:
    queue = lazy.Lazy(globals(), "queue")  # for subscriptions (SSE, WebSocket) only

log = lazy.Logger(__name__)

EVENT_TYPES: dict[str, type[EventData]] = {}


class EventData:
    """Base of the declared ``data`` shapes: built by publishers, read back by consumers."""

    event_name: ClassVar[str] = ""

    def to_data(self) -> dict[str, Any]:
        return as_dict(self)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Self:
        """The declaration read from an envelope's ``data``; ValueError names what lacks."""
        cls._check_required(data)
        return cls(**{name: data[name] for name in field_names(cls) if name in data})

    @classmethod
    def _check_required(cls, data: Mapping[str, Any]) -> None:
        missing = [name for name in required_names(cls) if name not in data]
        if missing:
            raise ValueError(f"{cls.event_name} data lacks {', '.join(missing)}")


if TYPE_CHECKING:
    EventT = TypeVar("EventT", bound=type[EventData])


def event_type(name: str) -> Callable[[EventT], EventT]:
    """Declare a frozen data class as the shape of the ``data`` of events called *name*."""

    def register(cls: EventT) -> EventT:
        if "__annotations__" in cls.__dict__ or not hasattr(cls, "__plain_fields__"):
            plain_data(frozen=True)(cls)
        # else no fields of its own: the methods it inherits are the same
        cls.event_name = name
        EVENT_TYPES[name] = cls
        return cls

    return register


@plain_data(frozen=True)
class RunSnapshot(EventData):
    """A run's whole run.json: the named fields, and every other one in ``rest``."""

    run_id: str
    type: str
    subtype: str
    status: str
    summary: str = ""
    rest: dict[str, Any] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        return {**self.rest, "run_id": self.run_id, "type": self.type, "subtype": self.subtype,
                "status": self.status, "summary": self.summary}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Self:
        cls._check_required(data)
        named = [name for name in field_names(cls) if name != "rest"]
        rest = dict(data)
        return cls(**{name: rest.pop(name) for name in named if name in rest}, rest=rest)


@event_type("run:queued")
class RunQueued(RunSnapshot):
    """A run waits for an executor slot (its run.json)."""


@event_type("run:started")
class RunStarted(RunSnapshot):
    """A run started (its run.json)."""


@event_type("run:completed")
class RunCompleted(RunSnapshot):
    """A run ended (its final run.json)."""


@event_type("run:output")
class RunOutput(EventData):
    seq: int
    stream: str
    line: str


@event_type("run:progress")
class RunProgress(EventData):
    done: int
    total: int


@event_type("chat:message")
class ChatMessage(EventData):
    """A chat message as stored, with ``runs``: what each mentioned run is."""

    message_id: str
    text: str
    author: dict[str, Any]
    at: str
    mentions: list[str] = field(default_factory=list)
    runs: dict[str, Any] = field(default_factory=dict)
    schema: int = 1


@event_type("metrics:update")
class MetricsUpdate(EventData):
    pass


@event_type("executor:state")
class ExecutorState(EventData):
    limit: int
    paused: bool
    running: list[str]
    queued: list[str]


@event_type("ledger:synced")
class LedgerSynced(EventData):
    runs: int


@event_type("resync")
class Resync(EventData):
    reason: str


class BusUnavailable(ControlPlaneError):
    """The shared event bus (Redis) does not answer: 503 until it does."""

    status, code = 503, "bus_unavailable"

    @classmethod
    def for_url(cls, url: str, exc: BaseException | str) -> BusUnavailable:
        where = url.rpartition("@")[2]  # never the password of redis://:secret@host
        kind = exc if isinstance(exc, str) else type(exc).__name__
        return cls(f"the event bus at {where} does not answer ({kind}): start "
                   "Redis or set bus to memory, then retry")


def check_event(kind: str, data: dict[str, Any]) -> None:
    """Raise ValueError unless *kind* is registered and *data* has its required fields."""
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        raise ValueError(f"unregistered event type {kind!r}")
    if not isinstance(data, dict):
        raise ValueError(f"{kind} data must be a dict")
    cls.from_data(data)


def new_epoch() -> str:
    """A name for a bus: its start second in hex plus random, no '-'."""
    return f"{int(time.time()):x}{os.urandom(3).hex()}"


def parse_event_id(event_id: str | None) -> tuple[str, int] | None:
    """Split ``<epoch>-<seq>``; None if it is not one."""
    if not event_id or "-" not in event_id:
        return None
    epoch, _, seq = event_id.rpartition("-")
    # isdigit alone lets through '²', which int() refuses: ASCII digits only
    return (epoch, int(seq)) if seq.isascii() and seq.isdigit() and epoch else None


class Subscription:
    """A bounded queue of envelopes for one consumer (an SSE or WebSocket client).

    Iterate it, or call ``get(timeout)``; use it as a context manager so it is
    disconnected when the consumer goes away. An envelope whose ``seq`` it has
    already passed is dropped, so a replay racing the live feed never duplicates.
    Thread-safe.
    """

    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=maxsize)
        self._last_seq = -1
        self._epoch = ""  # of the last envelope: a new one (Redis restarted) restarts seq
        self._order = threading.Lock()
        self.overflowed = False
        self.closed = False

    def _deliver(self, envelope: dict[str, Any]) -> None:
        if self.overflowed:
            return
        with self._order:
            parsed = parse_event_id(envelope["id"])
            if parsed is not None and parsed[0] != self._epoch:  # the bus restarted
                self._epoch, self._last_seq = parsed[0], -1
            if envelope["type"] != "resync" and parsed is not None:
                if parsed[1] <= self._last_seq:
                    return
                self._last_seq = parsed[1]
            try:
                self._queue.put_nowait(envelope)
            except queue.Full:
                self.overflowed = True
                self._bus._disconnect(self)

    def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next envelope, a ``resync`` if this consumer fell behind, or None on timeout."""
        try:
            return self._queue.get(timeout=timeout) if timeout != 0 else self._queue.get_nowait()
        except queue.Empty:
            if self.overflowed and not self.closed:
                self.closed = True
                return self._bus.make_envelope("resync", {"reason": "slow_consumer"})
            return None

    def close(self) -> None:
        self.closed = True
        self._bus._disconnect(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while not self.closed:
            envelope = self.get(timeout=1.0)
            if envelope is not None:
                yield envelope


class MemoryBackend:
    """Numbers events in this process and keeps a bounded replay buffer (the default)."""

    def __init__(self, replay_size: int = 10_000) -> None:
        self.epoch = new_epoch()
        self.seq = 0
        self._replay: deque[dict[str, Any]] = deque(maxlen=replay_size)
        self._announced: dict[str, None] = {}

    def append(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """Number *envelope* (caller holds the bus lock) and keep it for replay."""
        self.seq += 1
        envelope["id"] = f"{self.epoch}-{self.seq}"
        self._replay.append(envelope)
        return envelope

    def since(self, seq: int) -> list[dict[str, Any]] | None:
        first = self.seq - len(self._replay) + 1  # seq of the oldest kept event
        if seq + 1 < first:
            return None  # fell out of the replay buffer
        return list(self._replay)[seq + 1 - first :]

    def last_seq(self) -> int:
        return self.seq

    def announce(self, entry_id: str) -> None:
        """Mark a run or message as announced live by its own process (see the feed)."""
        self._announced[entry_id] = None
        if len(self._announced) > ANNOUNCED_KEPT:
            del self._announced[next(iter(self._announced))]

    def announced(self, entry_id: str) -> bool:
        return entry_id in self._announced

    def start(self, deliver: Callable[[dict[str, Any]], None]) -> bool:
        """Backends that deliver from elsewhere start a reader; this one delivers inline."""
        return False

    def close(self) -> None:
        pass


class EventBus:
    """Numbers, keeps and delivers events. Thread-safe.

    The backend numbers and keeps events: ``MemoryBackend`` in this process, or
    ``controlplane.core.bus_redis.RedisBackend`` shared by several processes.
    """

    def __init__(self, replay_size: int = 10_000, queue_size: int = 2_000,
                 backend: BusBackend | None = None, url: str = "memory") -> None:
        self.url = url
        self.backend = backend or MemoryBackend(replay_size)
        self.queue_size = queue_size
        self._lock = threading.Lock()
        self._receivers: tuple[Callable[[dict[str, Any]], None], ...] = ()
        self._receivers_lock = threading.Lock()  # not self._lock: subscribe() holds it
        self._remote = self.backend.start(self._fanout_locked)

    @property
    def epoch(self) -> str:
        return self.backend.epoch

    @property
    def last_id(self) -> str:
        return f"{self.epoch}-{self.backend.last_seq()}"

    def make_envelope(self, kind: str, data: dict[str, Any], run_id: str | None = None) -> dict:
        """An envelope outside the sequence (for ``resync`` and heartbeats)."""
        return {"id": self.last_id, "type": kind, "run_id": run_id, "at": iso(utc_now()),
                "data": data}

    def publish(self, kind: str, data: dict[str, Any], run_id: str | None = None) -> dict:
        """Number and deliver one event; raises ValueError for an unregistered type."""
        check_event(kind, data)
        return self._publish(kind, data, run_id)

    def _publish(self, kind: str, data: dict[str, Any], run_id: str | None) -> dict:
        envelope = {"id": "", "type": kind, "run_id": run_id, "at": iso(utc_now()), "data": data}
        with self._lock:
            envelope = self.backend.append(envelope)
            if not self._remote:
                self._fanout(envelope)
        return envelope

    def publish_event(self, event: EventData, run_id: str | None = None) -> dict:
        """Publish a declared event (``RunStarted.from_data(run)``, ``RunOutput(...)``…)."""
        name = type(event).event_name
        if EVENT_TYPES.get(name) is not type(event):
            raise ValueError(f"unregistered event class {type(event).__name__}")
        # built by its class: its data has the shape check_event would check again
        return self._publish(name, event.to_data(), run_id or getattr(event, "run_id", None))

    def announce(self, entry_id: str) -> None:
        """Say, before recording it, that this process announces run or message *entry_id*
        live: the ledger feeds on this bus then skip it. BusUnavailable if the bus is down."""
        self.backend.announce(entry_id)

    def announced(self, entry_id: str) -> bool:
        """Whether a process on this bus announces *entry_id* itself."""
        return self.backend.announced(entry_id)

    def _fanout_locked(self, envelope: dict[str, Any]) -> None:
        """Deliver an event read from a shared backend (never while a subscriber is joining)."""
        with self._lock:
            self._fanout(envelope)

    def _fanout(self, envelope: dict[str, Any]) -> None:
        for receiver in self._receivers:
            try:
                receiver(envelope)
            except Exception:  # one bad receiver must not stop the run or the others
                log.exception("event receiver failed")

    def since(self, event_id: str | None) -> list[dict[str, Any]] | None:
        """Events after *event_id*, or None when they cannot be replayed (resync)."""
        if not event_id:
            return []
        parsed = parse_event_id(event_id)
        if parsed is None or parsed[0] != self.epoch or parsed[1] > self.backend.last_seq():
            return None
        return self.backend.since(parsed[1])

    def subscribe(self, last_event_id: str | None = None, maxsize: int | None = None
                  ) -> Subscription:
        """A new subscription, first filled with what came after *last_event_id*.

        An id from another epoch, or one too old to replay, yields ``resync`` first.
        """
        sub = Subscription(self, maxsize or self.queue_size)
        with self._lock:  # no delivery while joining; a shared backend's reader may repeat
            missed = self.since(last_event_id)  # what the replay gave: the subscription dedupes
            if missed is None:
                sub._deliver(self.make_envelope("resync", {"reason": "unknown_event_id"}))
            else:
                for envelope in missed:
                    sub._deliver(envelope)
            self._add(sub._deliver)
        return sub

    def connect(self, receiver: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call *receiver* with each envelope; returns the function that disconnects it."""
        self._add(receiver)
        return lambda: self._remove(receiver)

    def _add(self, receiver: Callable[[dict[str, Any]], None]) -> None:
        with self._receivers_lock:
            if receiver not in self._receivers:
                self._receivers = (*self._receivers, receiver)

    def _remove(self, receiver: Callable[[dict[str, Any]], None]) -> None:
        with self._receivers_lock:
            self._receivers = tuple(r for r in self._receivers if r != receiver)

    def _disconnect(self, sub: Subscription) -> None:
        self._remove(sub._deliver)

    @property
    def subscriber_count(self) -> int:
        return len(self._receivers)

    def close(self) -> None:
        self.backend.close()


ANNOUNCED_KEPT = 10_000  # ids a memory bus remembers as announced live

_default_bus: EventBus | None = None
_default_lock = threading.Lock()


def default_bus() -> EventBus:
    """The process-wide bus that tracked runs publish to (``CONTROLPLANE_BUS`` picks Redis)."""
    global _default_bus
    with _default_lock:
        if _default_bus is None:
            _default_bus = bus_from_url(os.environ.get("CONTROLPLANE_BUS"))
        return _default_bus


def use_bus(url: str | None) -> EventBus:
    """Make the process-wide bus the one *url* names (the server's ``bus`` setting)."""
    global _default_bus
    with _default_lock:
        wanted = url or "memory"
        current = _default_bus
        if current is None or current.url != wanted:
            current = _default_bus = bus_from_url(url)
        return current


def bus_from_url(url: str | None) -> EventBus:
    """An in-process bus for None or ``memory``; a Redis-backed one for ``redis://…``."""
    if not url or url == "memory":
        return EventBus()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from controlplane.core.bus_redis import RedisBackend

        return EventBus(backend=RedisBackend(url), url=url)
    raise ValueError(f"unknown bus {url!r}: use memory or redis://host:port/db")
