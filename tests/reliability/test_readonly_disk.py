"""A read-only ``.git`` (issue 13 item 15): reads still answer.

We run as root here, where file modes do not stop writes: a read-only bind mount of
``.git`` over itself does (skipped where mounting is not permitted).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_repo
from tests.reliability.fault_support import cli, ledger_tip, run_tags
from tests.test_serve import BEARER, Server, request, server_env

SCRIPT = """
from controlplane import tracked_run
with tracked_run("test", "test:script", summary="a script's run") as run:
    run.output("never shown")
"""
TEMP_FILE = re.compile(r"^\..+\.(tmp|\d+\.[0-9a-f]{8})$|^tmp_obj")


def temp_files(repo: Path) -> list[str]:
    """Temporary files our writers (or git's) left anywhere in *repo*."""
    return sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if TEMP_FILE.match(p.name))


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The only stderr line of a failed command (asserted: one line, exit 2, no traceback)."""
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("controlplane: error: "), done.stderr
    return lines[0]


@pytest.fixture
def read_only_git(tmp_path: Path) -> Iterator[Path]:
    """A repository with two recorded runs whose ``.git`` is then mounted read-only."""
    repo = make_repo(tmp_path / "project")
    for summary in ("first", "second"):
        done = cli(repo, "exec", "test:ro", "--summary", summary, "--", "echo", summary)
        assert done.returncode == 0, done.stderr
    git_dir = repo / ".git"
    bound = subprocess.run(["mount", "--bind", str(git_dir), str(git_dir)],
                           capture_output=True, text=True, check=False)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here (needs root): {bound.stderr.strip()}")
    try:
        remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(git_dir)],
                                 capture_output=True, text=True, check=False)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
        yield repo
    finally:
        subprocess.run(["umount", "-l", str(git_dir)], check=False)


def test_reads_work_on_a_read_only_git_dir(read_only_git: Path) -> None:
    repo = read_only_git
    assert not (repo / ".git" / "scp" / "probe").exists()
    with pytest.raises(OSError):
        (repo / ".git" / "scp" / "probe").write_text("x")  # really read-only
    listed = cli(repo, "runs", "list", "--json")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    runs = json.loads(listed.stdout)
    assert sorted(r["summary"] for r in runs) == ["first", "second"]
    shown = cli(repo, "runs", "show", runs[0]["run_id"])
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert runs[0]["run_id"] in shown.stdout
    print(f"FIGURE read-only .git: runs list/show exit 0; stderr says: "
          f"{listed.stderr.strip().splitlines()[0][:90] if listed.stderr.strip() else '-'}")


@pytest.mark.parametrize("command", [
    ("exec", "test:ro", "--", "echo", "not run"),
    ("chat", "post", "hello"),
    ("demo", "--runs", "1"),
    ("ledger", "doctor"),
])
def test_a_write_on_a_read_only_git_dir_fails_in_one_line(read_only_git: Path,
                                                          command: tuple[str, ...]) -> None:
    repo = read_only_git
    tip, tags = ledger_tip(repo), run_tags(repo)
    done = cli(repo, *command)
    error = one_error_line(done)
    assert "Read-only file system" in error and "then retry" in error, error
    assert "not run" not in done.stdout  # exec did not start its command
    assert (ledger_tip(repo), run_tags(repo)) == (tip, tags)
    assert temp_files(repo) == []
    print(f"FIGURE read-only .git: {command[0]} exit 2: {error[:110]}")


def test_tracked_run_in_a_script_on_a_read_only_git_dir(read_only_git: Path) -> None:
    repo = read_only_git
    tip = ledger_tip(repo)
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=repo, capture_output=True,
                          text=True, timeout=60, env=server_env())
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("controlplane.core.ledger.journal.JournalWriteError: run "), last
    assert "not started: cannot write the journal" in last and "Read-only file system" in last
    assert "OSError" not in done.stderr  # the cause is named once, in that line
    assert ledger_tip(repo) == tip and temp_files(repo) == []
    listed = cli(repo, "runs", "list", "--json")
    assert all(r["status"] != "running" for r in json.loads(listed.stdout))


def test_the_dashboard_reads_a_read_only_git_dir(read_only_git: Path, tmp_path: Path) -> None:
    repo = read_only_git
    server = Server(repo, tmp_path)
    try:
        recent = request(server, "GET", "/api/runs/recent", headers=BEARER)
        assert recent.status == 200, recent.body
        run_id = recent.json()["runs"][0]["run_id"]
        for path in ("/", "/metrics", f"/runs/{run_id}", f"/api/runs/{run_id}",
                     f"/api/runs/{run_id}/events", f"/api/runs/{run_id}/log", "/api/chat",
                     "/api/runs/search?q=first", "/healthz"):
            answer = request(server, "GET", path, headers=BEARER)
            assert answer.status == 200, (path, answer.status, answer.body[:300])
        stream = http_stream(server)
        assert stream.startswith(b"retry:"), stream
        posted = request(server, "POST", "/api/chat", {"text": "hello"}, headers=BEARER)
        assert posted.status == 503, (posted.status, posted.body)
        refusal = posted.json()
        assert refusal["error"] == "ledger_unwritable" and "\n" not in refusal["message"]
        assert "Read-only file system" in refusal["message"], refusal
        assert server.stop() == 0
    finally:
        server.kill()
    assert "Traceback" not in server.stderr(), server.stderr()
    assert temp_files(repo) == []
    print(f"FIGURE read-only .git, real server: 9 GETs 200, SSE opens, POST /api/chat "
          f"{posted.status}: {refusal['message'][:80]}")


def http_stream(server: Server) -> bytes:
    """The first bytes of ``/api/events`` (then the connection is closed)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", "/api/events", headers=BEARER)
        answer = conn.getresponse()
        assert answer.status == 200, answer.read()
        return answer.read1(64)
    finally:
        conn.close()
