"""One mechanism for every generator: preview, or write atomically inside the project.

A generator renders text; ``deliver`` either returns it (preview, writes
nothing) or writes it atomically, refusing to overwrite without
``overwrite: true`` and refusing any path outside the project root.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from controlplane.core.actions import project_path
from controlplane.core.errors import Conflict, InvalidInput


class GenerateParams(BaseModel):
    """The fields every generator shares."""

    write: bool = Field(False, description="write the file (default: preview only)")
    overwrite: bool = Field(False, description="replace an existing file")


def deliver(root: Path, relative: str, content: str, params: GenerateParams,
            field_name: str = "path") -> dict[str, Any]:
    """Preview or write *content* at *relative*; the result names path, size and hash."""
    target = project_path(root, relative, field_name)
    digest = hashlib.sha256(content.encode()).hexdigest()
    result: dict[str, Any] = {"path": str(target.relative_to(root.resolve())), "content": content,
                              "sha256": digest, "written": False, "exists": target.exists()}
    if not params.write:
        return result
    if target.is_dir():  # the root or a directory: its temp file would land beside it
        problem = f"{relative!r} is a directory, not a file"
        raise InvalidInput({field_name: problem}, f"{field_name}: {problem}")
    if target.exists() and not params.overwrite:
        raise Conflict(f"{result['path']} exists: send \"overwrite\": true to replace it",
                       path=result["path"])
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    result["written"] = True
    return result
