"""The `controlplane` command as a person uses it in a shell."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from controlplane import tracked_run
from controlplane.core.ledger import Ledger
from controlplane.core.runs import ledger_dir, names_run
from tests.conftest import git
from tests.processes import read_line


def cli(*args: str, cwd: Path, env: dict | None = None, stdin: str | None = None
        ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controlplane", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, input=stdin, timeout=120)


def test_exec_wraps_a_command_as_a_run(repo: Path) -> None:
    done = cli("exec", "test:nightly", "--", sys.executable, "-c",
               "import sys; print('out line'); print('err line', file=sys.stderr); sys.exit(3)",
               cwd=repo)
    assert done.returncode == 3
    assert "out line" in done.stdout and "err line" in done.stderr
    run = Ledger.open(repo).recent()[0]
    assert run["subtype"] == "test:nightly" and run["status"] == "failed"
    assert run["error"]["code"] == "exit_status" and run["actor"]["kind"] == "cli"
    assert run["result"]["exit_code"] == 3
    # the summary is the command as a shell takes it back (copied from the list, it runs)
    assert run["summary"] == (f"{sys.executable} -c 'import sys; print('\"'\"'out line'\"'\"');"
                              f" print('\"'\"'err line'\"'\"', file=sys.stderr); sys.exit(3)'")
    assert shlex.split(run["summary"])[2].startswith("import sys; print('out line')")


def test_exec_missing_tool_and_bad_subtype(repo: Path) -> None:
    missing = cli("exec", "build:x", "--", "no-such-tool-here", cwd=repo)
    assert missing.returncode == 127 and "no-such-tool-here is not installed" in missing.stderr
    assert Ledger.open(repo).recent()[0]["error"]["code"] == "tool_missing"
    bad = cli("exec", "launch:rocket", "--", "true", cwd=repo)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "controlplane: error: unknown run type 'launch'; expected one of install, build, "
        "deploy, destroy, setup, plan, validate, format, test, scan, generate, backup, "
        "restore, git, ci"]


def test_outside_a_repository_is_one_line_exit_2(tmp_path: Path) -> None:
    done = cli("runs", "list", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("controlplane: error: not a git repository")
    assert "work inside the project's repository (or make one there: git init)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_run_is_named_by_the_start_or_the_tail_of_its_id(repo: Path) -> None:
    for code in (0, 1):
        cli("exec", "test:unit", "--", sys.executable, "-c", f"raise SystemExit({code})",
            cwd=repo)
    failed, ok = (r["run_id"] for r in Ledger.open(repo).recent())
    for text in (ok, ok[:19], ok[-8:], f"…{ok[-8:]}", ok[-8:-3], ok[-8:].upper(),
                 ok[:19].lower()):  # the time, the tail, in either case
        done = cli("runs", "show", text, cwd=repo)
        assert done.returncode == 0 and json.loads(done.stdout)["run_id"] == ok, text
    tail = cli("runs", "tail", failed[:19], cwd=repo)
    assert tail.returncode == 0, tail.stderr
    common = os.path.commonprefix([ok, failed])  # noqa: RUF071 - characters: the day, the hour…
    both = cli("runs", "show", common, cwd=repo)
    assert both.returncode == 2 and both.stderr.splitlines() == [
        f"controlplane: error: {common} names more than one run ({failed}, {ok}): "
        "give more of its id"]
    for text in ("%", "_", "…", "2026%-"):  # SQL wildcards are letters here
        assert cli("runs", "show", text, cwd=repo).returncode == 2, text


def test_a_run_in_flight_is_named_by_its_tail_too(repo: Path) -> None:
    """The index holds recorded runs; the journal the ones in flight (what `runs tail`
    follows): both are searched, by one rule (``runs.names_run``). The index's ``LIKE``
    ignored case and the journal's search did not: an upper-case tail named a recorded
    run but not one in flight."""
    running = subprocess.Popen(
        [sys.executable, "-m", "controlplane", "exec", "test:slow", "--", "sh", "-c",
         "echo ready; while [ ! -e go ]; do sleep 0.05; done"],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert read_line(running, 60) == "ready"
        run_id = Ledger.open(repo).active()[0]["run_id"]
        for text in (f"…{run_id[-8:]}", run_id[-8:].upper(), run_id[:19].lower()):
            shown = cli("runs", "show", text, cwd=repo)  # as a recorded run is named
            assert shown.returncode == 0, (text, shown.stderr)
            assert json.loads(shown.stdout)["run_id"] == run_id
    finally:
        (repo / "go").touch()
        running.communicate(timeout=60)
    assert running.returncode == 0


def test_the_index_and_the_journal_name_runs_by_one_rule(repo: Path) -> None:
    """``RunIndex.ids_like`` (recorded runs, in SQL) answers what ``runs.names_run`` (runs
    in flight, in Python) answers, for what a person types: starts, tails, either case,
    and the characters SQL's ``LIKE`` would take as wildcards."""
    for _ in range(4):
        with tracked_run("test", "test:name", project_root=repo):
            pass
    ledger = Ledger.open(repo)
    ids = [run["run_id"] for run in ledger.recent()]
    parts = ["%", "_", "\\", "-", "z-", "Z-", "t", "2026%", "_0", "%-", *(
        text for run_id in ids for text in (
            run_id[:9], run_id[:19].lower(), run_id[-8:], run_id[-8:].upper(), run_id[-3:],
            run_id[19:22], run_id[4:12]))]
    for part in parts:
        assert ledger.index.ids_like(part, limit=10) == [i for i in ids if names_run(part, i)], part


def test_an_unknown_run_id_says_where_the_ids_are(repo: Path) -> None:
    for command in ("show", "tail"):
        done = cli("runs", command, "20260101T000000000Z-00000000", cwd=repo)
        assert done.returncode == 2 and done.stderr.splitlines() == [
            "controlplane: error: no run 20260101T000000000Z-00000000 in this project "
            "(`controlplane runs list` shows the run ids)"]


def test_runs_list_show(repo: Path) -> None:
    for code in (0, 1):
        cli("exec", "test:unit", "--", sys.executable, "-c", f"raise SystemExit({code})",
            cwd=repo)
    listed = json.loads(cli("runs", "list", "--json", cwd=repo).stdout)
    assert [r["status"] for r in listed] == ["failed", "ok"]
    failed_only = json.loads(cli("runs", "list", "--status", "failed", "--json", cwd=repo).stdout)
    assert [r["run_id"] for r in failed_only] == [listed[0]["run_id"]]
    table = cli("runs", "list", cwd=repo).stdout.splitlines()
    assert table[0].startswith(listed[0]["run_id"]) and "failed" in table[0]
    shown = json.loads(cli("runs", "show", listed[1]["run_id"], "--events", cwd=repo).stdout)
    assert shown["status"] == "ok" and shown["events"][0]["type"] == "run:started"
    assert cli("runs", "show", "nope", cwd=repo).returncode == 2


FOLLOWED = """
import sys
from controlplane import tracked_run
with tracked_run("test", "test:followed", project_root=sys.argv[1]) as run:
    print(run.run_id, flush=True)
    for line in sys.stdin:
        run.output(line.strip())
"""


def test_runs_tail_follows_a_running_script(repo: Path) -> None:
    script = subprocess.Popen([sys.executable, "-c", FOLLOWED, str(repo)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    run_id = script.stdout.readline().strip()
    script.stdin.write("first line\n")
    script.stdin.flush()
    tail = subprocess.Popen([sys.executable, "-m", "controlplane", "runs", "tail", run_id],
                            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert tail.stdout.readline().strip() == "first line"  # followed while running
    listed = json.loads(cli("runs", "list", "--json", cwd=repo).stdout)
    assert listed[0]["run_id"] == run_id and listed[0]["status"] == "running"
    script.stdin.write("second line\n")
    script.stdin.close()
    assert tail.stdout.readline().strip() == "second line"
    assert script.wait(timeout=60) == 0
    assert tail.wait(timeout=60) == 0
    assert f"run {run_id} ok" in tail.stderr.read()


def test_doctor_reports_a_corrupted_run_and_repairs_tags(repo: Path) -> None:
    cli("exec", "test:a", "--", "true", cwd=repo)
    run_id = Ledger.open(repo).recent()[0]["run_id"]
    git(repo, "update-ref", "-d", f"refs/scp/run/{run_id}")
    healthy = cli("ledger", "doctor", cwd=repo)
    assert healthy.returncode == 0, healthy.stdout
    assert "git fsck: ok" in healthy.stdout and "run tags recreated: 1" in healthy.stdout
    assert git(repo, "cat-file", "-t", f"refs/scp/run/{run_id}").strip() == "tag"
    # corrupt a run.json in the ledger (a new commit on the branch, like a bad merge would)
    work = repo.parent / "ledger-work"
    git(repo, "worktree", "add", "-q", str(work), "scp-ledger")
    (work / ledger_dir(run_id) / "run.json").write_text("{broken")
    git(work, "commit", "-qam", "corrupt")
    git(repo, "worktree", "remove", "--force", str(work))
    sick = cli("ledger", "doctor", cwd=repo)
    assert sick.returncode == 1 and f"{ledger_dir(run_id)}/run.json" in sick.stdout
    assert json.loads(cli("runs", "list", "--json", cwd=repo).stdout) == []  # skipped, no crash


def test_secrets_never_reach_ledger_or_events(repo: Path) -> None:
    secret = "s3cr3t-value-for-the-test"
    token = "ghp_" + "A1b2C3d4" * 5
    env = {**os.environ, "DEPLOY_TOKEN": secret}
    script = ("import os; print('token is', os.environ['DEPLOY_TOKEN']); "
              f"print('and {token}')")
    code = """
import os, sys
from controlplane import tracked_run
from controlplane.core import redact
from controlplane.core.tools import run_tool
redact.register_env()
with tracked_run("deploy", "deploy:demo", project_root=sys.argv[1],
                 params={"api_token": os.environ["DEPLOY_TOKEN"]}) as run:
    run_tool([sys.executable, "-c", sys.argv[2]], run=run)
"""
    done = subprocess.run([sys.executable, "-c", code, str(repo), script], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    dump = git(repo, "log", "-p", "scp-ledger") + "".join(
        p.read_text() for p in (repo / ".scp-ledger").rglob("*") if p.is_file())
    dump += "".join(p.read_text() for p in (repo / ".git" / "scp").rglob("*.jsonl"))
    assert "token is ***" in dump and "and ***" in dump
    assert secret not in dump and token not in dump


def test_demo_fills_the_ledger(repo: Path) -> None:
    done = cli("demo", "--runs", "25", cwd=repo)
    assert done.returncode == 0 and "recorded 25 demo runs" in done.stdout
    runs = json.loads(cli("runs", "list", "--limit", "100", "--json", cwd=repo).stdout)
    assert len(runs) == 25 and {r["status"] for r in runs} <= {"ok", "failed"}
    assert len({r["run_id"][:8] for r in runs}) > 5  # spread over many days
    assert {r["actor"]["kind"] for r in runs} == {"demo"}
    on_ledger = subprocess.run(["git", "ls-tree", "-r", "--name-only", "scp-ledger"], cwd=repo,
                               capture_output=True, text=True).stdout
    assert "run.json" not in on_ledger  # on the local scp-demo branch: a push never sends them
