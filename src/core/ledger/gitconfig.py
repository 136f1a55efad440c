"""git configuration read from its files, for processes that write the ledger without pygit2.

The files libgit2 reads, in its order (later wins): the system ``/etc/gitconfig``, the
XDG ``git/config``, ``~/.gitconfig`` and the repository's ``config``. Only the plain
syntax is read (sections, ``key = value``, quotes, ``#``/``;`` comments); an include, a
continued line, an escape other than ``\\"``, ``\\\\``, ``\\n``, ``\\t`` or a ``GIT_CONFIG*``
variable in the environment raises ``Unsupported``: the caller then asks libgit2, which
reads those as git does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_SECTION = re.compile(r'\[\s*([A-Za-z0-9.-]+)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\]')
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "b": "\b"}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", ""}


class Unsupported(Exception):
    """This configuration, repository or object needs libgit2 to be read as git would."""


def config_files(git_dir: Path) -> list[Path]:
    """The configuration files libgit2 reads for the repository at *git_dir*, lowest first."""
    if any(name.startswith("GIT_CONFIG") for name in os.environ):
        raise Unsupported("GIT_CONFIG* is set")
    home = os.environ.get("HOME") or os.path.expanduser("~")
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return [Path("/etc/gitconfig"), Path(xdg, "git", "config"), Path(home, ".gitconfig"),
            git_dir / "config"]


def read_config(git_dir: Path) -> dict[str, str | None]:
    """Every key (``section.subsection.key``, section and key lower-cased) to its last
    value; a key without ``=`` maps to None (git's "true")."""
    values: dict[str, str | None] = {}
    for path in config_files(git_dir):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise Unsupported(f"{path}: {exc}") from None
        values.update(parse(text, str(path)))
    return values


def parse(text: str, origin: str = "config") -> dict[str, str | None]:
    """The keys of one configuration file's *text*."""
    found: dict[str, str | None] = {}
    section = None
    for number, line in enumerate(text.splitlines(), 1):
        rest = line.strip()
        while rest.startswith("["):
            match = _SECTION.match(rest)
            if match is None:
                raise Unsupported(f"{origin}:{number}: a section header not read here")
            name, sub = match.group(1).lower(), match.group(2)
            if name in ("include", "includeif") or name.startswith("includeif."):
                raise Unsupported(f"{origin}:{number}: includes")
            section = name if sub is None else f"{name}.{_unquote(sub, origin, number)}"
            rest = rest[match.end():].strip()
        if not rest or rest[0] in "#;":
            continue
        if section is None:
            raise Unsupported(f"{origin}:{number}: a key outside a section")
        key, equals, value = rest.partition("=")
        key = key.strip().lower()
        if not re.fullmatch(r"[a-z][a-z0-9-]*", key):
            raise Unsupported(f"{origin}:{number}: key {key!r}")
        found[f"{section}.{key}"] = _value(value, origin, number) if equals else None
    return found


def _value(raw: str, origin: str, number: int) -> str:
    """A value as git reads it: quotes joined, comments cut, escapes applied."""
    out: list[str] = []
    quoted = False
    pending_space = ""
    index = 0
    raw = raw.strip()
    while index < len(raw):
        char = raw[index]
        if char == "\\":
            if index + 1 >= len(raw):
                raise Unsupported(f"{origin}:{number}: a continued line")
            escaped = _ESCAPES.get(raw[index + 1])
            if escaped is None:
                raise Unsupported(f"{origin}:{number}: escape \\{raw[index + 1]}")
            out.append(pending_space + escaped)
            pending_space = ""
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "#;":
            break
        elif not quoted and char.isspace():
            pending_space += char
        else:
            out.append(pending_space + char)
            pending_space = ""
        index += 1
    if quoted:
        raise Unsupported(f"{origin}:{number}: an unclosed quote")
    return "".join(out)


def _unquote(sub: str, origin: str, number: int) -> str:
    return re.sub(r"\\(.)", lambda m: m.group(1), sub)


def boolean(value: str | None) -> bool:
    """git's reading of a boolean value (None: the key without ``=``, true)."""
    if value is None:
        return True
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise Unsupported(f"not a boolean: {value!r}")


def integer(value: str | None) -> int:
    """git's reading of an integer (``k``, ``m``, ``g`` suffixes)."""
    if value is None:
        raise Unsupported("an integer without a value")
    text = value.strip().lower()
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:], 1)
    try:
        return int(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise Unsupported(f"not an integer: {value!r}") from None
