"""Chat: messages stored in the ledger (they sync like runs), mentioning runs as ``@run:<id>``."""

from __future__ import annotations

import re
from typing import Any

from controlplane.core import redact
from controlplane.core.errors import ControlPlaneError, InvalidInput
from controlplane.core.events import EventBus
from controlplane.core.ledger import Ledger, LedgerWriteError, disk_errors
from controlplane.core.runs import iso, new_run_id, run_id_time

MENTION = re.compile(r"@run:(\d{8}T\d{9}Z-[0-9a-f]{8})", re.ASCII)  # \d: 0-9 only
MAX_TEXT = 4_000


class MessageNotStored(ControlPlaneError):
    """The ledger refused the message: 507 when the disk is full, else 503 (read-only, busy)."""

    status, code = 503, "ledger_unwritable"

    def __init__(self, exc: BaseException) -> None:
        if disk_errors.is_disk_full(exc):
            self.status, self.code = 507, "insufficient_storage"
        super().__init__(f"the message was not posted: the ledger could not be written "
                         f"({disk_errors.reason(exc)}); {disk_errors.what_to_do(exc)}")


def mentions(text: str) -> list[str]:
    """The run ids a text mentions, in order, each once."""
    return list(dict.fromkeys(MENTION.findall(text)))


def post_message(ledger: Ledger, bus: EventBus, text: Any, author: dict[str, str]) -> dict:
    """Record a message in the ledger, publish ``chat:message``.

    InvalidInput (naming ``text``) if it is empty, too long or not valid Unicode;
    MessageNotStored (507/503) if the ledger cannot be written.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput({"text": "write a message"})
    if len(text) > MAX_TEXT:
        raise InvalidInput({"text": f"at most {MAX_TEXT} characters"})
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in JSON) cannot be stored
        raise InvalidInput({"text": "not valid Unicode text (a lone surrogate)"}) from None
    message_id = new_run_id()
    clean = redact.redact(text.strip())
    message = {"schema": 1, "message_id": message_id, "text": clean, "author": author,
               "at": iso(run_id_time(message_id)), "mentions": mentions(clean)}
    bus.announce(message_id)  # feeds on a shared bus leave it to us (BusUnavailable: 503)
    try:
        ledger.record_message(message)
    except (LedgerWriteError, OSError) as exc:
        raise MessageNotStored(exc) from exc
    bus.publish("chat:message", with_runs(ledger, [message])[0])
    return message


def with_runs(ledger: Ledger, messages: list[dict]) -> list[dict]:
    """Messages with a ``runs`` map of what each mention is (status, subtype, summary)."""
    shown = []
    for message in messages:
        runs = {}
        for run_id in message.get("mentions", []):
            run = ledger.index.get(run_id)
            if run is not None:
                runs[run_id] = {"status": run.get("status"), "subtype": run.get("subtype"),
                                "summary": run.get("summary", "")}
        shown.append({**message, "runs": runs})
    return shown
