"""run_tool: the one way a tool is started, shown with fake tools on a PATH of our own."""

from __future__ import annotations

import json
import os
import select
import shutil
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from controlplane.core import redact
from controlplane.core import tools as tools_module
from controlplane.core.context import reset_current_run, set_current_run
from controlplane.core.tools import (
    ToolMissing,
    ToolResult,
    require_tool,
    run_tool,
    tool_version,
)

GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5" * 4


class FakeRun:
    """A RunSink that remembers what it was told; ``ready`` is set by a "ready" line."""

    def __init__(self) -> None:
        self.run_id = "run-test"
        self.cancel_requested = threading.Event()
        self.ready = threading.Event()
        self.lines: list[tuple[str, str]] = []
        self.attached: list[tuple[int, int]] = []
        self.detached: list[int] = []

    def output(self, line: str, stream: str = "stdout") -> None:
        self.lines.append((stream, line))
        if line == "ready":
            self.ready.set()

    def attach_process(self, pid: int, pgid: int) -> None:
        self.attached.append((pid, pgid))

    def detach_process(self, pid: int) -> None:
        self.detached.append(pid)

    def stream(self, name: str) -> list[str]:
        return [line for stream, line in self.lines if stream == name]


class Tools:
    """A bin directory of fake tools (and the few real ones they use), the only PATH."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        for real in ("sleep", "touch"):
            (self.bin / real).symlink_to(shutil.which(real))
        self.env = {"PATH": str(self.bin), "HOME": str(tmp_path)}

    def bash(self, name: str, body: str) -> Path:
        return self._write(name, "#!/bin/bash\n" + textwrap.dedent(body).lstrip())

    def python(self, name: str, body: str) -> Path:
        return self._write(name, f"#!{sys.executable}\n" + textwrap.dedent(body).lstrip())

    def _write(self, name: str, text: str) -> Path:
        path = self.bin / name
        path.write_text(text)
        path.chmod(0o755)
        return path


@pytest.fixture
def tools(tmp_path: Path) -> Tools:
    return Tools(tmp_path)


@pytest.fixture(autouse=True)
def no_reader_threads_left():
    """run_tool joins its reader threads (daemon or not) before it returns."""
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not left, f"threads left running: {left}"


@pytest.fixture
def fresh_redactor(monkeypatch: pytest.MonkeyPatch) -> redact.Redactor:
    """Swap in an empty process-wide redactor for this test."""
    fresh = redact.Redactor()
    monkeypatch.setattr(redact, "redactor", fresh)
    return fresh


def process_gone(pid: int, timeout: float = 10.0) -> bool:
    """True once *pid* has exited (a zombie nobody reaped counts as gone)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])  # readable when it exits
    finally:
        os.close(fd)


SLEEPY_TOOL = """
    {trap}
    sleep 100 &
    echo $! > "$CHILD_PID_FILE"
    echo ready
    wait
"""


def test_argv_arrives_exactly_as_given(tools: Tools) -> None:
    tools.python("kubectl", "import json, sys; print(json.dumps(sys.argv[1:]))")
    args = ["apply", "-f", "; rm -rf / $(x)", "--", 'it\'s "quoted"', "two words", "$HOME", ""]
    result = run_tool(["kubectl", *args], env=tools.env)
    assert result.ok and result.status == "ok" and result.error is None
    assert json.loads(result.stdout) == args
    assert result.argv == ["kubectl", *args] and result.exit_code == 0


def test_a_tool_can_be_named_by_its_path(tools: Tools) -> None:
    tools.python("kubectl", "import json, sys; print(json.dumps(sys.argv[1:]))")
    result = run_tool([tools.bin / "kubectl", "get", Path("pods")], env={})
    assert result.ok and json.loads(result.stdout) == ["get", "pods"]
    result = run_tool(["./bin/kubectl", "version"], cwd=tools.tmp, env={})
    assert result.ok and json.loads(result.stdout) == ["version"]


@pytest.mark.parametrize("argv", ["echo hello", b"echo hello", ["echo", 5], []])
def test_argv_that_is_not_a_list_of_strings_is_refused(tools: Tools, argv: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        run_tool(argv, env=tools.env)  # type: ignore[arg-type]


def test_missing_tool_is_reported_before_anything_is_spawned(tools: Tools) -> None:
    elsewhere = tools.tmp / "not-on-path"
    elsewhere.mkdir()
    marker = tools.tmp / "spawned"
    kubectl = elsewhere / "kubectl"
    kubectl.write_text(f"#!/bin/bash\ntouch {marker}\n")
    kubectl.chmod(0o755)
    run = FakeRun()

    result = run_tool(["kubectl", "get", "pods"], env=tools.env, run=run)

    assert result.status == "failed" and not result.ok and result.exit_code is None
    assert result.error == {
        "code": "tool_missing",
        "message": "kubectl is not installed or not on PATH",
    }
    assert not marker.exists()
    assert run.attached == [] and run.lines == []


def test_require_tool_and_tool_version(tools: Tools) -> None:
    tools.bash("helm", 'echo "helm v3.14.0"; echo "more detail"')
    assert require_tool("helm", path=tools.env["PATH"]) == str(tools.bin / "helm")
    with pytest.raises(ToolMissing) as missing:
        require_tool("terraform", path=str(tools.bin))
    assert missing.value.tool == "terraform"
    assert "terraform is not installed or not on PATH" in str(missing.value)

    assert tool_version("helm", env=tools.env) == "helm v3.14.0"
    assert tool_version("terraform", env=tools.env) is None


def test_tool_version_of_a_failing_tool_is_none(tools: Tools) -> None:
    tools.bash("broken", "echo 'broken 1.0'; exit 1")
    assert tool_version("broken", env=tools.env) is None


def test_non_zero_exit_fails_with_the_last_stderr_line(tools: Tools) -> None:
    tools.bash("kubectl", 'echo "doing it"; echo "warning: x" >&2; echo "cluster down" >&2; exit 3')
    result = run_tool(["kubectl", "get", "pods"], env=tools.env)
    assert result.status == "failed" and result.exit_code == 3
    assert result.error == {
        "code": "exit_status",
        "message": "kubectl exited with status 3: cluster down",
    }
    assert result.stdout == "doing it\n"
    assert result.stderr == "warning: x\ncluster down\n"


def test_a_tool_that_cannot_start_fails_with_exception(tools: Tools) -> None:
    tools.bash("git", "exit 0")
    result = run_tool(["git", "status"], env=tools.env, cwd=tools.tmp / "no-such-dir")
    assert result.status == "failed" and result.error["code"] == "exception"
    assert "git could not be started" in result.error["message"]


def test_timeout_kills_the_whole_process_group(tools: Tools) -> None:
    tools.bash("terraform", SLEEPY_TOOL.format(trap=""))
    pid_file = tools.tmp / "child.pid"
    run = FakeRun()

    result = run_tool(
        ["terraform", "apply"],
        env={**tools.env, "CHILD_PID_FILE": str(pid_file)},
        timeout=1.5,
        run=run,
    )

    assert result.status == "failed" and result.error["code"] == "timeout"
    assert result.error["message"] == "terraform timed out after 1.5 seconds"
    assert result.stdout == "ready\n"
    assert process_gone(int(pid_file.read_text()))
    assert [pid for pid, _ in run.attached] == run.detached


def test_cancel_from_another_thread_stops_the_tool_and_its_children(tools: Tools) -> None:
    tools.bash("kubectl", SLEEPY_TOOL.format(trap=""))
    pid_file = tools.tmp / "child.pid"
    run = FakeRun()

    def cancel_when_ready() -> None:
        assert run.ready.wait(30)
        run.cancel_requested.set()

    canceller = threading.Thread(target=cancel_when_ready)
    canceller.start()
    token = set_current_run(run)  # run and its cancel event come from the context
    try:
        result = run_tool(
            ["kubectl", "port-forward", "svc/web", "8080"],
            env={**tools.env, "CHILD_PID_FILE": str(pid_file)},
            timeout=60,
        )
    finally:
        reset_current_run(token)
        canceller.join()

    assert result.status == "cancelled" and not result.ok
    assert result.error == {"code": "cancelled", "message": "kubectl was cancelled"}
    assert result.exit_code == -2  # SIGINT was enough
    assert process_gone(int(pid_file.read_text()))
    ((pid, pgid),) = run.attached
    assert pgid == pid and run.detached == [pid]
    assert run.lines == [("stdout", "ready")]


@pytest.mark.parametrize(
    ("trap", "exit_code"),
    [("trap '' INT", -15), ("trap '' INT TERM", -9)],
    ids=["ignores-SIGINT", "ignores-SIGINT-and-SIGTERM"],
)
def test_cancel_escalates_when_the_tool_ignores_signals(
    tools: Tools, trap: str, exit_code: int
) -> None:
    tools.bash("stubborn", SLEEPY_TOOL.format(trap=trap))
    pid_file = tools.tmp / "child.pid"
    run = FakeRun()
    cancel = threading.Event()
    canceller = threading.Thread(target=lambda: run.ready.wait(30) and cancel.set())
    canceller.start()
    try:
        result = run_tool(
            ["stubborn"],
            env={**tools.env, "CHILD_PID_FILE": str(pid_file)},
            run=run,
            cancel_event=cancel,
            grace_period=0.2,
            timeout=60,
        )
    finally:
        canceller.join()
    assert result.status == "cancelled" and result.exit_code == exit_code
    assert process_gone(int(pid_file.read_text()))


def test_a_child_left_holding_the_output_open_is_killed(
    tools: Tools, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tools_module, "_DRAIN_TIMEOUT", 0.3)
    pid_file = tools.tmp / "child.pid"
    tools.bash("leaky", 'sleep 100 &\necho $! > "$CHILD_PID_FILE"\necho done')
    result = run_tool(["leaky"], env={**tools.env, "CHILD_PID_FILE": str(pid_file)})
    assert result.ok and result.stdout == "done\n"
    assert process_gone(int(pid_file.read_text()))


def test_cancel_set_before_the_start_spawns_nothing(tools: Tools) -> None:
    marker = tools.tmp / "spawned"
    tools.bash("git", f"touch {marker}")
    cancel = threading.Event()
    cancel.set()
    result = run_tool(["git", "fetch"], env=tools.env, cancel_event=cancel)
    assert result.status == "cancelled" and result.exit_code is None
    assert not marker.exists()


def test_stdin_is_closed(tools: Tools) -> None:
    tools.bash("git", 'if read -r line; then echo "read: $line"; else echo "eof"; fi')
    result = run_tool(["git", "push"], env=tools.env, timeout=30)
    assert result.ok and result.stdout == "eof\n"


def test_secret_passed_on_stdin_reaches_the_tool(tools: Tools, fresh_redactor) -> None:
    received = tools.tmp / "received"
    tools.python(
        "docker",
        f"""
        import sys
        with open({str(received)!r}, "w") as f:
            f.write(sys.stdin.read())
        print("Login Succeeded")
        """,
    )
    secret = "s3cr3t-passphrase-from-the-vault"
    result = run_tool(["docker", "login", "--password-stdin"], env=tools.env, stdin_data=secret)
    assert result.ok and result.stdout == "Login Succeeded\n"
    assert received.read_text() == secret
    assert secret not in json.dumps(result.argv)


def test_environment_is_non_interactive(tools: Tools) -> None:
    tools.bash(
        "git",
        'echo "$GIT_TERMINAL_PROMPT|$GIT_SSH_COMMAND|$PYTHONUNBUFFERED|$FROM_ENV|$EXTRA|$HOME"',
    )
    result = run_tool(
        ["git", "fetch"], env={**tools.env, "FROM_ENV": "a"}, extra_env={"EXTRA": "b"}
    )
    assert result.stdout == f"0|ssh -o BatchMode=yes|1|a|b|{tools.tmp}\n"

    own_ssh = {**tools.env, "GIT_SSH_COMMAND": "ssh -i key", "GIT_TERMINAL_PROMPT": "1"}
    result = run_tool(["git", "fetch"], env=own_ssh)
    assert result.stdout == f"0|ssh -i key|1|||{tools.tmp}\n"


def test_output_lines_stream_to_the_run_in_order(tools: Tools) -> None:
    tools.python(
        "terraform",
        r"""
        import sys
        for i in range(200):
            print(f"out {i}")
            print(f"err {i}", file=sys.stderr)
        sys.stdout.buffer.write(b"windows line\r\nbad byte \xff\nno newline at end")
        """,
    )
    run = FakeRun()
    result = run_tool(["terraform", "plan"], env=tools.env, run=run)
    assert result.ok
    expected_out = [f"out {i}" for i in range(200)]
    expected_out += ["windows line", "bad byte \ufffd", "no newline at end"]
    assert run.stream("stdout") == expected_out
    assert run.stream("stderr") == [f"err {i}" for i in range(200)]
    assert len(run.lines) == 403
    assert result.stdout == "".join(line + "\n" for line in expected_out)


def test_secrets_in_output_are_redacted(tools: Tools, fresh_redactor) -> None:
    secret = "hunter2-but-longer"
    redact.register_secret(secret)
    tools.bash(
        "kubectl",
        f"""
        echo "password is {secret} ok"
        echo "token {GITHUB_TOKEN}" >&2
        exit 1
        """,
    )
    run = FakeRun()
    result = run_tool(["kubectl", "get", "secret"], env=tools.env, run=run)
    # two streams, two reader threads: the order between them is not defined
    assert sorted(run.lines) == [("stderr", "token ***"), ("stdout", "password is *** ok")]
    assert result.stdout == "password is *** ok\n"
    assert result.stderr == "token ***\n"
    assert result.error["message"] == "kubectl exited with status 1: token ***"
    assert secret not in repr(result) and GITHUB_TOKEN not in repr(result)


def test_captured_output_keeps_the_tail_up_to_the_cap(tools: Tools) -> None:
    tools.python("helm", 'for i in range(1000): print(f"{i:04d}" + "x" * 96)')
    run = FakeRun()
    result = run_tool(["helm", "template", "."], env=tools.env, run=run, max_capture=1000)
    assert result.ok and len(run.lines) == 1000  # the run still sees everything
    kept = [f"{i:04d}" + "x" * 96 for i in range(991, 1000)]  # 9 lines of 101 bytes
    omitted = 1000 * 101 - 9 * 101
    assert result.stdout == f"[... {omitted} bytes omitted ...]\n" + "".join(
        line + "\n" for line in kept
    )


def test_one_line_longer_than_the_cap_keeps_its_end(tools: Tools) -> None:
    tools.python("helm", 'print("a" * 5000 + "THE END")')
    result = run_tool(["helm", "template", "."], env=tools.env, max_capture=100)
    marker, body = result.stdout.split("\n", 1)
    assert body == "a" * 92 + "THE END\n"
    assert marker == f"[... {5008 - 100} bytes omitted ...]"


def test_result_is_a_plain_dataclass() -> None:
    result = ToolResult(["git"], 0, "ok", None, "", "", 1)
    assert result.ok
    assert not ToolResult(
        ["git"], 1, "failed", {"code": "exit_status", "message": ""}, "", "", 1
    ).ok


def test_which_answers_as_shutil_which(tmp_path: Path) -> None:
    """tools.which stands for shutil.which on the exec path (issue 18, item 8)."""
    from controlplane.core.tools import which

    runnable, plain, folder = tmp_path / "a" / "tool", tmp_path / "b" / "tool", tmp_path / "c"
    for path in (runnable, plain):
        path.parent.mkdir()
        path.write_text("#!/bin/sh\n")
    runnable.chmod(0o755)
    (folder / "tool").mkdir(parents=True)  # a directory named like the tool: not it
    paths = [f"{folder}:{plain.parent}:{runnable.parent}", f"{runnable.parent}::{folder}",
             f"{plain.parent}", "", f"{folder}:{folder}"]
    for path in paths:
        assert which("tool", path=path) == shutil.which("tool", path=path), path
    for name in ("sh", "no-such-tool-here", str(runnable), str(plain), str(folder / "tool")):
        assert which(name) == shutil.which(name), name
