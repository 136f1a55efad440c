"""A test template that keeps the project working: a name that shadows no module or package,
code the project's own ruff accepts (its isort and format settings), and a suite pytest can still
collect (checked in a scratch copy before the file is written).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined

from controlplane.core.actions import ActionContext
from controlplane.core.integrations._project_facts import SKIP_DIRS
from controlplane.core.integrations._python_tools import python_tool

TEMPLATE = Environment(undefined=StrictUndefined, keep_trailing_newline=True,
                       trim_blocks=True).from_string('''\
"""Tests for {{ module_path }}."""

import pytest
{% if names %}

from {{ import_path }} import {{ names | join(", ") }}
{% endif %}

{% for name in functions %}

def test_{{ name }}() -> None:
    assert callable({{ name }})
    pytest.skip("write a test for {{ name }}")

{% endfor %}
{% for name in classes %}

class Test{{ name }}:
    def test_can_be_created(self) -> None:
        assert isinstance({{ name }}, type)
        pytest.skip("write a test for {{ name }}")

{% endfor %}
{% if not names %}

def test_module_imports() -> None:
    import {{ import_path }}  # noqa: F401
{% endif %}
''')
SCRATCH_SKIP = SKIP_DIRS - {"build", "dist", "site", "coverage", "vendor", "env"}


def render(module_path: str, import_path: str, functions: list[str],
           classes: list[str]) -> str:
    """The template's text: each public name imported and used (no unused imports)."""
    text = TEMPLATE.render(module_path=module_path, import_path=import_path,
                           functions=functions, classes=classes, names=functions + classes)
    while "\n\n\n\n" in text:
        text = text.replace("\n\n\n\n", "\n\n\n")
    return text.rstrip("\n") + "\n"


def shadowed(root: Path, relative: str) -> list[str]:
    """Modules or packages the file *relative* would shadow or collide with under pytest's
    rootdir import (same basename: ``tests/test_utils.py`` beside ``tests/test_utils/``)."""
    stem = Path(relative).stem
    found = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        here = Path(directory).relative_to(root)
        if stem in dirs:
            found.append((here / stem).as_posix() + "/")
        if f"{stem}.py" in files and (here / f"{stem}.py").as_posix() != relative:
            found.append((here / f"{stem}.py").as_posix())
    return found


def free_name(root: Path, relative_module: Path, parts: list[str]) -> str | None:
    """``tests/test_<module>.py``, else ``tests/test_<package>_<module>.py``: the first that
    shadows nothing; None when both do."""
    candidates = [f"tests/test_{relative_module.stem}.py"]
    if len(parts) > 1:
        candidates.append(f"tests/test_{'_'.join(parts)}.py")
    return next((c for c in candidates if not shadowed(root, c)), None)


def ruff_fitted(ctx: ActionContext, relative: str, text: str) -> tuple[str, list[str]]:
    """*text* with imports sorted and formatted by the project's ruff and config (read from
    stdin: nothing is written); the findings ruff still reports, and notes."""
    ruff = python_tool(ctx.project_root, "ruff")
    stdin = ["--stdin-filename", relative, "-"]
    sorted_ = ctx.tool([*ruff, "check", "--fix-only", "--exit-zero", "--select", "I", *stdin],
                       stdin_data=text)
    if sorted_.error and sorted_.error.get("code") == "tool_missing":
        return text, ["ruff is not installed: the template was not checked against ruff"]
    if sorted_.ok and sorted_.stdout.strip():
        text = sorted_.stdout
    formatted = ctx.tool([*ruff, "format", *stdin], stdin_data=text)
    if formatted.ok and formatted.stdout.strip():
        text = formatted.stdout
    checked = ctx.tool([*ruff, "check", "--no-fix", "--output-format", "concise", *stdin],
                       stdin_data=text)
    findings = [] if checked.ok else [line for line in checked.stdout.splitlines()
                                      if relative in line or line.startswith("-")]
    return text, findings


def collection_errors(ctx: ActionContext, scratch: Path) -> tuple[int, str]:
    """How many errors ``pytest --collect-only`` reports in *scratch*, and its last lines."""
    result = ctx.tool([*python_tool(ctx.project_root, "pytest"), "--collect-only", "-q",
                       "-p", "no:cacheprovider"], cwd=scratch,
                      extra_env={"PYTHONDONTWRITEBYTECODE": "1"})
    if result.error and result.error.get("code") == "tool_missing":
        return -1, ""
    output = result.stdout + result.stderr
    errors = sum(line.startswith("ERROR ") for line in output.splitlines())
    if result.exit_code not in (0, 5) and not errors:
        errors = 1
    return errors, "\n".join(output.strip().splitlines()[-6:])


def breaks_collection(ctx: ActionContext, relative: str, text: str) -> str | None:
    """pytest's message if adding *text* at *relative* breaks collection (scratch copy)."""
    root = ctx.project_root.resolve()
    with tempfile.TemporaryDirectory(prefix="scp-collect-") as tmp:
        scratch = Path(tmp) / root.name
        shutil.copytree(root, scratch, symlinks=True,
                        ignore=shutil.ignore_patterns(*SCRATCH_SKIP, "*.egg-info"))
        before, _ = collection_errors(ctx, scratch)
        if before < 0:
            return None
        (scratch / relative).parent.mkdir(parents=True, exist_ok=True)
        (scratch / relative).write_text(text, encoding="utf-8")
        after, tail = collection_errors(ctx, scratch)
    return tail or "pytest could not collect the suite" if after > before else None


def refused(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}, **extra}
