"""The committed project file sets project facts only; who gets in and where data goes do not.

Written as the attacker: someone who can push commits ``.controlplane.yaml`` (and files
next to it); the operator then serves or runs ``controlplane config`` on that checkout.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from controlplane.core import settings
from controlplane.core.alerts import alerts_for
from controlplane.core.users import Users
from tests.conftest import TOKEN, git

LETTERS = "abcdefghi"
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{name}: &{name} [{','.join(['*' + previous] * 9)}]\n"  # 9 ** 9 strings once expanded
    for previous, name in itertools.pairwise(LETTERS)) + "action_timeout: *i\n"  # repr'd


@pytest.fixture(autouse=True)
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``$XDG_CONFIG_HOME`` of this test's own; returns the user file's path."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for setting in settings.SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    return tmp_path / "xdg" / "controlplane" / "config.yaml"


def commit(repo: Path, files: dict[str, str]) -> None:
    """What a push does: the files land in the operator's checkout."""
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", *files)
    git(repo, "commit", "-q", "-m", "innocent looking change")


def config_cli(repo: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controlplane", "config", "--repo", str(repo)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_planted_users_file_gives_its_token_no_login(repo: Path, make_app) -> None:
    planted = Users(repo / "planted.json")
    known_token = planted.add("mallory")  # the attacker keeps the token, commits the digest
    commit(repo, {".controlplane.yaml": "users_file: planted.json\n",
                  "planted.json": planted.path.read_text()})
    client = make_app().test_client()
    assert client.get("/api/runs/recent", headers=bearer(known_token)).status_code == 401
    assert client.get(f"/login?token={known_token}").status_code == 401
    assert client.get("/api/runs/recent", headers=bearer(TOKEN)).status_code == 200
    shown = config_cli(repo)
    assert shown.returncode == 0, shown.stderr
    assert "users_file =   [default]" in shown.stdout.splitlines()
    assert "warning: users_file: refused from .controlplane.yaml" in shown.stderr


def test_allowed_hosts_from_the_project_file_do_not_open_dns_rebinding(repo: Path,
                                                                         make_app) -> None:
    commit(repo, {".controlplane.yaml": "allowed_hosts: evil.example\n"})
    client = make_app().test_client()
    answer = client.get("/api/runs/recent", headers={**bearer(TOKEN), "Host": "evil.example"})
    assert answer.status_code == 403 and answer.json["error"] == "forbidden_host"
    assert client.get("/api/runs/recent", headers=bearer(TOKEN)).status_code == 200


def test_a_committed_bus_is_ignored(repo: Path, make_app) -> None:
    commit(repo, {".controlplane.yaml": "bus: redis://attacker:6379/0\n"
                                        "trusted_proxies: 0.0.0.0/0\nauto_sync: 1\n"})
    loaded = settings.load(repo)
    assert loaded["bus"] == ("memory", "default")
    assert loaded["trusted_proxies"] == ("", "default") and loaded["auto_sync"] == (0, "default")
    app = make_app()  # no connection to attacker:6379 is attempted
    assert app.extensions["controlplane"].bus.url == "memory"
    shown = config_cli(repo)
    assert "bus = memory  [default]" in shown.stdout.splitlines()
    assert "attacker" not in shown.stdout
    assert "bus: refused" in shown.stderr and "trusted_proxies: refused" in shown.stderr


def test_committed_alert_targets_are_refused_types_kept(repo: Path, user_config: Path) -> None:
    commit(repo, {".controlplane.yaml": yaml.safe_dump({"alerts": {
        "types": ["deploy"], "webhook": {"url": "http://attacker.example/collect"}}})})
    assert alerts_for(repo) is None  # types alone send nothing anywhere
    assert any(w.startswith("alerts.webhook: refused") for w in settings.warnings(repo))
    user_config.parent.mkdir(parents=True)
    user_config.write_text(yaml.safe_dump({"alerts": {"webhook": {"url": "http://ops.local/"}}}))
    config = alerts_for(repo)
    assert config is not None and config.types == ["deploy"]
    assert str(config.webhook.url) == "http://ops.local/"


def test_a_committed_secret_is_ignored_and_never_printed(repo: Path) -> None:
    commit(repo, {".controlplane.yaml": "token: committed-secret-0123456789\n"})
    assert settings.load(repo)["token"] == (None, "default")
    shown = config_cli(repo)
    assert shown.returncode == 0 and "committed-secret" not in shown.stdout + shown.stderr
    assert "token: a secret committed to .controlplane.yaml is ignored" in shown.stderr


def test_project_facts_still_come_from_the_project_file(repo: Path) -> None:
    commit(repo, {".controlplane.yaml": "action_timeout: 30\n"})
    assert settings.load(repo)["action_timeout"] == (30.0, ".controlplane.yaml")
    assert settings.warnings(repo) == []


def test_the_user_file_and_its_repository_section(repo: Path, tmp_path: Path,
                                                  user_config: Path) -> None:
    commit(repo, {".controlplane.yaml": "threads: 9999\n"})
    user_config.parent.mkdir(parents=True)
    user_config.write_text(yaml.safe_dump({
        "threads": 64, "allowed_hosts": "cp.example.com",
        "repositories": {str(repo): {"threads": 32}, str(tmp_path / "other"): {"threads": 1}}}))
    loaded = settings.load(repo)
    assert loaded["threads"] == (32, f"user file {user_config} [{repo}]")
    assert loaded["allowed_hosts"] == ("cp.example.com", f"user file {user_config}")
    shown = config_cli(repo)
    assert f"threads = 32  [user file {user_config} [{repo}]]" in shown.stdout.splitlines()
    assert config_cli(repo, CONTROLPLANE_THREADS="8").stdout.count("threads = 8  [env") == 1


def test_a_secret_in_a_user_file_others_can_read_is_ignored(repo: Path,
                                                             user_config: Path) -> None:
    user_config.parent.mkdir(parents=True)
    user_config.write_text("token: from-user-file-0123456789\n")
    user_config.chmod(0o644)
    assert settings.load(repo)["token"] == (None, "default")
    assert any("others can read it" in w for w in settings.warnings(repo))
    user_config.chmod(0o600)
    assert settings.load(repo)["token"] == ("from-user-file-0123456789",
                                            f"user file {user_config}")


def test_an_alias_bomb_is_refused_fast_in_bounded_memory(repo: Path) -> None:
    commit(repo, {".controlplane.yaml": BOMB})
    assert len(BOMB.encode()) < 380
    probe = ("import resource, sys, time\n"
             "from controlplane.core import settings\n"
             "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
             "start = time.monotonic()\n"
             "try:\n"
             "    settings.load(sys.argv[1], environ={})\n"
             "except settings.SettingsError as exc:\n"
             "    print(exc)\n"
             "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
             "print((after - before) // 1024, time.monotonic() - start)\n")
    done = subprocess.run([sys.executable, "-c", probe, str(repo)], capture_output=True,
                          text=True, timeout=60)
    message, figures = done.stdout.splitlines()
    grown_mb, seconds = int(figures.split()[0]), float(figures.split()[1])
    assert "anchors and aliases" in message and "not accepted" in message
    assert grown_mb < 50 and seconds < 1.0
    shown = config_cli(repo)
    assert shown.returncode == 2 and "anchors and aliases" in shown.stderr
    assert len(shown.stderr.splitlines()) == 1 and "lol" not in shown.stderr


def test_a_huge_project_file_is_refused_unread(repo: Path) -> None:
    commit(repo, {".controlplane.yaml": "action_timeout: 30\n" + "#" * 10_000_000 + "\n"})
    start = time.monotonic()
    with pytest.raises(settings.SettingsError, match="larger than 64 KiB"):
        settings.load(repo)
    assert time.monotonic() - start < 1.0


def test_the_settings_doc_lists_exactly_the_allow_list() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "settings.md").read_text()
    allowed = {s.name for s in settings.SETTINGS if s.project}
    allowed |= {f"{name}.{key}" for name, keys in settings.PROJECT_SECTIONS.items()
                for key in keys}
    listed = doc.split("<!-- project-allow-list -->")[1].split("<!-- /project-allow-list -->")[0]
    assert {line.strip("-` ").split("`")[0] for line in listed.strip().splitlines()} == allowed


def test_settings_warnings_are_json_safe_one_liners(repo: Path) -> None:
    commit(repo, {".controlplane.yaml": "host: 0.0.0.0\nport: 80\nnot_a_setting: 1\n"})
    found = settings.warnings(repo)
    assert len(found) == 3 and all("\n" not in w for w in found)
    json.dumps(found)
