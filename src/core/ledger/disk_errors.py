"""A failed write to disk told to a person: why, in a few words, and what to do."""

from __future__ import annotations

import errno

FULL = {errno.ENOSPC, errno.EDQUOT}
READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}
_FULL_TEXT = ("No space left on device", "Disk quota exceeded")
_READ_ONLY_TEXT = ("Read-only file system", "Permission denied", "Operation not permitted")


def _errors(exc: BaseException) -> list[BaseException]:
    """*exc* and what caused it (``raise … from``), at most 8 deep."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(found) < 8:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def _is(exc: BaseException, numbers: set[int], texts: tuple[str, ...]) -> bool:
    for error in _errors(exc):
        if isinstance(error, OSError) and error.errno in numbers:
            return True
        if any(text in str(error) for text in texts):  # pygit2 and sqlite give text only
            return True
    return False


def is_disk_full(exc: BaseException) -> bool:
    return _is(exc, FULL, _FULL_TEXT)


def is_read_only(exc: BaseException) -> bool:
    return _is(exc, READ_ONLY, _READ_ONLY_TEXT)


def reason(exc: BaseException) -> str:
    """The shortest true reason: ``No space left on device``, else the error's own text."""
    for error in _errors(exc):
        if isinstance(error, OSError) and error.strerror:
            return error.strerror
    text = " ".join(str(exc).split())
    for known in (*_FULL_TEXT, *_READ_ONLY_TEXT):  # pygit2, sqlite: the reason inside a text
        if known in text:
            return known
    return text or type(exc).__name__


def what_to_do(exc: BaseException) -> str:
    """The advice that ends a one-line error."""
    if is_disk_full(exc):
        return "free disk space, then retry"
    if is_read_only(exc):
        return "make the repository's .git writable (is it mounted read-only?), then retry"
    return "check the disk, then retry"
