"""Two machines share runs through a remote: no conflict, nothing lost, no force."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane import tracked_run
from controlplane.core.chat import post_message
from controlplane.core.events import default_bus
from controlplane.core.ledger import Ledger
from controlplane.core.ledger.sync import LedgerSync, SyncError
from tests.conftest import bearer_client, git, make_repo


def record(repo: Path, count: int, label: str, messages: int = 0) -> None:
    for n in range(count):
        with tracked_run("test", "test:sync", summary=f"{label} {n}", project_root=repo):
            pass
    for n in range(messages):
        post_message(Ledger.open(repo), default_bus(), f"{label} says {n}",
                     {"kind": "script", "name": label})


@pytest.fixture
def machines(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A bare remote holding the project's code, and two clones of it (machines A and B)."""
    origin = make_repo(tmp_path / "seed")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(origin), str(remote))
    clones = []
    for name in ("a", "b"):
        git(tmp_path, "clone", "-q", str(remote), str(tmp_path / name))
        git(tmp_path / name, "config", "user.name", f"machine {name}")
        git(tmp_path / name, "config", "user.email", f"{name}@example.com")
        clones.append(tmp_path / name)
    return remote, clones[0], clones[1]


def ledger_state(repo: Path) -> tuple[int, int]:
    ledger = Ledger.open(repo)
    ledger.catch_up()
    tags = git(repo, "for-each-ref", "refs/scp/run").splitlines()
    return ledger.index.count(), len(tags)


def exchange(a: Path, b: Path, remote_name: str = "origin") -> None:
    LedgerSync(Ledger.open(a), remote_name).push()
    LedgerSync(Ledger.open(b), remote_name).pull()
    LedgerSync(Ledger.open(b), remote_name).push()
    LedgerSync(Ledger.open(a), remote_name).pull()


def test_two_machines_merge_runs_without_conflict(machines) -> None:
    remote, a, b = machines
    record(a, 50, "A", messages=5)
    record(b, 50, "B", messages=5)
    exchange(a, b)
    for clone in (a, b):
        assert ledger_state(clone) == (100, 100)
        texts = {m["text"] for m in Ledger.open(clone).index.messages(limit=100)}
        assert texts == {f"{who} says {n}" for who in "AB" for n in range(5)}
        git(clone, "fsck", "--no-dangling")
        assert git(clone, "status", "--porcelain") == ""
    assert git(a, "rev-parse", "scp-ledger") == git(b, "rev-parse", "scp-ledger")
    assert len(git(remote, "for-each-ref", "refs/scp/run").splitlines()) == 100
    git(remote, "fsck", "--no-dangling")
    summaries = {r["summary"] for r in Ledger.open(a).index.recent(limit=200)}
    assert {f"A {n}" for n in range(50)} | {f"B {n}" for n in range(50)} == summaries


def test_push_holds_tags_of_unpublished_commits(machines) -> None:
    remote, a, _ = machines
    (a / "new.txt").write_text("not pushed yet\n")
    git(a, "add", "new.txt")
    git(a, "commit", "-q", "-m", "local only")
    record(a, 2, "unpublished")
    report = LedgerSync(Ledger.open(a)).push()
    assert report.pushed and report.tags_pushed == 0 and len(report.tags_held) == 2
    assert git(remote, "for-each-ref", "refs/scp/run") == ""
    assert git(remote, "cat-file", "-t", git(a, "rev-parse", "HEAD").strip(),
               check=False) == ""  # the commit was not published
    git(a, "push", "-q", "origin", "main")
    assert LedgerSync(Ledger.open(a)).push().tags_pushed == 2


def test_a_rejecting_remote_fails_and_keeps_the_local_ledger(machines) -> None:
    remote, a, _ = machines
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'pushes are closed today' >&2\nexit 1\n")
    hook.chmod(0o755)
    record(a, 1, "kept")
    head = git(a, "rev-parse", "scp-ledger")
    with pytest.raises(SyncError) as failure:
        LedgerSync(Ledger.open(a)).push()
    assert failure.value.code == "remote_rejected"
    assert "pushes are closed today" in str(failure.value)
    assert git(a, "rev-parse", "scp-ledger") == head and ledger_state(a)[0] == 1


def test_invalid_remote_names_are_refused() -> None:
    with pytest.raises(ValueError, match="invalid remote name"):
        LedgerSync.__init__(object.__new__(LedgerSync), None, "--upload-pack=touch pwned")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def git_daemon(machines, tmp_path: Path):
    remote, a, b = machines
    (remote / "git-daemon-export-ok").touch()
    port = free_port()
    daemon = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--enable=receive-pack", "--listen=127.0.0.1",
         f"--port={port}", f"--base-path={remote.parent}", "--informative-errors",
         str(remote.parent)], stderr=subprocess.PIPE, text=True)
    # ready when it accepts connections: git ls-remote answers
    url = f"git://127.0.0.1:{port}/{remote.name}"
    for clone in (a, b):
        git(clone, "remote", "add", "daemon", url)
    for _ in range(100):
        if subprocess.run(["git", "ls-remote", url], capture_output=True).returncode == 0:
            break
        if daemon.poll() is not None:
            pytest.fail(f"git daemon died: {daemon.stderr.read()}")
    yield a, b
    daemon.terminate()
    daemon.wait(timeout=10)


def test_the_same_over_git_daemon(git_daemon) -> None:
    a, b = git_daemon
    record(a, 5, "A")
    record(b, 5, "B")
    exchange(a, b, "daemon")
    assert ledger_state(a) == ledger_state(b) == (10, 10)


def test_dashboard_actions_push_and_pull(machines, make_app) -> None:
    _, a, b = machines
    record(b, 3, "B")
    LedgerSync(Ledger.open(b)).push()
    app = make_app(REPO=a)
    client = bearer_client(app)
    pulled = client.post("/git/ledger/pull", json={}).get_json()
    assert pulled["status"] == "ok" and pulled["pulled_runs"] == 3
    pushed = client.post("/git/ledger/push", json={"remote": "origin"}).get_json()
    assert pushed["status"] == "ok" and pushed["pushed"] is True
    stored = Ledger.open(a).get(pulled["run_id"])
    assert stored["subtype"] == "git:ledger_pull" and stored["target"]["remote"] == "origin"
    bad = client.post("/git/ledger/push", json={"remote": "--upload-pack=touch pwned"})
    assert bad.status_code == 422 and "remote" in bad.get_json()["fields"]


def test_cli_push_and_pull_are_recorded_runs(machines) -> None:
    import sys

    _, a, b = machines
    record(a, 2, "A")

    def cli(repo: Path, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "controlplane", "ledger", *args], cwd=repo,
                              capture_output=True, text=True, timeout=120)

    pushed = cli(a, "push")
    assert pushed.returncode == 0, pushed.stderr
    assert "pushed to origin: 2 run tags" in pushed.stdout
    pulled = cli(b, "pull", "origin")
    # A's push run is recorded after its push: it travels with the next one
    assert pulled.returncode == 0 and "2 new runs" in pulled.stdout
    kinds = [r["subtype"] for r in Ledger.open(b).recent(limit=10)]
    assert kinds.count("git:ledger_pull") == 1 and kinds.count("test:sync") == 2
    assert [r["subtype"] for r in Ledger.open(a).recent(limit=1)] == ["git:ledger_push"]
    bad = cli(a, "push", "--upload-pack=touch pwned")
    assert bad.returncode != 0 and not (a / "pwned").exists()


def test_auto_sync_pulls_in_the_background_and_announces_once(machines, make_app) -> None:
    _, a, b = machines
    record(b, 3, "B")
    LedgerSync(Ledger.open(b)).push()
    with default_bus().subscribe(default_bus().last_id) as sub:
        app = make_app(REPO=a, FEED=True, SETTINGS={"auto_sync": 1})
        seen = []
        while True:
            envelope = sub.get(timeout=30)
            assert envelope is not None, "no ledger:synced within 30 s"
            seen.append(envelope["type"])
            if envelope["type"] == "ledger:synced":
                break
    assert envelope["data"]["runs"] == 3 and "run:completed" not in seen
    assert app.extensions["controlplane"].ledger.index.count() == 3
    assert [r["subtype"] for r in Ledger.open(a).recent()] == ["test:sync"] * 3  # not recorded


def test_cli_pull_auto_keeps_pulling_until_ctrl_c(machines) -> None:
    _, a, b = machines
    puller = subprocess.Popen([sys.executable, "-m", "controlplane", "ledger", "pull", "--auto",
                               "1"], cwd=b, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert puller.stdout.readline().startswith("pulling the ledger from origin every 1 s")
        record(a, 3, "from a")
        LedgerSync(Ledger.open(a), "origin").push()
        assert "pulled 3 new runs from origin" in puller.stdout.readline()  # waits for it
        puller.send_signal(signal.SIGINT)
        assert puller.wait(timeout=30) == 0
    finally:
        puller.kill() if puller.poll() is None else None
        puller.stdout.close()
        puller.stderr.close()
    assert ledger_state(b) == (3, 3)  # the pulled runs, and no run for the pulls themselves
