"""Terraform's ``sensitive``: which values never reach the ledger, and masking them.

- :func:`sensitive_variables`: the variables a configuration declares ``sensitive = true``
  (``.tf`` and ``.tf.json`` files of its directory);
- :func:`mask_plan`: a ``terraform show -json`` document with every sensitive value
  replaced by ``***`` (``before_sensitive``/``after_sensitive``/``sensitive_values``
  markers, outputs and variables marked ``"sensitive": true``, the values of sensitive
  root variables), and the values it masked, to register with the redactor.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from controlplane.core.redact import MASK

MAX_CONFIG_BYTES = 1 << 20  # a larger .tf file is not read
_VARIABLE = re.compile(r'^[ \t]*variable[ \t]+"([^"\n]+)"[ \t]*\{', re.MULTILINE)
_SENSITIVE = re.compile(r"^[ \t]*sensitive[ \t]*=[ \t]*true\b", re.MULTILINE)
# what can hide a brace: strings, comments
_BRACE = re.compile(r'"(?:[^"\\\n]|\\.)*+"|#[^\n]*+|//[^\n]*+|/\*(?s:.*?)\*/|[{}]')
_MARKED = (("before", "before_sensitive"), ("after", "after_sensitive"),
           ("values", "sensitive_values"))


def sensitive_variables(config_dir: Path) -> set[str]:
    """Names of the variables declared ``sensitive = true`` in *config_dir* (not its modules)."""
    names: set[str] = set()
    try:
        files = sorted(config_dir.iterdir())
    except OSError:
        return names
    for path in files:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_CONFIG_BYTES:
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if path.name.endswith(".tf"):
            names |= _sensitive_in_hcl(text)
        elif path.name.endswith(".tf.json"):
            names |= _sensitive_in_json(text)
    return names


def _sensitive_in_hcl(text: str) -> set[str]:
    names = set()
    for block in _VARIABLE.finditer(text):
        body = text[block.end():_block_end(text, block.end())]
        if _SENSITIVE.search(body):
            names.add(block.group(1))
    return names


def _block_end(text: str, start: int) -> int:
    """Where the block whose ``{`` ends just before *start* closes."""
    depth = 1
    for token in _BRACE.finditer(text, start):
        if token.group() == "{":
            depth += 1
        elif token.group() == "}":
            depth -= 1
            if depth == 0:
                return token.start()
    return len(text)


def _sensitive_in_json(text: str) -> set[str]:
    try:
        variables = json.loads(text).get("variable") or {}
    except (ValueError, AttributeError, RecursionError):
        return set()
    if not isinstance(variables, dict):
        return set()
    return {name for name, spec in variables.items()
            if isinstance(spec, dict) and spec.get("sensitive") is True}


def mask_plan(plan: Any, sensitive: set[str]) -> tuple[Any, list[str]]:
    """*plan* (``terraform show -json``) with sensitive values masked, and those values.

    *sensitive* names root variables known to be sensitive (from the configuration);
    the plan's own ``configuration`` adds those it marks.
    """
    found: list[str] = []
    if not isinstance(plan, dict):
        return plan, found
    root = ((plan.get("configuration") or {}).get("root_module") or {})
    declared = root.get("variables") if isinstance(root, dict) else None
    if isinstance(declared, dict):
        sensitive = sensitive | {name for name, spec in declared.items()
                                 if isinstance(spec, dict) and spec.get("sensitive") is True}
    masked = _walk(plan, found)
    variables = masked.get("variables")
    if isinstance(variables, dict):
        masked["variables"] = {
            name: ({**spec, "value": _mask(spec["value"], found)}
                   if name in sensitive and isinstance(spec, dict) and "value" in spec else spec)
            for name, spec in variables.items()}
    return masked, found


def _walk(node: Any, found: list[str]) -> Any:
    if isinstance(node, list):
        return [_walk(item, found) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _walk(value, found) for key, value in node.items()}
    for value_key, marker_key in _MARKED:
        if value_key in out and marker_key in node:
            out[value_key] = _apply_marker(out[value_key], node[marker_key], found)
    if node.get("sensitive") is True:
        for key in ("value", "default", "before", "after"):
            if key in out:
                out[key] = _mask(out[key], found)
    return out


def _apply_marker(value: Any, marker: Any, found: list[str]) -> Any:
    """*value* masked where *marker* (the same shape, ``true`` at sensitive parts) says."""
    if marker is True:
        return _mask(value, found)
    if isinstance(marker, dict) and isinstance(value, dict):
        return {key: _apply_marker(item, marker.get(key), found) for key, item in value.items()}
    if isinstance(marker, list) and isinstance(value, list):
        return [_apply_marker(item, marker[i] if i < len(marker) else None, found)
                for i, item in enumerate(value)]
    return value


def _mask(value: Any, found: list[str]) -> Any:
    """``***`` for a value (None stays None); its scalar leaves are added to *found*."""
    if value is None:
        return None
    _leaves(value, found)
    return MASK


def _leaves(value: Any, found: list[str]) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _leaves(item, found)
    elif isinstance(value, list):
        for item in value:
            _leaves(item, found)
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
        found.append(str(value))
