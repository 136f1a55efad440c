"""The Redis bus backend: one event sequence shared by every process and worker.

A Lua script numbers and appends each event atomically (``INCR`` then ``XADD``
with the stream entry id ``<seq>-0``), so the stream's order is the sequence's
order. Each process runs one reader thread (``XREAD BLOCK``) that hands events,
in order, to the in-process bus, which fans them out to its subscribers. Replay
reads the stream (``XRANGE``); the stream is trimmed to about ``replay_size`` events.

**Restarts.** The epoch is kept in Redis and written into every stream entry: a
server restart keeps it (clients resume), a restarted or flushed Redis loses it.
The first append or reader to notice (the key missing, an entry of another epoch,
or the sequence below what this reader has passed) installs a new epoch; the
reader then delivers a ``resync`` (reason ``bus_restarted``) to every subscriber
and reads the new stream from its start, so no live event is dropped silently.

**Down.** Every Redis failure becomes ``BusUnavailable`` (503 ``bus_unavailable``).
The backend can be made while Redis is down (a script keeps recording runs); it
takes Redis's epoch once Redis answers.

**Announcements.** ``announce(entry_id)`` marks a run or chat message as announced
live by the process that records it (before it is journaled or recorded); the
ledger feed of every process on this bus skips what is marked.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import redis

from controlplane.core.events import BusUnavailable
from controlplane.core.runs import iso, utc_now

log = logging.getLogger(__name__)

APPEND = """
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  redis.call('SET', KEYS[3], ARGV[3])
  epoch = ARGV[3]
end
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'e', ARGV[1], 'p', epoch)
return {seq, epoch}
"""

RENEW_EPOCH = """
local epoch = redis.call('GET', KEYS[1])
if (not epoch) or epoch == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return ARGV[2]
end
return epoch
"""

CONNECT_TIMEOUT = 2.0  # seconds: an unreachable host must not hang a run for long
DOWN_PAUSE = 1.0  # seconds appends fail at once after one failed (a run's lines)
ANNOUNCED_FOR = 7 * 24 * 3600  # seconds an announcement mark lives (a run longer than this
# may be announced completed twice)


def new_redis_epoch() -> str:
    return f"r{secrets.token_hex(5)}"


@contextmanager
def redis_errors(url: str) -> Iterator[None]:
    """Turn a Redis failure into ``BusUnavailable`` (one line, what to do)."""
    try:
        yield
    except redis.RedisError as exc:
        raise BusUnavailable.for_url(url, exc) from None


class RedisBackend:
    """Numbers events in Redis and delivers them from a stream."""

    def __init__(self, url: str, prefix: str = "controlplane", replay_size: int = 10_000,
                 block_ms: int = 1_000) -> None:
        self.url = url
        # replies are bytes (decode_responses off); redis-py types them as unions of all modes
        self.client: Any = cast(
            Any, redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT))
        self._down_until = 0.0  # monotonic time before which appends fail at once
        self.prefix = prefix
        self.replay_size = replay_size
        self.block_ms = block_ms
        self.seq_key, self.stream_key = f"{prefix}:seq", f"{prefix}:events"
        self.epoch_key = f"{prefix}:epoch"
        self._append = self.client.register_script(APPEND)
        self._renew = self.client.register_script(RENEW_EPOCH)
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._last = "0-0"  # the reader's stream position
        try:
            self.client.set(self.epoch_key, new_redis_epoch(), nx=True)
            self.epoch = self.client.get(self.epoch_key).decode()
            self._last = f"{self.last_seq()}-0"
            self.reachable = True
        except (redis.RedisError, BusUnavailable, AttributeError):
            self.epoch = new_redis_epoch()  # provisional: Redis's own is taken once it answers
            self.reachable = False  # said by whoever publishes (once), not here
        self._reader_epoch = self.epoch  # the epoch the reader delivers (appends may see a
        # new one first)

    def append(self, envelope: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({k: v for k, v in envelope.items() if k != "id"})
        if time.monotonic() < self._down_until:  # failed a moment ago: no wait per line
            raise BusUnavailable.for_url(self.url, "ConnectionError")
        try:
            with redis_errors(self.url):
                seq, epoch = self._append(keys=[self.seq_key, self.stream_key, self.epoch_key],
                                          args=[body, self.replay_size, new_redis_epoch()])
        except BusUnavailable:
            self._down_until = time.monotonic() + DOWN_PAUSE
            raise
        self.epoch = epoch.decode() if isinstance(epoch, bytes) else str(epoch)
        envelope["id"] = f"{self.epoch}-{int(seq)}"
        return envelope

    def announce(self, entry_id: str) -> None:
        """Mark *entry_id* (a run or message id) as announced live on this bus."""
        with redis_errors(self.url):
            self.client.set(f"{self.prefix}:announced:{entry_id}", 1, ex=ANNOUNCED_FOR)

    def announced(self, entry_id: str) -> bool:
        with redis_errors(self.url):
            return bool(self.client.exists(f"{self.prefix}:announced:{entry_id}"))

    def _envelope(self, entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
        envelope = json.loads(fields[b"e"])
        epoch = fields.get(b"p", self.epoch.encode()).decode()
        return {"id": f"{epoch}-{entry_id.decode().split('-')[0]}", **envelope}

    def last_seq(self) -> int:
        with redis_errors(self.url):
            return int(self.client.get(self.seq_key) or 0)

    def since(self, seq: int) -> list[dict[str, Any]] | None:
        with redis_errors(self.url):
            entries = self.client.xrange(self.stream_key, min=f"{seq + 1}-0", max="+")
        if seq < self.last_seq() and (not entries or
                                      int(entries[0][0].decode().split("-")[0]) > seq + 1):
            return None  # trimmed away
        return [self._envelope(entry_id, fields) for entry_id, fields in entries]

    def start(self, deliver: Callable[[dict[str, Any]], None]) -> bool:
        """Start the reader thread that delivers every event, from now on, in order."""

        def read() -> None:
            down = False
            while not self._stop.is_set():
                try:
                    self._read_once(deliver)
                    if down:
                        log.warning("the event bus at %s answers again", self.url)
                    down = False
                except (redis.RedisError, BusUnavailable) as exc:
                    if not down and self.reachable:  # said once per outage, not once a second
                        log.warning("redis bus read failed: %s", exc)
                    down = True
                    self._stop.wait(1.0)

        self._reader = threading.Thread(target=read, name="scp-redis-bus", daemon=True)
        self._reader.start()
        return True

    def _read_once(self, deliver: Callable[[dict[str, Any]], None]) -> None:
        """One ``XREAD``: deliver what came, or notice that Redis restarted."""
        if not self.reachable:  # made while Redis was down: take (or install) its epoch
            self.client.set(self.epoch_key, self.epoch, nx=True)
            epoch, seq = self.client.mget(self.epoch_key, self.seq_key)
            self.reachable = True
            self._last = f"{int(seq or 0)}-0"  # what came before is not news here
            if epoch is not None and epoch.decode() != self._reader_epoch:
                self._restarted(deliver, epoch.decode(), self._last)
            return
        answer = self.client.xread({self.stream_key: self._last}, block=self.block_ms,
                                   count=500)
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                epoch = fields.get(b"p")
                if epoch is not None and epoch.decode() != self._reader_epoch:
                    self._restarted(deliver, epoch.decode())
                    return
                self._last = entry_id.decode()
                deliver(self._envelope(entry_id, fields))
        if not answer:
            self._check_epoch(deliver)

    def _check_epoch(self, deliver: Callable[[dict[str, Any]], None]) -> None:
        """Redis's epoch gone or changed, or its sequence below ours: it restarted."""
        epoch, seq = self.client.mget(self.epoch_key, self.seq_key)
        passed = int(self._last.split("-")[0])
        if epoch is not None and epoch.decode() == self._reader_epoch \
                and int(seq or 0) >= passed:
            return
        current = epoch.decode() if epoch is not None else None
        if current is None or current == self._reader_epoch:  # lost, or the sequence went back
            current = self._renew(keys=[self.epoch_key],
                                  args=[self._reader_epoch, new_redis_epoch()]).decode()
        self._restarted(deliver, current)

    def _restarted(self, deliver: Callable[[dict[str, Any]], None], epoch: str,
                   position: str = "0-0") -> None:
        """Adopt *epoch*, read the new stream from *position*, tell every subscriber."""
        log.warning("the event bus at %s restarted or was flushed: clients resync", self.url)
        self.epoch = self._reader_epoch = epoch
        self._last = position
        deliver({"id": f"{epoch}-0", "type": "resync", "run_id": None, "at": iso(utc_now()),
                 "data": {"reason": "bus_restarted"}})

    def close(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=self.block_ms / 1000 + 2)
        self.client.close()


def wait_for_redis(url: str, timeout: float = 10.0) -> None:
    """Block until a Redis server answers PING (a server just started)."""
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            client.close()
