"""Finding the project's own Python tools: its virtual environment first, never the server's."""

from __future__ import annotations

from pathlib import Path

VENV_DIRS = (".venv", "venv", "env")


def project_python(root: Path) -> Path | None:
    """The interpreter of the project's virtual environment, if it has one."""
    for name in VENV_DIRS:
        candidate = root / name / "bin" / "python"
        if candidate.exists():
            return candidate
    return None


def python_tool(root: Path, module: str, executable: str | None = None) -> list[str]:
    """argv prefix for a Python tool: ``<venv python> -m module``, else the tool on PATH."""
    python = project_python(root)
    if python is not None:
        return [str(python), "-m", module]
    return [executable or module]
