"""Text as a terminal would show it: what redaction matches secrets against.

A secret printed with colour codes between its characters (``s\\x1b[31mecr\\x1b[0met``),
rewritten after a carriage return or a backspace, or with NULs or zero-width
characters inside, shows on a terminal as the secret itself. :func:`visible_text`
drops every escape sequence (CSI, OSC, DCS, SOS, PM, APC, C1 forms, bare ESC),
other C0/C1 controls and zero-width characters, then applies ``\\r`` (back to
column 0) and ``\\b`` (one column left) as overwrites, line by line.

Limits: cursor movement sequences (``ESC [ n D``, ``ESC [ n G``…) are dropped,
not applied; every character counts as one column (wide characters too).
Every step is linear in the length of the text.
"""

from __future__ import annotations

import re

# Anything a terminal does not print as itself; \t and \n are kept as they are. Compiled
# at first use (~0.5 ms, its ranges past U+00FF): a printable text (``str.isprintable``,
# false for every character here) needs no search.
_HIDDEN = r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2060-\u2064\ufeff]"
_SEQUENCE = (  # compiled at first use (~0.5 ms): most text holds nothing hidden
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*+[\x20-\x2f]*+[\x40-\x7e]?"  # CSI, maybe cut short
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*+(?:\x07|\x1b\\|\x9c)?"  # strings
    r"|\x1b[\x20-\x2f]*+[\x30-\x7e]?"  # any other escape sequence, or a bare ESC
    r"|[\x00-\x07\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2060-\u2064\ufeff]"  # zero width
)
_CURSOR = r"([\r\x08]+)"  # a run holding \r ends at column 0


def has_hidden(text: str) -> bool:
    """Whether *text* holds anything a terminal does not print as itself."""
    return not text.isprintable() and re.search(_HIDDEN, text) is not None


def visible_text(text: str) -> str:
    """*text* as a terminal shows it (see the module docstring); *text* itself if plain."""
    if not has_hidden(text):
        return text
    text = re.sub(_SEQUENCE, "", text)  # re caches the compiled pattern
    if "\r" not in text and "\b" not in text:
        return text
    return "\n".join(_overwrite(line) for line in text.split("\n"))


def _overwrite(line: str) -> str:
    """One line after its carriage returns and backspaces moved the cursor back."""
    if "\b" not in line:
        return _after_returns(line)
    pieces = re.split(_CURSOR, line)  # text, moves, text, moves, ..., text
    cells = list(pieces[0])
    column = len(cells)
    for index in range(1, len(pieces), 2):
        moves, piece = pieces[index], pieces[index + 1]
        column = 0 if "\r" in moves else max(0, column - len(moves))
        if piece:
            end = column + len(piece)
            cells[column:end] = piece  # same length, or growing at the end: O(len(piece))
            column = end
    return "".join(cells)


def _after_returns(line: str) -> str:
    """Each segment after a ``\\r`` overwrites the start of the line: the last one wins."""
    segments = line.split("\r")
    if len(segments) == 1:
        return line
    longest = max(map(len, segments))
    shown = [segments[-1]]
    covered = len(segments[-1])
    for segment in reversed(segments[:-1]):
        if covered >= longest:
            break
        if len(segment) > covered:
            shown.append(segment[covered:])
            covered = len(segment)
    return "".join(shown)
