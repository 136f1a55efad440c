"""The checks that spare a command its largest patterns answer as the patterns do.

``has_hidden`` asks ``str.isprintable`` before its pattern, ``has_surrogate`` asks the
UTF-8 encoder instead of one (compiling them cost every ``exec`` ~1 ms, issue 18 item 8):
both are compared with the pattern over every code point, alone and inside text.
"""

from __future__ import annotations

import re
import sys

from controlplane.core.output import has_surrogate, valid_obj, valid_text
from controlplane.core.visible_text import has_hidden

HIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2060-\u2064\ufeff]")
SURROGATE = re.compile("[\ud800-\udfff]")


def every_code_point() -> str:
    return "".join(map(chr, range(sys.maxunicode + 1)))


def test_has_hidden_answers_as_its_pattern_for_every_code_point() -> None:
    for char in every_code_point():
        for text in (char, f"plain {char} text", f"tab\t{char}"):
            assert has_hidden(text) == bool(HIDDEN.search(text)), hex(ord(char))


def test_has_surrogate_answers_as_its_pattern_for_every_code_point() -> None:
    for char in every_code_point():
        for text in (char, f"ascii {char}", f"été {char} ✓"):
            assert has_surrogate(text) == bool(SURROGATE.search(text)), hex(ord(char))


def test_lone_surrogates_are_still_shown_as_their_bytes() -> None:
    name = b"report-\xff.txt".decode("utf-8", "surrogateescape")
    assert valid_text(name) == "report-\\xff.txt"
    assert valid_obj({"path": name, "ok": ["été"]}) == {"path": "report-\\xff.txt",
                                                          "ok": ["été"]}
    plain = {"path": "été"}
    assert valid_obj(plain) is plain
