"""What code asks of the file system, from the interpreter's audit events (PEP 578): the
files it opens for reading and the directories it lists, as they happen, not a stand-in."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_LOGS: list[list[tuple[str, str]]] = []  # the logs file_access fills, innermost last
_HOOKED: list[bool] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    if not _LOGS or not args or not isinstance(args[0], str):
        return
    if event == "open":
        flags = args[2]
        if isinstance(flags, int) and not flags & (os.O_WRONLY | os.O_RDWR):
            _LOGS[-1].append(("read", args[0]))
    elif event in ("os.listdir", "os.scandir"):
        _LOGS[-1].append(("list", args[0]))


@contextmanager
def file_access(under: Path) -> Iterator[list[tuple[str, str]]]:
    """("read" or "list", path) for each file under *under* this process opens for reading
    or lists meanwhile (any thread)."""
    if not _HOOKED:
        sys.addaudithook(_audit)  # once a process: a hook cannot be removed
        _HOOKED.append(True)
    log: list[tuple[str, str]] = []
    _LOGS.append(log)
    try:
        yield log
    finally:
        _LOGS.remove(log)
        prefix = str(under).rstrip("/")
        log[:] = [(kind, path) for kind, path in log
                  if path == prefix or path.startswith(f"{prefix}/")]
