"""One mechanism for every generator: preview, or write atomically inside the project.

A generator renders text; ``deliver`` either returns it (preview, writes
nothing) or writes it atomically, refusing to overwrite without
``overwrite: true`` and refusing any path outside the project root or inside
``.git``, however links lead there (``_safe_paths``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from controlplane.core.actions import project_path
from controlplane.core.errors import Conflict, InvalidInput
from controlplane.core.integrations._atomic_files import write_atomic
from controlplane.core.integrations._safe_paths import (
    Landing,
    UnsafePath,
    check,
    relative_in,
    written_path,
)


class GenerateParams(BaseModel):
    """The fields every generator shares."""

    write: bool = Field(False, description="write the file (default: preview only)")
    overwrite: bool = Field(False, description="replace an existing file")

    @field_validator("output", check_fields=False)
    @classmethod
    def _lands_in_the_project(cls, value: str | None, info: ValidationInfo) -> str | None:
        """422 before any run when a link takes the output out of the project or into .git."""
        return written_path(value, info)


def deliver(root: Path, relative: str, content: str, params: GenerateParams,
            field_name: str = "path") -> dict[str, Any]:
    """Preview or write *content* at *relative*; the result names path, size and hash.

    Written files are the owner's alone (0600: a generated .env holds secrets). A path that
    a link takes out of the project or into .git is refused naming *field_name*.
    """
    target = project_path(root, relative, field_name)
    try:
        landing = Landing(".", True, True) if target == root.resolve() else \
            check(root, relative_in(root, target))
    except UnsafePath as exc:
        raise UnsafePath(relative, exc.why, field_name) from None
    digest = hashlib.sha256(content.encode()).hexdigest()
    result: dict[str, Any] = {"path": str(target.relative_to(root.resolve())), "content": content,
                              "sha256": digest, "written": False, "exists": landing.exists}
    if not params.write:
        return result
    if landing.is_dir:  # the root or a directory
        problem = f"{relative!r} is a directory, not a file"
        raise InvalidInput({field_name: problem}, f"{field_name}: {problem}")
    if landing.exists and not params.overwrite:
        raise Conflict(f"{result['path']} exists: send \"overwrite\": true to replace it",
                       path=result["path"])
    try:
        write_atomic(target, content.encode("utf-8"), mode=0o600, root=root)
    except UnsafePath as exc:  # a link put in place since the check
        raise UnsafePath(relative, exc.why, field_name) from None
    result["written"] = True
    return result
