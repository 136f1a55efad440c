"""Locks and run slots for the executor: in one process, or shared by workers through Redis.

- A **lock** keeps two runs with the same lock key from overlapping (the 409).
- A **slot** is one of the ``limit`` runs allowed to execute at once.
- A **cancel request** reaches the worker that executes the run, whichever
  worker the request came to; a **freed slot** wakes the workers whose runs
  wait for one.

``LocalCoordinator`` keeps both in this process. ``RedisCoordinator`` keeps them
in Redis so the 409 and the concurrency limit hold across gunicorn workers; each
entry has a time-to-live that the holder refreshes, so a worker that dies
frees its locks and slots within ``ttl`` seconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

from controlplane.core.contracts import Coordinator

log = logging.getLogger(__name__)

CLAIM_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  return 1
end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  return 1
end
return 0
"""

RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LocalCoordinator:
    """Locks and slots for one process; with *lock_dir*, locks also hold across processes.

    A cross-process lock is an ``flock`` on ``<lock_dir>/<sha256 of key>.lock`` holding
    the run id: the CLI beside a running server gets the same 409, and the kernel
    frees the lock of a process that dies. Thread-safe.
    """

    def __init__(self, limit: int, lock_dir: Path | None = None) -> None:
        self.limit = limit
        self.lock_dir = lock_dir
        self._lock = threading.Lock()
        self._locks: dict[str, str] = {}
        self._files: dict[str, int] = {}
        self._slots: set[str] = set()

    def lock(self, key: str, run_id: str) -> str | None:
        """Take *key* for *run_id*; returns the holder's run id if someone else has it."""
        with self._lock:
            holder = self._locks.get(key)
            if holder is not None and holder != run_id:
                return holder
            if holder is None and self.lock_dir is not None:
                holder = self._lock_file(key, run_id)
                if holder is not None:
                    return holder
            self._locks[key] = run_id
            return None

    def _lock_file(self, key: str, run_id: str) -> str | None:
        """flock the key's file for *run_id*; the other process's run id if it holds it."""
        assert self.lock_dir is not None
        self.lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.lock_dir / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            os.close(fd)
            return holder or "a run of another process"
        os.ftruncate(fd, 0)
        os.pwrite(fd, run_id.encode(), 0)
        self._files[key] = fd
        return None

    def unlock(self, key: str, run_id: str) -> None:
        with self._lock:
            if self._locks.get(key) == run_id:
                del self._locks[key]
                fd = self._files.pop(key, None)
                if fd is not None:
                    os.ftruncate(fd, 0)
                    os.close(fd)  # closing the descriptor releases the flock

    def claim_slot(self, run_id: str) -> bool:
        with self._lock:
            if run_id in self._slots or len(self._slots) < self.limit:
                self._slots.add(run_id)
                return True
            return False

    def release_slot(self, run_id: str) -> None:
        with self._lock:
            self._slots.discard(run_id)

    def refresh(self, held: dict[str, str], running: list[str]) -> None:
        """Nothing expires in one process."""

    def listen(self, cancel: Callable[[str], None], slot_freed: Callable[[], None]) -> None:
        """One process holds every run: nothing to hear from elsewhere."""

    def request_cancel(self, run_id: str) -> bool:
        """No other worker could hold *run_id*: False."""
        return False

    def close(self) -> None:
        pass


class RedisCoordinator:
    """Locks and slots in Redis, shared by every worker that uses the same URL and prefix.

    Redis down: taking a lock raises ``BusUnavailable`` (503 ``bus_unavailable``, nothing
    started); what frees or refreshes is logged and skipped (the entries expire), and no
    slot is claimed (queued runs wait for Redis).
    """

    def __init__(self, url: str, limit: int, prefix: str = "controlplane", ttl: float = 30.0
                 ) -> None:
        import redis

        self.url = url
        self.client: Any = cast(Any, redis.Redis.from_url(url))  # bytes replies (see bus_redis)
        self.limit, self.prefix, self.ttl = limit, prefix, ttl
        self.slots_key = f"{prefix}:slots"
        self.cancel_channel = f"{prefix}:cancel"
        self.freed_channel = f"{prefix}:slot-freed"
        self._listener: Any = None
        self._closing = threading.Event()
        self._claim = self.client.register_script(CLAIM_SLOT)
        self._release = self.client.register_script(RELEASE_LOCK)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:lock:{key}"

    @contextlib.contextmanager
    def _strict(self) -> Iterator[None]:
        from controlplane.core.bus_redis import redis_errors

        with redis_errors(self.url):
            yield

    def _tolerant(self, what: str, call: Callable[[], Any], default: Any = None) -> Any:
        import redis

        try:
            return call()
        except redis.RedisError as exc:
            log.warning("could not %s: Redis at %s does not answer (%s)", what,
                        self.url.rpartition("@")[2], type(exc).__name__)
            return default

    def lock(self, key: str, run_id: str) -> str | None:
        with self._strict():
            if self.client.set(self._key(key), run_id, nx=True, px=int(self.ttl * 1000)):
                return None
            holder = self.client.get(self._key(key))
        if holder is None:
            return self.lock(key, run_id)  # it expired meanwhile: try again
        holder_id = holder.decode()
        return None if holder_id == run_id else holder_id

    def unlock(self, key: str, run_id: str) -> None:
        self._tolerant("free a lock", lambda: self._release(keys=[self._key(key)],
                                                            args=[run_id]))

    def claim_slot(self, run_id: str) -> bool:
        now = time.time()
        return bool(self._tolerant("claim a run slot", lambda: self._claim(
            keys=[self.slots_key], args=[now, now + self.ttl, run_id, self.limit]), False))

    def release_slot(self, run_id: str) -> None:
        if self._tolerant("free a run slot", lambda: self.client.zrem(self.slots_key, run_id)):
            self._tolerant("wake waiting workers",
                           lambda: self.client.publish(self.freed_channel, run_id))

    def refresh(self, held: dict[str, str], running: list[str]) -> None:
        """Extend the time-to-live of this worker's locks and slots."""
        pipe = self.client.pipeline()
        for key in held:
            pipe.pexpire(self._key(key), int(self.ttl * 1000))
        expiry = time.time() + self.ttl
        for run_id in running:
            pipe.zadd(self.slots_key, {run_id: expiry}, xx=True)
        self._tolerant("refresh locks and slots", pipe.execute)

    def listen(self, cancel: Callable[[str], None], slot_freed: Callable[[], None]) -> None:
        """Call ``cancel(run_id)`` for cancel requests, ``slot_freed()`` when any worker frees
        a slot (from a listener thread)."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(**{self.cancel_channel: lambda m: cancel(m["data"].decode()),
                            self.freed_channel: lambda m: slot_freed()})
        self._listener = pubsub.run_in_thread(sleep_time=0.2, daemon=True,
                                              exception_handler=self._listener_failed)

    def _listener_failed(self, exc: BaseException, pubsub: Any, thread: Any) -> None:
        """Redis went away: say so and retry after a pause (the loop calls get_message again)."""
        log.warning("cancel requests from other workers are not heard: %s", exc)
        self._closing.wait(1.0)

    def request_cancel(self, run_id: str) -> bool:
        """Ask every worker to cancel *run_id*; True if some worker listens."""
        with self._strict():
            return bool(self.client.publish(self.cancel_channel, run_id))

    def close(self) -> None:
        self._closing.set()
        if self._listener is not None:
            self._listener.stop()
            self._listener.join(timeout=5)  # it closes its connection on the way out
        self.client.close()


def coordinator_for(bus_url: str | None, limit: int, lock_dir: Path | None = None
                    ) -> Coordinator:
    """Redis-backed when the bus is Redis (several workers), else local (locks in
    *lock_dir* shared with the project's other processes)."""
    if bus_url and bus_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisCoordinator(bus_url, limit)
    return LocalCoordinator(limit, lock_dir)
