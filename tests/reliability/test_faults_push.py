"""A remote that refuses the push: `ledger push` is a failed run that says why; nothing lost.

The library level (``LedgerSync.push`` raises ``remote_rejected``, the local ledger
unchanged) is tests/test_sync.py::test_a_rejecting_remote_fails_and_keeps_the_local_ledger;
this is the command a user types.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import git
from tests.reliability.fault_support import cli, fsck, ledger_state, listed_runs
from tests.test_sync import machines, record  # noqa: F401  (machines: a fixture)


def test_cli_push_to_a_rejecting_remote_is_a_failed_run(
        machines: tuple[Path, Path, Path]) -> None:  # noqa: F811
    remote, a, _ = machines
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'pushes are closed today' >&2\nexit 1\n")
    hook.chmod(0o755)
    record(a, 3, "kept")
    before = ledger_state(a)
    done = cli(a, "ledger", "push")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "pushes are closed today" in done.stderr
    push = listed_runs(a)[0]
    assert push["subtype"] == "git:ledger_push" and push["status"] == "failed"
    assert push["error"]["code"] == "remote_rejected"
    assert "pushes are closed today" in push["error"]["message"]
    after = ledger_state(a)
    assert after["tags"] >= before["tags"] and set(before["index"]) < set(after["index"])
    assert git(a, "merge-base", "--is-ancestor", before["tip"], after["tip"]) == ""
    assert git(remote, "for-each-ref", "refs/heads/scp-ledger", "refs/scp") == ""
    assert fsck(a).returncode == 0
