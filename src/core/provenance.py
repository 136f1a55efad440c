"""A run's code provenance (HEAD's commit, branch, dirtiness) read without importing pygit2.

``controlplane exec`` reads it before the command starts; importing pygit2 for it (about
35 ms) would delay the command. In a plain repository (``gitfiles.discover``) HEAD and its
branch are read from ``.git/HEAD``, the loose ref or ``packed-refs``, and dirtiness is
``git status --porcelain --untracked-files=no`` (what pygit2's status with
``untracked_files="no"`` reports: a staged or unstaged change to a tracked file). Anything
else (linked worktree, unborn branch, symbolic or reftable refs, no ``git``, git refusing the
repository) and any process that already imported pygit2 ask ``GitStore.code_ref`` as before.

``prefetch`` starts that ``git status`` early (``exec`` does, before its own imports): git
works on the other core meanwhile, and the run's ``code_ref`` takes its answer.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from controlplane.core import lazy
from controlplane.core.ledger import gitfiles

TYPE_CHECKING = False  # typing costs a command ~2 ms of start-up (issue 18, item 8)
if TYPE_CHECKING:
    import subprocess
    from typing import Any

    from controlplane.core.ledger import Ledger

# git reads these from the environment (a hook, a user's shell); pygit2 does not
_GIT_LOCATION_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                           "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE",
                           "GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM",
                           "GIT_PREFIX", "GIT_INDEX_VERSION")


_from_files = 0  # runs of this process whose provenance came from files and `git status`


def code_ref(ledger: Ledger, where: str | os.PathLike[str]) -> dict[str, object]:
    """The commit, branch and dirtiness now of the work tree holding *where*.

    A process's first run reads the files and starts ``git status``; later runs (a script
    recording many) use pygit2, whose import then costs less than a git process per run.
    """
    global _from_files
    if not lazy.loaded("pygit2") and not _from_files:
        found = from_files(ledger.git_dir, where)
        if found is not None:
            _from_files += 1
            return found
    return ledger.store.code_ref(where)


def from_files(git_dir: Path, where: str | os.PathLike[str]) -> dict[str, object] | None:
    """Provenance when *where* lies in the plain work tree of *git_dir*; None: ask pygit2."""
    plain = gitfiles.discover(str(Path(where).resolve()))
    if plain is None or not _same_file(plain[1], git_dir):
        return None
    head = gitfiles.read_head(plain[1])
    if head is None:
        return None
    commit, branch = head
    dirty = _dirty(plain[0], plain[1])
    if dirty is None:
        return None
    return {"commit": commit, "branch": branch, "dirty": dirty}


def _same_file(one: str | os.PathLike[str], other: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False


_started: dict[tuple[str, str], subprocess.Popen[bytes]] = {}  # by prefetch, not yet read


def prefetch(where: str | os.PathLike[str]) -> None:
    """Start the status of the plain work tree holding *where*, for its next ``code_ref``."""
    plain = gitfiles.discover(str(Path(where).resolve()))
    if plain is not None:
        with contextlib.suppress(OSError):  # no git: code_ref falls back
            _started[(str(plain[0]), str(plain[1]))] = _start_status(*plain)


def _start_status(work_tree: str, git_dir: str) -> subprocess.Popen[bytes]:
    import subprocess

    env: dict[str, Any] = {k: v for k, v in os.environ.items()
                           if k not in _GIT_LOCATION_VARIABLES}
    env["GIT_OPTIONAL_LOCKS"] = "0"  # a status must not rewrite the index under the user
    return subprocess.Popen(
        ["git", f"--git-dir={git_dir}", f"--work-tree={work_tree}", "status",
         "--porcelain", "--untracked-files=no", "--ignore-submodules=none", "-z"],
        cwd=work_tree, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL)


def _dirty(work_tree: str, git_dir: str) -> bool | None:
    """Whether a tracked file differs from HEAD (staged or not); None if git cannot say."""
    import subprocess

    process = _started.pop((str(work_tree), str(git_dir)), None)
    try:
        process = process or _start_status(work_tree, git_dir)
    except OSError:
        return None
    try:
        out, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return None
    return bool(out) if process.returncode == 0 else None
