"""``controlplane exec`` starts the command without waiting for pygit2 (issue 18, item 8).

The run's provenance is read from ``.git`` files and ``git status`` in a plain repository
(and by pygit2, as before, otherwise); the record is written as plain files, without
pygit2; the batched durability's exit flush runs in a ``sync -f`` process the exit does
not wait for. Each is checked on real processes; the provenance against pygit2's answer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from controlplane.core import provenance
from controlplane.core.ledger import Ledger
from tests.conftest import GIT_ENV, git


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controlplane", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **GIT_ENV, **(env or {})})


def recorded_code_ref(cwd: Path) -> dict[str, object]:
    """Run ``exec -- true`` in *cwd*; the code_ref recorded for it."""
    done = cli(cwd, "exec", "test:provenance", "--", "true")
    assert done.returncode == 0, done.stderr
    run_id = done.stderr.split("controlplane: run ", 1)[1].split()[0]
    Ledger.forget_instances()
    ledger = Ledger.open(cwd)
    run = ledger.index.get(run_id)
    assert run is not None, run_id
    return run["code_ref"]


def pygit2_code_ref(cwd: Path) -> dict[str, object]:
    Ledger.forget_instances()
    return Ledger.open(cwd).store.code_ref(cwd)


def assert_same_from_files(repo: Path, expected: dict[str, object]) -> None:
    """The files' answer is used (not None) and agrees with pygit2 and with *expected*."""
    Ledger.forget_instances()
    git_dir = Ledger.open(repo).git_dir
    assert provenance.from_files(git_dir, repo) == expected
    assert pygit2_code_ref(repo) == expected
    assert recorded_code_ref(repo) == expected


def test_clean_dirty_and_staged_work_trees(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD").strip()
    branch = git(repo, "symbolic-ref", "--short", "HEAD").strip()
    assert_same_from_files(repo, {"commit": head, "branch": branch, "dirty": False})
    tracked = git(repo, "ls-files").split()[0]
    (repo / tracked).write_text("changed, not staged\n")
    assert_same_from_files(repo, {"commit": head, "branch": branch, "dirty": True})
    git(repo, "add", tracked)  # staged only: the index differs from HEAD, the file does not
    assert_same_from_files(repo, {"commit": head, "branch": branch, "dirty": True})
    git(repo, "commit", "-q", "-m", "commit it")
    (repo / "untracked.txt").write_text("not tracked: not dirty\n")
    new_head = git(repo, "rev-parse", "HEAD").strip()
    assert_same_from_files(repo, {"commit": new_head, "branch": branch, "dirty": False})


def test_a_detached_head_and_a_branch_only_in_packed_refs(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    git(repo, "checkout", "-q", "--detach", head)
    assert_same_from_files(repo, {"commit": head, "branch": None, "dirty": False})
    git(repo, "checkout", "-q", "-b", "packed")
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "packed").exists()
    assert_same_from_files(repo, {"commit": head, "branch": "packed", "dirty": False})


def test_git_variables_of_the_caller_do_not_redirect_the_status(repo: Path,
                                                                 tmp_path: Path) -> None:
    """A hook's GIT_DIR/GIT_INDEX_FILE name another repository: pygit2 ignores them, so must
    the status."""
    other = tmp_path / "other"
    git(tmp_path, "init", "-q", str(other))
    (other / "f").write_text("x\n")
    git(other, "add", "f")  # staged in the other repository: it would say dirty
    cli(repo, "exec", "test:first", "--", "true")
    env = {"GIT_DIR": str(other / ".git"), "GIT_INDEX_FILE": str(other / ".git" / "index"),
           "GIT_WORK_TREE": str(other)}
    done = cli(repo, "exec", "test:hooked", "--", "true", env=env)
    assert done.returncode == 0, done.stderr
    run_id = done.stderr.split("controlplane: run ", 1)[1].split()[0]
    Ledger.forget_instances()
    assert Ledger.open(repo).index.get(run_id)["code_ref"]["dirty"] is False


def test_unusual_repositories_still_go_through_pygit2(repo: Path, empty_repo: Path) -> None:
    git(repo, "worktree", "add", "-q", "-b", "feature", str(repo.parent / "linked"))
    linked = repo.parent / "linked"
    (linked / git(linked, "ls-files").split()[0]).write_text("changed in the worktree\n")
    assert provenance.from_files(Ledger.open(repo).git_dir, linked) is None  # a .git file
    head = git(linked, "rev-parse", "HEAD").strip()
    assert recorded_code_ref(linked) == {"commit": head, "branch": "feature", "dirty": True}
    assert provenance.from_files(empty_repo / ".git", empty_repo) is None  # unborn
    assert recorded_code_ref(empty_repo) == pygit2_code_ref(empty_repo)


NO_PYGIT2 = """
raise ImportError("pygit2 is not importable in this test")
"""


def test_exec_records_without_importing_pygit2(repo: Path, tmp_path: Path) -> None:
    """A pygit2 that cannot be imported: exec still records the run, its commit and its tag
    (written as plain files, ``ledger/filestore.py``); before, it imported pygit2 for them."""
    cli(repo, "exec", "test:first", "--", "true")  # the ledger exists, as for a second command
    shadow = tmp_path / "shadow"
    (shadow / "pygit2").mkdir(parents=True)
    (shadow / "pygit2" / "__init__.py").write_text(textwrap.dedent(NO_PYGIT2))
    done = cli(repo, "exec", "test:plain", "--", "true", env={"PYTHONPATH": str(shadow)})
    assert done.returncode == 0, done.stderr
    run_id = done.stderr.split("controlplane: run ", 1)[1].split()[0]
    head = git(repo, "rev-parse", "HEAD").strip()
    assert git(repo, "rev-parse", f"refs/scp/run/{run_id}^{{commit}}").strip() == head
    tree = git(repo, "ls-tree", "-r", "--name-only", "scp-ledger").split()
    assert f"ledger/runs/{run_id[:4]}/{run_id[4:6]}/{run_id[6:8]}/{run_id[-8:-6]}/{run_id}/" \
           "run.json" in tree
    git(repo, "fsck", "--no-dangling", "--strict")
    Ledger.forget_instances()
    latest = Ledger.open(repo).recent(limit=1)[0]
    assert latest["run_id"] == run_id and latest["status"] == "ok"
    assert latest["code_ref"]["commit"] == head


def test_the_exit_flush_is_not_waited_for(repo: Path, tmp_path: Path, fake_bin) -> None:
    """The batched mode's exit flush: a ``sync -f <.git>`` started at exit. Here ``sync``
    cannot end until the test writes a FIFO, after exec has returned."""
    fifo, args = tmp_path / "sync.fifo", tmp_path / "sync.args"
    os.mkfifo(fifo)
    fake_bin("sync", f"""
        #!/bin/sh
        printf '%s\\n' "$@" > '{args}'
        cat '{fifo}' > /dev/null
    """)
    path = f"{fake_bin.dir}{os.pathsep}{os.environ['PATH']}"
    done = cli(repo, "exec", "test:flushed", "--", "true", env={"PATH": path}, timeout=60)
    assert done.returncode == 0, done.stderr
    with open(fifo, "w", encoding="utf-8") as release:  # opens once sync reads: args written
        release.write("go\n")
    assert args.read_text().split() == ["--file-system", str(repo / ".git")]


def test_secret_shapes_are_compiled_when_a_line_holds_their_trigger() -> None:
    done = subprocess.run([sys.executable, "-c", """
from controlplane.core import redact
assert not any("pattern" in vars(shape) for shape in redact._SHAPES)
assert redact.redact("nothing to hide") == "nothing to hide"
assert not any("pattern" in vars(shape) for shape in redact._SHAPES)
assert redact.redact("key ghp_" + "a" * 36) == "key ***"
compiled = [shape.triggers for shape in redact._SHAPES if "pattern" in vars(shape)]
assert compiled == [("gh",)], compiled
"""], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_run_snapshot_events_are_data_classes_without_being_made_again() -> None:
    from controlplane.core.events import EVENT_TYPES, RunSnapshot
    from controlplane.core.plain_data import FrozenError, field_names

    for name in ("run:queued", "run:started", "run:completed"):
        cls = EVENT_TYPES[name]
        assert field_names(cls) and cls.__init__ is RunSnapshot.__init__
        event = cls.from_data({"run_id": "r", "type": "test", "subtype": "test:x",
                               "status": "ok", "extra": 1})
        assert repr(event).startswith(f"{cls.__name__}(") and event.to_data()["extra"] == 1
        try:
            event.status = "failed"  # type: ignore[misc]
        except FrozenError:
            pass
        else:
            raise AssertionError(f"{name} is not frozen")


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def made_by_a_ledger(repo: Path) -> None:
    """The index made and the queued runs applied, as a server's or a script's ledger
    does, then closed: no connection of this process stays on it."""
    Ledger.open(repo).index.close()
    Ledger.forget_instances()


def test_the_exits_do_not_checkpoint_the_index(repo: Path, tmp_path: Path) -> None:
    """The interpreter's teardown would close the index's SQLite connection, whose WAL
    checkpoint fdatasyncs the WAL and the database; exec skips the teardown. The next
    reader sees the run (the WAL is read as after a crash). An exec leaves its run queued
    (``index_queue``) and opens no index: nothing of it is synced either."""
    cli(repo, "exec", "test:first", "--", "true")
    made_by_a_ledger(repo)
    trace = tmp_path / "trace"
    done = subprocess.run(["strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o",
                           str(trace), sys.executable, "-m", "controlplane", "exec",
                           "test:second", "--", "sh", "-c", "echo out; exit 3"], cwd=repo,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **GIT_ENV})
    assert (done.returncode, done.stdout) == (3, "out\n"), done.stderr
    assert "index.sqlite" not in trace.read_text(), trace.read_text()
    assert len(list((repo / ".git" / "scp" / "index-queue").iterdir())) == 1
    done = subprocess.run(["strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o",
                           str(trace), sys.executable, "-m", "controlplane", "runs", "list"],
                          cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "test:second" in done.stdout.splitlines()[0], done.stderr
    assert "index.sqlite" not in trace.read_text(), trace.read_text()  # nor does a listing
    assert Ledger.open(repo).recent(limit=1)[0]["status"] == "failed"


def test_an_index_wal_over_its_bound_is_checkpointed_at_exit(repo: Path) -> None:
    """Left open, the WAL would grow by every run (each process re-reads it and SQLite
    never restarts it): the exit that finds it over 1 MiB closes the index normally. The
    commands that write the index: a list whose ledger catches it up from git (an exec
    leaves its run queued, here lost as a process killed before it queued leaves it)."""
    queue = repo / ".git" / "scp" / "index-queue"

    def run_lost_to_the_index(subtype: str) -> None:
        assert cli(repo, "exec", subtype, "--", "true").returncode == 0
        shutil.rmtree(queue)

    cli(repo, "exec", "test:first", "--", "true")
    made_by_a_ledger(repo)
    wal = repo / ".git" / "scp" / "index.sqlite-wal"
    grow = subprocess.run([sys.executable, "-c", f"""
import os, sqlite3
db = sqlite3.connect({str(repo / '.git' / 'scp' / 'index.sqlite')!r}, isolation_level=None)
db.execute("PRAGMA wal_autocheckpoint=0")
db.execute("CREATE TABLE scratch (data BLOB)")
db.execute("INSERT INTO scratch VALUES (zeroblob(2000000))")
db.execute("DROP TABLE scratch")
os._exit(0)  # no checkpoint at close: the WAL stays, as a killed process leaves it
"""], capture_output=True, text=True, timeout=60)
    assert grow.returncode == 0, grow.stderr
    assert wal.stat().st_size > 1 << 20
    run_lost_to_the_index("test:second")
    assert cli(repo, "runs", "list").returncode == 0  # caught up from git, then closed
    assert not wal.exists() or wal.stat().st_size < 1 << 20
    run_lost_to_the_index("test:third")
    assert cli(repo, "runs", "list").returncode == 0
    assert wal.exists() and wal.stat().st_size < 1 << 20  # left again, small
    assert [run["subtype"] for run in Ledger.open(repo).recent(limit=3)] == \
        ["test:third", "test:second", "test:first"]


FIVE_RUNS = """
from controlplane.core.run_tracker import tracked_run
for _ in range(5):
    with tracked_run("test", "test:many"):
        pass
"""


def test_a_script_of_many_runs_starts_git_status_once(repo: Path, fake_bin) -> None:
    """The first run's provenance comes from a `git status` process; the next ones from
    pygit2 in process (a git process per run cost a script ~3-5 ms a run)."""
    real_git = shutil.which("git")
    log = repo.parent / "git-calls.log"
    fake_bin("git", f"""
        #!/bin/sh
        for arg in "$@"; do [ "$arg" = status ] && echo status >> '{log}'; done
        exec '{real_git}' "$@"
    """)
    path = f"{fake_bin.dir}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run([sys.executable, "-c", FIVE_RUNS], cwd=repo, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **GIT_ENV, "PATH": path})
    assert done.returncode == 0, done.stderr
    assert log.read_text().split() == ["status"]
    Ledger.forget_instances()
    assert len(Ledger.open(repo).recent(limit=10)) == 5
