"""The Redis bus backend: one event sequence shared by every process and worker.

A Lua script numbers and appends each event atomically (``INCR`` then ``XADD``
with the stream entry id ``<seq>-0``), so the stream's order is the sequence's
order. Each process runs one reader thread (``XREAD BLOCK``) that hands events,
in order, to the in-process bus, which fans them out to its subscribers. The
epoch is kept in Redis: a server restart keeps it (clients resume), a flushed
Redis gets a new one (clients resync). Replay reads the stream (``XRANGE``);
the stream is trimmed to about ``replay_size`` events.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

log = logging.getLogger(__name__)

APPEND = """
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'e', ARGV[1])
return seq
"""


class RedisBackend:
    """Numbers events in Redis and delivers them from a stream."""

    def __init__(self, url: str, prefix: str = "controlplane", replay_size: int = 10_000,
                 block_ms: int = 1_000) -> None:
        self.client = redis.Redis.from_url(url)
        self.prefix = prefix
        self.replay_size = replay_size
        self.block_ms = block_ms
        self.seq_key, self.stream_key = f"{prefix}:seq", f"{prefix}:events"
        self.client.set(f"{prefix}:epoch", f"r{secrets.token_hex(5)}", nx=True)
        self.epoch = self.client.get(f"{prefix}:epoch").decode()
        self._append = self.client.register_script(APPEND)
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None

    def append(self, envelope: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({k: v for k, v in envelope.items() if k != "id"})
        seq = int(self._append(keys=[self.seq_key, self.stream_key],
                               args=[body, self.replay_size]))
        envelope["id"] = f"{self.epoch}-{seq}"
        return envelope

    def _envelope(self, entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
        envelope = json.loads(fields[b"e"])
        return {"id": f"{self.epoch}-{entry_id.decode().split('-')[0]}", **envelope}

    def last_seq(self) -> int:
        return int(self.client.get(self.seq_key) or 0)

    def since(self, seq: int) -> list[dict[str, Any]] | None:
        entries = self.client.xrange(self.stream_key, min=f"{seq + 1}-0", max="+")
        if seq < self.last_seq() and (not entries or
                                      int(entries[0][0].decode().split("-")[0]) > seq + 1):
            return None  # trimmed away
        return [self._envelope(entry_id, fields) for entry_id, fields in entries]

    def start(self, deliver: Callable[[dict[str, Any]], None]) -> bool:
        """Start the reader thread that delivers every event, from now on, in order."""
        last = f"{self.last_seq()}-0"

        def read() -> None:
            nonlocal last
            while not self._stop.is_set():
                try:
                    answer = self.client.xread({self.stream_key: last}, block=self.block_ms,
                                               count=500)
                except redis.RedisError as exc:
                    log.warning("redis bus read failed: %s", exc)
                    self._stop.wait(1.0)
                    continue
                for _stream, entries in answer or []:
                    for entry_id, fields in entries:
                        last = entry_id.decode()
                        deliver(self._envelope(entry_id, fields))

        self._reader = threading.Thread(target=read, name="scp-redis-bus", daemon=True)
        self._reader.start()
        return True

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
