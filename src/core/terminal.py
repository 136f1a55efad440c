"""Make text from the ledger, the journal, the bus or ingest safe to print on a terminal.

Anyone who can push, ingest or run a tool writes such text. Printed raw, ``ESC ] 52``
writes the operator's clipboard, ``ESC ] 0`` retitles the window, ``ESC [ 2J`` clears
the screen, ``U+009B`` is a one-character CSI. :func:`clean` keeps SGR colour
sequences (``ESC [ 0-9;: m``) only when asked (a TTY), removes every other escape
sequence (CSI, OSC, DCS, SOS, PM, APC, C1 forms, bare ESC) and shows every other
C0/C1 control as ``\\xNN`` text, keeping ``\\n`` and ``\\t``.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False  # typing: ~3 ms of every command's start (runs list imports this)
if TYPE_CHECKING:
    from typing import IO

_SGR = r"\x1b\[[0-9;:]*m"  # patterns compiled at first use: exec prints none of its own
_SEQUENCE = (
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"  # CSI, maybe cut short
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|\Z)"  # strings to ST/BEL
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"  # any other escape sequence, or a bare ESC
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # any other control: shown escaped
)


def clean(text: str, colour: bool = False) -> str:
    """*text* without terminal controls; SGR colours kept if *colour*."""
    if not isinstance(text, str):
        text = str(text)

    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        if len(found) == 1 and found not in "\x1b\x9b\x90\x98\x9d\x9e\x9f":
            return f"\\x{ord(found):02x}"
        return found if colour and re.fullmatch(_SGR, found) else ""

    return re.sub(_SEQUENCE, replace, text, flags=re.DOTALL)  # re caches the compiled pattern


def clean_for(stream: IO[str] | None, text: str) -> str:
    """:func:`clean` for *stream*: colours kept only when it is a terminal."""
    try:
        colour = bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real file
        colour = False
    return clean(text, colour=colour)
