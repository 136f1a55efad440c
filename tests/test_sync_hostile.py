"""A hostile remote ledger harms nothing; sync is append-only; the view is private.

The hostile trees are written object by object (git and libgit2 refuse to build
them), pushed into a bare remote as its ``scp-ledger``, and pulled for real.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest
from pygit2.enums import FileMode, ObjectType

from controlplane import tracked_run
from controlplane.core.ledger import Ledger
from controlplane.core.ledger.layout import entry_dirs
from controlplane.core.ledger.sync import LedgerSync, SyncError
from controlplane.core.ledger.view import LedgerView
from controlplane.core.runs import ledger_dir, new_run_id
from tests.conftest import git, make_repo

LINK = 0o120000
GITLINK = 0o160000
EVIL_CONFIG = b"[core]\n\tfsmonitor = touch pwned\n"


def record(repo: Path, count: int, label: str) -> list[str]:
    ids = []
    for n in range(count):
        with tracked_run("test", "test:sync", summary=f"{label} {n}", project_root=repo) as run:
            ids.append(run.run_id)
    return ids


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A bare remote with a ledger of two runs, our clone of it, and a sentinel outside both."""
    origin = make_repo(tmp_path / "seed")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(origin), str(remote))
    ours = tmp_path / "ours"
    git(tmp_path, "clone", "-q", str(remote), str(ours))
    record(ours, 2, "ours")
    LedgerSync(Ledger.open(ours)).push()
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "keep.txt").write_text("must survive\n")
    return remote, ours, sentinel


def raw_tree(repo: pygit2.Repository, entries: dict[bytes, tuple[int, pygit2.Oid]]
             ) -> pygit2.Oid:
    """A tree object with exactly *entries* (any names: '..', '.git', 'a/b')."""
    body = b"".join(f"{mode:o} ".encode() + name + b"\0" + oid.raw
                    for name, (mode, oid) in sorted(entries.items()))
    return repo.odb.write(ObjectType.TREE, body)


def with_path(repo: pygit2.Repository, tree: pygit2.Tree | None, parts: list[bytes],
              mode: int, leaf: pygit2.Oid) -> pygit2.Oid:
    """*tree* with the (unchecked) path *parts* set to (*mode*, *leaf*)."""
    entries = {e.raw_name: (e.filemode, e.id) for e in tree} if tree is not None else {}
    if len(parts) == 1:
        entries[parts[0]] = (mode, leaf)
    else:
        child = None
        if parts[0] in entries and entries[parts[0]][0] == FileMode.TREE:
            child = repo[entries[parts[0]][1]]
        entries[parts[0]] = (FileMode.TREE, with_path(repo, child, parts[1:], mode, leaf))
    return raw_tree(repo, entries)


def commit_on_remote(remote: Path, change, message: str = "hostile") -> str:
    """Commit ``change(repo, tip_tree) -> tree`` on the remote's scp-ledger; the new tip."""
    repo = pygit2.Repository(str(remote))
    ref = repo.references["refs/heads/scp-ledger"]
    tip = repo[ref.target]
    sig = pygit2.Signature("mallory", "mallory@example.com")
    commit = repo.create_commit(None, sig, sig, message, change(repo, tip.tree), [tip.id])
    ref.set_target(commit)
    return str(commit)


def plant(path: str, data: bytes = b"{}\n", mode: int = FileMode.BLOB):
    """A change that adds *path* (split on '|' so a name may hold '/') as a leaf."""
    def change(repo: pygit2.Repository, tree: pygit2.Tree) -> pygit2.Oid:
        parts = [p.encode() for p in path.split("|")]
        leaf = repo.create_blob(data)
        if data == b"<a tree>":
            leaf, mode_ = repo.TreeBuilder().write(), FileMode.BLOB
            return with_path(repo, tree, parts, mode_, leaf)
        return with_path(repo, tree, parts, mode, leaf)
    return change


def run_path(run_id: str, bucketed: bool = False) -> str:
    return entry_dirs("runs", run_id)[1 if bucketed else 0].replace("/", "|")


RUN = new_run_id()
HOSTILE = {
    "dotdot_to_git_config": ("ledger|runs|..|..|..|.git|config", EVIL_CONFIG, FileMode.BLOB),
    "git_dir_at_root": (".git|config", EVIL_CONFIG, FileMode.BLOB),
    "git_dir_in_a_day": ("ledger|runs|2024|01|01|.git|config", EVIL_CONFIG, FileMode.BLOB),
    "name_with_slash": ("ledger|chat|..|..|..|../sentinel|message.json", b"{}", FileMode.BLOB),
    "symlink_run_json": (f"{run_path(RUN)}|run.json", b"/etc/passwd", LINK),
    "symlink_run_dir": (run_path(RUN), b"../../../../..", LINK),
    "extra_file_in_run": (f"{run_path(RUN)}|post-checkout", b"#!/bin/sh\n", FileMode.BLOB),
    "executable_run_json": (f"{run_path(RUN)}|run.json", b"{}", FileMode.BLOB_EXECUTABLE),
    "gitlink": (f"{run_path(RUN)}|run.json", b"", GITLINK),
    "run_json_is_a_tree": (f"{run_path(RUN)}|run.json", b"<a tree>", FileMode.BLOB),
    "wrong_bucket": (f"{run_path(RUN, True)}|run.json".replace(f"|{RUN[20:22]}|", "|zz|"),
                     b"{}", FileMode.BLOB),
    "run_under_another_date": (run_path(RUN).replace(RUN[:4], "1999", 1) + "|run.json", b"{}",
                               FileMode.BLOB),
    "id_with_newline": (run_path(RUN) + "\n|run.json", b"{}", FileMode.BLOB),
    "format_not_a_version": ("ledger|FORMAT", b"[core]\n", FileMode.BLOB),
}


def snapshot(ours: Path) -> dict[str, object]:
    return {
        "config": (ours / ".git" / "config").read_bytes(),
        "ledger": git(ours, "rev-parse", "scp-ledger"),
        "refs": git(ours, "for-each-ref", "--format=%(refname) %(objectname)"),
        "view": sorted(str(p.relative_to(ours)) for p in (ours / ".scp-ledger").rglob("*")),
    }


def assert_unharmed(ours: Path, sentinel: Path, before: dict[str, object]) -> None:
    assert snapshot(ours) == before
    assert (sentinel / "keep.txt").read_text() == "must survive\n"
    assert not (ours / "pwned").exists()
    assert git(ours, "for-each-ref", "refs/scp/remotes") == ""  # nothing of it kept
    git(ours, "status", "--porcelain")  # would run the planted fsmonitor


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_remote_ledger_is_refused_whole(world, case: str) -> None:
    remote, ours, sentinel = world
    path, data, mode = HOSTILE[case]
    commit_on_remote(remote, plant(path, data, mode))
    before = snapshot(ours)
    with pytest.raises(SyncError) as refused:
        LedgerSync(Ledger.open(ours)).pull()
    assert refused.value.code == "hostile_ledger"
    message = str(refused.value)
    assert "\n" not in message and "refused the ledger of origin" in message
    named = re.search(r"'([^']*)'", message)
    assert named and ascii(path.replace("|", "/"))[1:-1].startswith(named[1]), message
    assert_unharmed(ours, sentinel, before)


def test_a_hostile_path_in_the_history_is_refused_though_the_tip_is_clean(world) -> None:
    remote, ours, sentinel = world
    commit_on_remote(remote, plant("ledger|runs|..|..|..|.git|config", EVIL_CONFIG))
    commit_on_remote(remote, lambda repo, tree: with_path(
        repo, tree, [b"ledger"], FileMode.TREE, pygit2.Repository(str(remote)).revparse_single(
            "scp-ledger~1:ledger").id))
    before = snapshot(ours)
    with pytest.raises(SyncError, match=r"'ledger/runs/\.\.'"):
        LedgerSync(Ledger.open(ours)).pull()
    assert_unharmed(ours, sentinel, before)


def test_a_run_tag_that_is_not_a_run_id_is_refused(world) -> None:
    remote, ours, sentinel = world
    head = git(remote, "rev-parse", "main").strip()
    git(remote, "update-ref", "refs/scp/run/evil/x", head)
    git(remote, "update-ref", "refs/scp/run/not-a-run", head)
    before = snapshot(ours)
    with pytest.raises(SyncError, match=r"refs/scp/run/(evil|not-a-run)"):
        LedgerSync(Ledger.open(ours)).pull()
    assert_unharmed(ours, sentinel, before)


def test_the_two_step_attack_through_the_cli(world) -> None:
    """The reported attack: plant a file outside the view, then have a pull delete it."""
    remote, ours, sentinel = world
    escape = "ledger|chat|..|..|..|../sentinel"
    commit_on_remote(remote, plant(escape + "|message.json", b"{}"))
    before = snapshot(ours)
    pulled = subprocess.run([sys.executable, "-m", "controlplane", "ledger", "pull"], cwd=ours,
                            capture_output=True, text=True, timeout=120)
    assert pulled.returncode != 0
    lines = pulled.stderr.strip().splitlines()
    assert len(lines) == 1 and "'ledger/chat/..'" in lines[0], pulled.stderr
    assert not (sentinel / "message.json").exists()
    commit_on_remote(remote, lambda repo, tree: repo.revparse_single("scp-ledger~1^{tree}").id)
    pulled = subprocess.run([sys.executable, "-m", "controlplane", "ledger", "pull"], cwd=ours,
                            capture_output=True, text=True, timeout=120)
    assert pulled.returncode != 0  # its history still holds the escape
    before["ledger"] = git(ours, "rev-parse", "scp-ledger")  # the failed pulls were recorded
    before["refs"] = git(ours, "for-each-ref", "--format=%(refname) %(objectname)")
    before["view"] = snapshot(ours)["view"]
    assert_unharmed(ours, sentinel, before)


def test_the_view_never_writes_or_deletes_outside_its_root(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "project")
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    config = (project / ".git" / "config").read_bytes()
    view = LedgerView(project / ".scp-ledger", tmp_path / "view.lock")
    assert view.apply(None, "1" * 40, [("ledger/runs/../../../.git", {"config": EVIL_CONFIG}),
                                       ("ledger/chat/../../../../sentinel", {"x": b"x"})],
                      ["ledger/chat/../../../../sentinel", "ledger/runs/../../..", "ledger"])
    assert (project / ".git" / "config").read_bytes() == config
    assert sorted(p.name for p in sentinel.iterdir()) == []
    assert sentinel.exists() and (project / "README.md").exists()
    # a symlink planted inside the view is never followed
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    run_id = new_run_id()
    day = project / ".scp-ledger" / Path(entry_dirs("runs", run_id)[0]).parent
    day.parent.mkdir(parents=True, exist_ok=True)
    day.symlink_to(outside)
    with pytest.raises(OSError):
        view.apply("1" * 40, "2" * 40, [(entry_dirs("runs", run_id)[0], {"run.json": b"{}"})],
                   [])
    assert view.apply("1" * 40, "2" * 40, [], [entry_dirs("runs", run_id)[0]])
    assert sorted(p.name for p in outside.iterdir()) == ["keep"]


def test_a_view_root_that_is_a_symlink_is_not_written_through(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "project")
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / ".scp-ledger").symlink_to(outside)
    view = LedgerView(project / ".scp-ledger", tmp_path / "view.lock")
    with pytest.raises(OSError, match="not a plain directory"):
        view.apply(None, "1" * 40, [(entry_dirs("runs", new_run_id())[0], {"run.json": b"{}"})],
                   [])
    view.clear()
    assert list(outside.iterdir()) == []


# -- append-only sync ------------------------------------------------------


def drop_runs(run_ids: list[str]):
    def change(repo: pygit2.Repository, tree: pygit2.Tree) -> pygit2.Oid:
        for run_id in run_ids:
            directory = ledger_dir(run_id)
            parent, name = directory.rsplit("/", 1)
            builder = repo.TreeBuilder(repo[tree[parent].id])
            builder.remove(name)
            spine = directory.split("/")[:-1]
            tree = repo[with_path(repo, tree, [p.encode() for p in spine], FileMode.TREE,
                                  builder.write())]
        return tree.id
    return change


def edit_run(run_id: str, summary: str):
    def change(repo: pygit2.Repository, tree: pygit2.Tree) -> pygit2.Oid:
        path = ledger_dir(run_id) + "/run.json"
        data = json.loads(tree[path].data) | {"summary": summary}
        blob = repo.create_blob(json.dumps(data).encode())
        return with_path(repo, tree, [p.encode() for p in path.split("/")], FileMode.BLOB, blob)
    return change


def pull_cli(repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controlplane", "ledger", "pull"], cwd=repo,
                          capture_output=True, text=True, timeout=120)


def test_a_remote_that_deletes_runs_loses_us_nothing(world, tmp_path: Path) -> None:
    remote, ours, _ = world
    theirs = tmp_path / "theirs"
    git(tmp_path, "clone", "-q", str(remote), str(theirs))
    mine = record(ours, 2, "mine")
    LedgerSync(Ledger.open(ours)).push()
    commit_on_remote(remote, drop_runs(mine), "delete two runs")  # a fast-forward for us
    LedgerSync(Ledger.open(theirs)).pull()
    added = record(theirs, 1, "theirs")
    LedgerSync(Ledger.open(theirs)).push()
    before_tags = git(ours, "for-each-ref", "refs/scp/run")
    pulled = pull_cli(ours)
    assert pulled.returncode == 0, pulled.stderr
    warnings = pulled.stderr.strip().splitlines()
    assert len(warnings) == 1 and "append-only" in warnings[0], pulled.stderr
    assert all(run_id in warnings[0] for run_id in mine)
    assert "1 new runs" in pulled.stdout  # their genuine addition merged
    ledger = Ledger.open(ours)
    for run_id in [*mine, *added]:
        assert ledger.get(run_id) is not None
        assert (ours / ".scp-ledger" / ledger_dir(run_id) / "run.json").exists()
        assert git(ours, "cat-file", "-t", f"scp-ledger:{ledger_dir(run_id)}")
    assert set(before_tags.splitlines()) <= set(git(ours, "for-each-ref",
                                                    "refs/scp/run").splitlines())
    report = LedgerSync(Ledger.open(ours)).pull()  # once seen, not reported again
    assert report.refused_changes == [] and report.merged is False


def test_a_remote_edit_of_a_run_we_hold_is_kept_aside(world) -> None:
    remote, ours, _ = world
    target = Ledger.open(ours).recent(limit=1)[0]["run_id"]
    record(ours, 1, "local, unpushed")  # ours and theirs diverge: a merge, not a fast-forward
    theirs_tip = commit_on_remote(remote, edit_run(target, "rewritten by the remote"))
    report = LedgerSync(Ledger.open(ours)).pull()
    assert report.refused_changes == [target] and report.merged
    assert target in report.warning and "ls .git/scp/conflicts" in report.warning
    ledger = Ledger.open(ours)
    assert ledger.get(target)["summary"] != "rewritten by the remote"
    kept = json.loads((ours / ".scp-ledger" / ledger_dir(target) / "run.json")
                      .read_text())
    assert kept["summary"] != "rewritten by the remote"
    aside = ours / ".git" / "scp" / "conflicts" / target
    assert json.loads((aside / "run.json").read_text())["summary"] == "rewritten by the remote"
    source = (aside / "SOURCE").read_text()
    assert f"git show {theirs_tip}:" in source
    shown = git(ours, "show", source.split("git show ", 1)[1].split()[0] + "run.json")
    assert "rewritten by the remote" in shown


def test_bucketed_runs_and_a_format_file_from_a_remote_merge(world) -> None:
    remote, ours, _ = world
    run_id = new_run_id()
    run = {"run_id": run_id, "type": "test", "subtype": "test:sync", "status": "ok",
           "summary": "bucketed"}
    path = entry_dirs("runs", run_id)[1] + "/run.json"
    commit_on_remote(remote, plant(path.replace("/", "|"), json.dumps(run).encode()))
    commit_on_remote(remote, plant("ledger|FORMAT", b"2\n"))
    record(ours, 1, "local")
    report = LedgerSync(Ledger.open(ours)).pull()
    assert report.pulled_runs == 1 and report.refused_changes == []
    assert Ledger.open(ours).get(run_id)["summary"] == "bucketed"
    assert (ours / ".scp-ledger" / path).exists()


# -- a private view ----------------------------------------------------------


def loose_modes(root: Path) -> list[str]:
    return [f"{p} {stat.S_IMODE(p.lstat().st_mode):o}" for p in [root, *root.rglob("*")]
            if stat.S_IMODE(p.lstat().st_mode) & 0o077]


def test_the_view_is_private_after_a_run_and_a_pull(world, tmp_path: Path) -> None:
    remote, ours, _ = world
    theirs = tmp_path / "theirs"
    git(tmp_path, "clone", "-q", str(remote), str(theirs))
    old = os.umask(0o022)
    try:
        record(theirs, 1, "theirs")
        LedgerSync(Ledger.open(theirs)).push()
        record(ours, 1, "ours")
        LedgerSync(Ledger.open(ours)).pull()
    finally:
        os.umask(old)
    assert loose_modes(ours / ".scp-ledger") == []
    assert loose_modes(theirs / ".scp-ledger") == []


def test_an_existing_world_readable_view_is_made_private_when_opened(world) -> None:
    _, ours, _ = world
    view = ours / ".scp-ledger"
    for path in [view, *view.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    Ledger.forget_instances()
    Ledger.open(ours)
    assert loose_modes(view) == []
