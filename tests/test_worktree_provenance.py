"""A run in a linked worktree records that worktree's commit, branch and dirtiness.

The ledger itself stays in the common git dir (one ledger for every worktree); the
run tag points at the commit the run ran on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from controlplane.core.ledger import Ledger
from controlplane.core.run_tracker import tracked_run
from tests.conftest import git

SCRIPT = """
import sys
from controlplane.core.run_tracker import tracked_run
with tracked_run("test", "test:worktree", summary="in a worktree") as run:
    print(run.run_id)
"""


def linked_worktree(repo: Path) -> tuple[Path, str]:
    """A worktree on branch ``feature`` with a commit of its own and a modified file."""
    tree = repo.parent / "feature-tree"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(tree))
    (tree / "feature.txt").write_text("feature\n")
    git(tree, "add", "feature.txt")
    git(tree, "commit", "-q", "-m", "feature work")
    (tree / "README.md").write_text("# changed in the worktree\n")  # tracked and modified
    return tree, git(tree, "rev-parse", "HEAD").strip()


def tag_target(repo: Path, run_id: str) -> str:
    refs = [ref for ref in git(repo, "for-each-ref", "--format=%(refname)").split()
            if ref.endswith(f"/{run_id}")]
    assert len(refs) == 1, refs
    return git(repo, "rev-parse", f"{refs[0]}^{{commit}}").strip()


def test_a_script_in_a_linked_worktree_records_that_worktree(repo: Path) -> None:
    main_head = git(repo, "rev-parse", "HEAD").strip()
    tree, feature_head = linked_worktree(repo)
    assert feature_head != main_head
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tree, capture_output=True,
                          text=True, timeout=60, check=True)
    run_id = done.stdout.strip().splitlines()[-1]
    ledger = Ledger.open(repo)
    ledger.catch_up()
    run = ledger.index.get(run_id)
    assert run is not None, "the run is in the one ledger of the common git dir"
    assert run["code_ref"] == {"commit": feature_head, "branch": "feature", "dirty": True}
    assert tag_target(repo, run_id) == feature_head
    shown = git(repo, "show", f"scp-ledger:{ledger_path(repo, run_id)}/run.json")
    assert json.loads(shown)["code_ref"]["commit"] == feature_head


def test_a_process_that_opened_the_main_worktree_first_still_reads_the_run_s_worktree(
        repo: Path) -> None:
    """The ledger is cached per common git dir: its root is the main worktree here."""
    Ledger.open(repo)
    tree, feature_head = linked_worktree(repo)
    with tracked_run(tree, "test", "test:worktree") as run:
        pass
    assert run.run.code_ref == {"commit": feature_head, "branch": "feature", "dirty": True}
    assert tag_target(repo, run.run_id) == feature_head
    with tracked_run(repo, "test", "test:main") as run:
        pass
    main_head = git(repo, "rev-parse", "HEAD").strip()
    assert run.run.code_ref == {"commit": main_head, "branch": "main", "dirty": False}
    assert tag_target(repo, run.run_id) == main_head


def ledger_path(repo: Path, run_id: str) -> str:
    listing = git(repo, "ls-tree", "-r", "-d", "--name-only", "scp-ledger")
    return next(line for line in listing.splitlines() if line.endswith(run_id))
