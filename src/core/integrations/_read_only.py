"""Checks never write: the guard around every action not declared as writing.

``Runtime.submit`` wraps the service of each action whose ``writes`` is false (for its
params) in ``read_only``, which runs it with the no-write environment (bytecode under
``.git/scp/cache``) and compares the work tree before and after: ``git status
--porcelain`` plus the size and mtime of every path it lists. If a check changed
anything, the run fails ``wrote_files`` naming the paths — whatever the tool's own
configuration said (ruff ``fix = true``, a report file, ``__pycache__``). The
tools' no-write flags stay the primary fix; this is the guard that tells.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controlplane.core.actions import ActionContext, Service
from controlplane.core.integrations._python_tools import no_write_env

IGNORED = (".scp-ledger/",)  # the ledger's own view (excluded from status anyway)
MAX_NAMED = 20


def work_tree_state(root: Path) -> dict[str, tuple[str, int, int]] | None:
    """Each path ``git status`` lists: (status, size, mtime_ns); None outside a work tree."""
    try:
        done = subprocess.run(["git", "status", "--porcelain=v1", "-z", "--untracked-files=all"],
                              cwd=root, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    state = {}
    entries = iter(done.stdout.decode("utf-8", "surrogateescape").split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        if status[0] in "RC":  # a rename's source follows as its own entry
            next(entries, None)
        if path.startswith(IGNORED):
            continue
        try:
            info = os.lstat(root / path)
            state[path] = (status, info.st_size, info.st_mtime_ns)
        except OSError:
            state[path] = (status, -1, -1)
    return state


def changed_paths(before: dict[str, tuple[str, int, int]],
                  after: dict[str, tuple[str, int, int]]) -> list[str]:
    """Paths whose status, size or mtime differ between two states."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def read_only(service: Service,
              writes: Callable[[Any], bool] = lambda params: False) -> Service:
    """*service* as a check: no-write environment, and ``wrote_files`` if it changed the tree.

    *writes(params)* tells a call that is declared to write (``/quality/format`` without
    ``check``): that one runs unguarded.
    """

    @functools.wraps(service)
    def guarded(ctx: ActionContext, params: Any) -> dict[str, Any]:
        if writes(params):
            return service(ctx, params)
        root = ctx.project_root
        base = dict(os.environ if ctx.env is None else ctx.env)
        checked = dataclasses.replace(ctx, env={**base, **no_write_env(root)})
        before = work_tree_state(root)
        result = service(checked, params)
        after = work_tree_state(root) if before is not None else None
        changed = changed_paths(before, after) if before is not None and after is not None \
            else []
        if changed:
            named = ", ".join(changed[:MAX_NAMED]) + (" …" if len(changed) > MAX_NAMED else "")
            result = {**result, "ok": False, "wrote_files": changed, "error": {
                "code": "wrote_files",
                "message": f"a check changed {len(changed)} file(s) in the work tree: {named}; "
                           "see git status / git diff to undo"}}
        return result

    return guarded
