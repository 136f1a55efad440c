"""The secret scan reports file, line and kind, and the values appear nowhere we store or send."""

from __future__ import annotations

import json
from pathlib import Path

from controlplane.core.actions import load_integrations
from controlplane.core.ledger import Ledger
from tests.conftest import bearer_client, git, isolated_path

load_integrations()

GITHUB_TOKEN = "ghp_" + "Zq8vR2mW4tY6uI0oP3aS5dF7gH9jK1lX2cV4"
AWS_KEY = "AKIA" + "QWERTYUIOPASDFGH"
# any piece of them long enough to be telling
PIECES = [GITHUB_TOKEN, AWS_KEY, GITHUB_TOKEN[4:20], GITHUB_TOKEN[-12:], AWS_KEY[4:], "QWERTYUIOP"]


def plant(repo: Path) -> None:
    (repo / "deploy").mkdir()
    (repo / "deploy" / "settings.py").write_text(
        f'DEBUG = False\nGITHUB = "{GITHUB_TOKEN}"\n\nAWS_ACCESS_KEY_ID = "{AWS_KEY}"\n')
    (repo / "app.py").write_text("print('clean')\n")
    (repo / "untracked.txt").write_text(f"{GITHUB_TOKEN}\n")  # git does not track it
    git(repo, "add", "deploy", "app.py")
    git(repo, "commit", "-q", "-m", "settings")


def leaks(text: str) -> list[str]:
    return [piece for piece in PIECES if piece in text]


def test_planted_secrets_are_found_by_line_and_never_echoed(repo: Path, make_app) -> None:
    plant(repo)
    answer = bearer_client(make_app()).post("/security/scan", json={})
    body = answer.get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "secrets_found"
    assert body["findings"] == [
        {"file": "deploy/settings.py", "line": 2, "kind": "github_token"},
        {"file": "deploy/settings.py", "line": 4, "kind": "aws_access_key_id"},
    ]
    assert body["files_scanned"] == 3 and body["by_kind"] == [
        {"kind": "github_token", "count": 1}, {"kind": "aws_access_key_id", "count": 1}]
    assert leaks(answer.get_data(as_text=True)) == []

    ledger = Ledger.open(repo)
    events = ledger.events(body["run_id"])
    output = [e["data"]["line"] for e in events if e["type"] == "run:output"]
    assert "deploy/settings.py:2: github_token" in output
    assert leaks(json.dumps(events)) == []
    assert leaks(json.dumps(ledger.get(body["run_id"]))) == []

    for piece in PIECES:  # the ledger branch, as git stores it
        assert git(repo, "grep", "-I", "-F", "-e", piece, "scp-ledger", check=False) == ""
    view = [p for p in (repo / ".scp-ledger").rglob("*") if p.is_file()]
    assert view, "the ledger view was written"
    for path in view:
        assert leaks(path.read_text(errors="replace")) == [], path
    for path in (repo / ".git").rglob("*"):  # journal, index, logs (objects are compressed)
        if path.is_file() and "objects" not in path.parts:
            assert leaks(path.read_bytes().decode("latin-1")) == [], path


def test_a_clean_project_and_a_limited_scan(repo: Path, make_app) -> None:
    plant(repo)
    client = bearer_client(make_app())
    body = client.post("/security/scan", json={"paths": ["app.py"]}).get_json()
    assert body["status"] == "ok" and body["files_scanned"] == 1 and body["findings"] == []


def test_binary_files_and_links_out_of_the_project_are_skipped(repo: Path, make_app,
                                                               tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text(f"{AWS_KEY}\n")
    (repo / "link.txt").symlink_to(outside)
    (repo / "blob.bin").write_bytes(b"\0\1" + AWS_KEY.encode())
    git(repo, "add", "link.txt", "blob.bin")
    git(repo, "commit", "-q", "-m", "odd files")
    body = bearer_client(make_app()).post("/security/scan", json={}).get_json()
    assert body["status"] == "ok" and body["files_skipped"] == 2


def test_without_git_the_scan_says_tool_missing(repo: Path, make_app, tmp_path: Path) -> None:
    env = isolated_path(tmp_path / "path", exclude=("git",))
    body = bearer_client(make_app(TOOL_ENV=env)).post("/security/scan", json={}).get_json()
    assert body["status"] == "failed" and body["error"]["code"] == "tool_missing"
    assert "git" in body["error"]["message"]
