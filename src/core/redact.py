"""Secret redaction: every line of output and every stored value passes through here.

What is replaced by ``***``:

- registered values (vault values, secret-looking environment variables), also in
  their base64 (at any of the three byte alignments inside longer base64 data),
  URL-encoded and JSON-escaped forms, and each line of a multi-line value;
- token shapes: GitHub tokens (``ghp_…``, ``github_pat_…``), AWS key ids
  (``AKIA…``), Slack tokens (``xox?-…``), PEM private key blocks, the value of
  ``password=`` / ``passwd=`` / ``token=`` / ``secret=`` assignments and of
  ``Authorization: Bearer`` headers.

Limits: a value printed by a process that never learnt it is secret cannot be
caught unless it has one of the shapes above; values shorter than 6 characters
are not registered (they would redact ordinary words); a private key streamed
line by line is only caught on its BEGIN line unless the key itself is registered.

Thread-safe: registering rebuilds the patterns and swaps them in atomically, so
``redact`` never takes a lock.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_SECRET_LENGTH = 6

_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|_KEY$|_KEY_ID$", re.IGNORECASE)

# Each shape redacts its first participating group, or the whole match if it has none.
_NOT_A_VALUE = r"(?!(?i:yes|no|true|false|none|null)\b)"  # flags, not secrets
_ASSIGN_VALUE = r"""(?:"([^"\n]+)"|'([^'\n]+)'|""" + _NOT_A_VALUE + r"""([^\s"'&;,]+))"""
# After ':' (YAML, JSON, type hints) an unquoted value must look like a secret: 6+ characters.
_COLON_VALUE = r"""(?:"([^"\n]+)"|'([^'\n]+)'|([^\s"'&;,()\[\]]{6,}))"""
_SHAPES: tuple[str, ...] = (
    r"gh[pousr]_[A-Za-z0-9]{36,}",
    r"github_pat_[A-Za-z0-9_]{22,}",
    r"AKIA[0-9A-Z]{16}",
    r"xox[abprs]-[A-Za-z0-9-]{10,}",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
    r"(?i:authorization)[\"']?[ \t]*[:=][ \t]*[\"']?(?i:bearer|basic|token)[ \t]+([^\s\"',;]+)",
    r"(?i:\bbearer)[ \t]+([A-Za-z0-9._~+/-]{16,}=*)",
    r"(?i:password|passwd|token|secret)[A-Za-z0-9_.-]*[\"']?[ \t]*=[ \t]*" + _ASSIGN_VALUE,
    r"(?i:password|passwd|token|secret)[A-Za-z0-9_.-]*[\"']?[ \t]*:[ \t]*" + _COLON_VALUE,
)
_SHAPE_RES = tuple(re.compile(shape) for shape in _SHAPES)
# Cheap tests that every shape needs to pass, so that a clean line costs about a microsecond.
_SHAPE_STARTS = re.compile(r"gh[pousr]_|github_pat_|AKIA|xox[abprs]-|-----BEGIN ")


def _has_shape_word(text: str) -> bool:
    lowered = text.lower()
    return (
        "passw" in lowered
        or "token" in lowered
        or "secret" in lowered
        or "bearer" in lowered
        or "authoriz" in lowered
    )


def looks_secret(name: str) -> bool:
    """Whether a variable or key *name* looks like it holds a secret."""
    return bool(_SECRET_NAME.search(name))


def _trie_pattern(words: Iterable[str]) -> str:
    """A regex matching any of *words*, longest first, with common prefixes factored out.

    Python's ``re`` tries the branches of a flat alternation one by one at every position;
    a trie makes a line without secrets cheap however many values are registered.
    """
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        chain = ""
        while len(node) == 1 and "" not in node:  # no branching: no group needed
            (char, node) = next(iter(node.items()))
            chain += re.escape(char)
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return chain
        group = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:  # a word ends here; the greedy ? still prefers the longer words
            return f"{chain}(?:{group})?"
        return chain + group

    return build(trie) if trie else ""


def _base64_forms(raw: bytes) -> set[str]:
    """The parts of base64 output that are the same wherever *raw* sits in longer data."""
    forms = {base64.b64encode(raw).decode("ascii")}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii").rstrip("=")
        # chars carrying bits of the prefix bytes, and the last char if it shares
        # bits with whatever byte follows the secret
        start = (shift * 8 + 5) // 6
        end = len(encoded) - (1 if (shift + len(raw)) % 3 else 0)
        forms.add(encoded[start:end])
    forms |= {form.replace("+", "-").replace("/", "_") for form in forms}
    return forms


def _forms(value: str) -> set[str]:
    """*value* and the encodings in which it may show up in output."""
    forms = {line.strip() for line in value.splitlines()}
    forms.add(value)
    forms |= _base64_forms(value.encode("utf-8"))
    forms.add(quote(value, safe=""))
    forms.add(quote_plus(value))
    forms.add(json.dumps(value)[1:-1])
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


class _LazyPattern:
    """A regex compiled when first used (two threads may both compile it: harmless)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.compiled: re.Pattern[str] | None = None

    def get(self) -> re.Pattern[str]:
        if self.compiled is None:
            self.compiled = re.compile(self.source)
        return self.compiled


class Redactor:
    """A set of registered secrets plus the token shapes; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._literals: set[str] = set()
        self._compile()

    def _compile(self) -> None:
        try:
            literals = _trie_pattern(self._literals)
        except RecursionError:  # pathological prefix nesting: a flat alternation will do
            literals = "|".join(re.escape(s) for s in sorted(self._literals, key=len, reverse=True))
        # (one regex for literals and shapes together would be twice as slow)
        trigger = re.compile(literals) if literals else None
        # a lookahead finds the longest literal at every position, so overlaps are seen;
        # only needed once a line has a secret, so compiled on first use
        overlapping = _LazyPattern(f"(?=({literals}))") if literals else None
        self._patterns = (trigger, overlapping)

    def register(self, value: str) -> None:
        """Redact *value* (and its encoded forms) from now on; ignores short values."""
        self.register_many([value])

    def register_many(self, values: Iterable[str]) -> None:
        """Register several values with one rebuild of the patterns."""
        forms: set[str] = set()
        for value in values:
            if isinstance(value, str) and len(value.strip()) >= MIN_SECRET_LENGTH:
                forms |= _forms(value) | _forms(value.strip())
        with self._lock:
            if not forms - self._literals:
                return
            self._literals |= forms
            self._compile()

    def register_env(self, environ: Mapping[str, str] = os.environ) -> list[str]:
        """Register the values of variables whose names look secret; returns those names."""
        names = sorted(name for name, value in environ.items() if value and looks_secret(name))
        self.register_many(environ[name] for name in names)
        return names

    def clear(self) -> None:
        """Forget every registered value (the token shapes stay)."""
        with self._lock:
            self._literals = set()
            self._compile()

    def redact(self, text: str) -> str:
        """Return *text* with every secret replaced by ``***``."""
        trigger, overlapping = self._patterns
        if (
            (trigger is None or trigger.search(text) is None)
            and _SHAPE_STARTS.search(text) is None
            and not _has_shape_word(text)
        ):
            return text
        spans = []
        if overlapping is not None:
            spans += [(m.start(), m.end(1)) for m in overlapping.get().finditer(text)]
        for shape in _SHAPE_RES:
            for m in shape.finditer(text):
                group = next((i for i in range(1, len(m.groups()) + 1) if m.group(i)), 0)
                spans.append(m.span(group))
        merged: list[list[int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:  # overlapping or adjacent
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        parts = []
        done = 0
        for start, end in merged:
            parts += [text[done:start], MASK]
            done = end
        parts.append(text[done:])
        return "".join(parts)

    def redact_obj(self, obj: Any) -> Any:
        """Redact strings inside dicts, lists and tuples; values under secret-looking keys
        become ``***`` (None stays None)."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, Mapping):
            return {
                key: (
                    MASK
                    if isinstance(key, str) and looks_secret(key) and value is not None
                    else self.redact_obj(value)
                )
                for key, value in obj.items()
            }
        if isinstance(obj, list):
            return [self.redact_obj(item) for item in obj]
        if isinstance(obj, tuple):
            return tuple(self.redact_obj(item) for item in obj)
        return obj


redactor = Redactor()
"""The process-wide redactor the module functions use."""


def register_secret(value: str) -> None:
    """Redact *value* everywhere in this process from now on (values < 6 chars are ignored)."""
    redactor.register(value)


def register_env(environ: Mapping[str, str] = os.environ) -> list[str]:
    """Register secret-looking variables of *environ* (default ``os.environ``)."""
    return redactor.register_env(environ)


def redact(text: str) -> str:
    """Return *text* with every known secret and token shape replaced by ``***``."""
    return redactor.redact(text)


def redact_obj(obj: Any) -> Any:
    """Redact a JSON-like structure (see ``Redactor.redact_obj``)."""
    return redactor.redact_obj(obj)
