"""Secret redaction: every line of output and every stored value passes through here.

What is replaced by ``***``:

- registered values (vault values, secret-looking environment variables), also in
  their base64 (at any of the three byte alignments inside longer base64 data),
  URL-encoded and JSON-escaped forms, and each line of a multi-line value;
- token shapes: GitHub tokens (``ghp_…``, ``github_pat_…``), AWS key ids
  (``AKIA…``), Slack tokens (``xox?-…``), PEM private key blocks, the value of
  ``password=`` / ``passwd=`` / ``token=`` / ``secret=`` / ``api_key=`` assignments
  (and ``:``), of ``Authorization: Bearer`` headers, and the password of a URL's
  userinfo (``postgres://user:***@host``).

Secrets are matched in the text as a terminal shows it (``visible_text``: escape
sequences dropped, ``\r`` and ``\b`` applied) as well as in the raw text.

Time is linear in the length of the text (a 1 MiB line is redacted in well under a
second whatever it holds): no pattern rescans a run of characters from each of its
positions, and each shape runs only on lines holding its trigger word.

Limits: a value printed by a process that never learnt it is secret cannot be
caught unless it has one of the shapes above; values shorter than 6 characters
are not registered (they would redact ordinary words); a private key streamed
line by line is only caught on its BEGIN line unless the key itself is registered;
an assignment whose name runs on for more than 64 characters after the secret word
is not recognised.

Thread-safe: registering rebuilds the patterns and swaps them in atomically, so
``redact`` never takes a lock.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from functools import cached_property
from itertools import islice
from urllib.parse import quote, quote_plus

from controlplane.core.lazy import Lazy
from controlplane.core.plain_data import plain_data
from controlplane.core.visible_text import has_hidden, visible_text

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    import base64
    from typing import Any
else:
    base64 = Lazy(globals(), "base64")  # for registered secrets only

MASK = "***"
MIN_SECRET_LENGTH = 6
# A line with more secrets than this is withheld whole: no output has that many, and
# masking them one by one would cost Python work per secret.
MAX_SECRETS_PER_LINE = 2_000
WITHHELD = f"{MASK} [line withheld: more than {MAX_SECRETS_PER_LINE} secrets in it]"

# Names whose values are secrets: these words anywhere, or a *_KEY / *_KEY_ID suffix (not
# KEY_FILE, KEYBOARD).
_SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|API_?KEY|PRIVATE_?KEY|CREDENTIAL|_KEY$|_KEY_ID$",
    re.IGNORECASE,
)
# Environment variables only (a key "auth" in a result is usually a section, not a value):
# AUTH / AUTHORIZATION as the whole name or its last word (NPM_AUTH, not GIT_AUTHOR_NAME).
_SECRET_ENV_NAME = re.compile(r"(?:^|_)AUTH(?:ORIZATION)?$", re.IGNORECASE)

# Each shape masks the group that matched (its values are alternatives), or the whole match.
# Every shape runs in time linear in the line: a run of characters is never rescanned from
# each of its positions (possessive quantifiers, a bounded name after a secret word), and
# each shape runs only if the line holds its trigger. Shapes matched on the lowered line
# have lowercase patterns.
_NOT_A_VALUE = r"(?!(?:yes|no|true|false|none|null)\b)"  # flags, not secrets
_ASSIGN_VALUE = r"""(?:"([^"\n]++)"|'([^'\n]++)'|""" + _NOT_A_VALUE + r"""([^\s"'&;,]++))"""
# After ':' (YAML, JSON, type hints) an unquoted value must look like a secret: 6+ characters.
_COLON_VALUE = r"""(?:"([^"\n]++)"|'([^'\n]++)'|([^\s"'&;,()\[\]]{6,}+))"""
_SECRET_WORDS = ("passw", "token", "secret", "api_key", "apikey", "api-key")


@plain_data(frozen=True)
class _Shape:
    source: str
    triggers: tuple[str, ...]  # the line (lowered if ``lowered``) holds one of these
    lowered: bool = False

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        """Compiled when a line first holds a trigger (not at import: start-up time)."""
        return re.compile(self.source)


_SHAPES = (
    _Shape(r"gh[pousr]_[A-Za-z0-9]{36,}+", ("gh",)),
    _Shape(r"github_pat_[A-Za-z0-9_]{22,}+", ("github_pat_",)),
    _Shape(r"AKIA[0-9A-Z]{16}", ("AKIA",)),
    _Shape(r"xox[abprs]-[A-Za-z0-9-]{10,}+", ("xox",)),
    _Shape((r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*?)"
            r"(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)"), ("-----BEGIN ",)),
    _Shape((r"authorization[\"']?+[ \t]*+[:=][ \t]*+[\"']?+(?:bearer|basic|token)"
            r"[ \t]++([^\s\"',;]++)"), ("authorization",), lowered=True),
    _Shape(r"\bbearer[ \t]++([a-z0-9._~+/-]{16,}+=*+)", ("bearer",), lowered=True),
    # a name holding a secret word (GITHUB_TOKEN, db.password, "x-api-key"), then = or :; at
    # most 64 name characters after the word
    _Shape((r"(?:passw(?:or)?d|token|secret|api[_-]?key)[a-z0-9_.-]{0,64}+[\"']?+"
            r"[ \t]*+(?:=[ \t]*+" + _ASSIGN_VALUE + r"|:[ \t]*+" + _COLON_VALUE + ")"),
           _SECRET_WORDS, lowered=True),
    # the password of a URL's userinfo (scheme://user:password@host): up to the last '@'
    _Shape(r"://[^\s/?#@:]*+:([^\s/?#]+)@", ("://",)),
)


def _lowered(text: str) -> str:
    """*text* lowercased, each character staying at its index (İ alone grows in ``lower``)."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text.replace("\u0130", "i").lower()


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
        names = sorted(name for name, value in environ.items()
                       if value and (looks_secret(name) or _SECRET_ENV_NAME.search(name)))
        self.register_many(environ[name] for name in names)
        return names

    def clear(self) -> None:
        """Forget every registered value (the token shapes stay)."""
        with self._lock:
            self._literals = set()
            self._compile()

    def redact(self, text: str) -> str:
        """Return *text* with every secret replaced by ``***``.

        Secrets are looked for in the text as a terminal shows it (``visible_text``) and
        in the raw text; if either holds one, the visible text comes back, redacted (its
        colours and overwritten parts are lost). Otherwise *text* comes back unchanged.
        """
        if not has_hidden(text):
            return self._redact_plain(text)
        visible = visible_text(text)
        masked = self._redact_plain(visible)
        if masked is visible and self._redact_plain(text) is text:
            return text
        return masked

    def _redact_plain(self, text: str) -> str:
        """*text* with secrets masked, matched as it is; *text* itself if there is none."""
        if not text:
            return text
        trigger, overlapping = self._patterns
        spans: list[tuple[int, int]] = []
        if trigger is not None and trigger.search(text) is not None:
            assert overlapping is not None
            found = overlapping.get().finditer(text)
            spans += [(m.start(), m.end(1)) for m in islice(found, MAX_SECRETS_PER_LINE + 1)]
        lowered = None
        for shape in _SHAPES:
            if len(spans) > MAX_SECRETS_PER_LINE:
                return WITHHELD
            if shape.lowered and lowered is None:
                lowered = _lowered(text)
            subject = lowered if shape.lowered else text
            assert subject is not None
            for word in shape.triggers:  # a loop, not any(): no generator per shape
                if word in subject:
                    found = shape.pattern.finditer(subject)
                    spans += [m.span(m.lastindex or 0)
                              for m in islice(found, MAX_SECRETS_PER_LINE + 1)]
                    break
        if len(spans) > MAX_SECRETS_PER_LINE:
            return WITHHELD
        merged: list[list[int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:  # overlapping or adjacent
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        if not merged:
            return text
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
