"""File descriptors left to this process: a long-lived stream must not starve the rest.

Each open stream (SSE, WebSocket) holds a socket for as long as it lasts. Before
one more is admitted, the descriptors in use are counted against the soft
``RLIMIT_NOFILE`` with a reserve kept for everything else (``/healthz``, the
ledger's git and SQLite files, pipes of tools).
"""

from __future__ import annotations

import os
import resource

RESERVE_SHARE = 8  # one eighth of the limit is kept free ...
RESERVE_MIN, RESERVE_MAX = 48, 256  # ... but at least / at most this many descriptors


def in_use() -> int:
    """Descriptors this process has open (Linux /proc, else /dev/fd)."""
    for place in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(place)) - 1  # listdir's own descriptor
        except OSError:
            continue
    return 0


def reserve(limit: int) -> int:
    return min(RESERVE_MAX, max(RESERVE_MIN, limit // RESERVE_SHARE))


def stream_refusal() -> str | None:
    """Why one more long-lived stream would starve the process, or None if it fits."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if limit == resource.RLIM_INFINITY:
        return None
    used, kept = in_use(), reserve(limit)
    if used + kept < limit:
        return None
    return (f"too many open streams: {used} of {limit} file descriptors in use and {kept} "
            "are kept for other requests; retry later, or raise `ulimit -n` for the server")
