"""Finding the project's own Python tools: its virtual environment first, never the server's.

Also where checks keep what tools would otherwise write into the work tree (caches,
bytecode): ``<git dir>/scp/cache/<tool>`` (DECISIONS §9).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from controlplane.core.ledger import NotARepository, find_git_dir

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


def interpreter(root: Path, module: str, env: Mapping[str, str] | None = None) -> str:
    """Which Python runs *module*, said for a result: the project's venv or the tool on PATH."""
    python = project_python(root)
    if python is not None:
        return f"{python.relative_to(root)} (the project's virtual environment)"
    found = shutil.which(module, path=(env or os.environ).get("PATH"))
    return f"{found or module} (on PATH: the project has no .venv)"


def cache_dir(root: Path, tool: str) -> Path:
    """``<git dir>/scp/cache/<tool>``, created; outside a repository a private temp dir."""
    try:
        base = find_git_dir(root)[1] / "scp" / "cache"
    except NotARepository:
        digest = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
        base = Path(tempfile.gettempdir()) / f"scp-cache-{os.getuid()}" / digest
    path = base / tool
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def no_write_env(root: Path) -> dict[str, str]:
    """Environment for a check: Python's bytecode goes under the cache, not ``__pycache__/``."""
    return {"PYTHONPYCACHEPREFIX": str(cache_dir(root, "pycache"))}
