"""A ledger file's JSON: ``json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1)``,
byte for byte, built without the pure-Python encoder.

With an ``indent``, ``json`` leaves its C encoder for a generator per container level: a
run.json took ~19 µs of a record, most of it in that machinery. Here JSON's own types are
written directly (strings through ``json``'s C escaping); anything else (a key that is not a
string, a type ``json`` would refuse or convert, a cycle) is handed to ``json.dumps``, which
writes it or raises as before.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring  # the C one where built: ensure_ascii=False's

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    from typing import Any

_INFINITY = float("inf")


class _NotPlain(Exception):
    """A value this writer leaves to ``json``."""


def pretty(data: Any) -> str:
    """*data* as ``json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1)``."""
    try:
        return _value(data, "\n")
    except (_NotPlain, RecursionError):
        return json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1)


def _value(value: Any, newline: str) -> str:
    if isinstance(value, str):
        return encode_basestring(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _float(value)
    inner = newline + " "
    if isinstance(value, dict):
        if not value:
            return "{}"
        for key in value:
            if not isinstance(key, str):
                raise _NotPlain
        return "{" + inner + ("," + inner).join(
            [encode_basestring(key) + ": " + _value(item, inner)
             for key, item in sorted(value.items())]) + newline + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        return "[" + inner + ("," + inner).join(
            [_value(item, inner) for item in value]) + newline + "]"
    raise _NotPlain


def _float(value: float) -> str:
    """As ``json`` writes a float (``allow_nan``: NaN and the infinities as JavaScript's)."""
    if value != value:
        return "NaN"
    if value == _INFINITY:
        return "Infinity"
    if value == -_INFINITY:
        return "-Infinity"
    return float.__repr__(value)
