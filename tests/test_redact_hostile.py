"""Redaction against hostile and awkward output (issue 12 items 4 and 5).

Item 4: every line is redacted in time linear in its length; a 1 MiB line built to
defeat a pattern is done well under half a second, and a served app answers
``/healthz`` while a run's tool prints such lines.
Item 5: secrets split by colour codes or carriage returns, in URL userinfo, in
variables with unusual names, or in a script's own environment never reach the
ledger.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from controlplane.core.redact import Redactor
from controlplane.core.visible_text import visible_text
from tests.conftest import LONG, git

MIB = 1 << 20
SMALL = 100_000
HOSTILE_UNITS = [
    "token", "a", "Bearer ", "-----BEGIN ", "=", "%2F", "QUJDRGVmZ2hpams0NTY3ODkrLw",
    "secret_", "password=", 'token="', "token:", "token" + " " * 40, "api_key", "TokeN-",
    "authorization: ", "ghp_", "xoxb-", "AKIA", "github_pat_", "://", "x://u:", "x://:p@",
    "-----BEGIN PRIVATE KEY----------END ", "\x1b[31m", "\x1b]", "\x1b", "a\r", "\r",
    "ab\b", "\b", "\x00", "\u200b", "İ",
]
# every trigger word at the start, then one of the runs above
ALL_TRIGGERS = "gh github_pat_ AKIA xox -----BEGIN :// authorization bearer passw token "


def line_of(unit: str, size: int, prefix: str = "") -> str:
    return (prefix + unit * (size // len(unit) + 1))[:size]


def cpu_seconds(work: Callable[[], object], repeat: int) -> float:
    """The least CPU time of *repeat* calls (this thread's: other processes do not count)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time()
        work()
        best = min(best, time.thread_time() - started)
    return best


@pytest.fixture(scope="module")
def hostile_redactor() -> Redactor:
    r = Redactor()
    r.register("deploy-token-value-123")
    r.register("a" * 19 + "b")  # the literal matcher's worst case: a long shared prefix
    return r


# with every trigger, every shape runs over the line: the short form tries only that
PREFIXES = {"all-triggers": ALL_TRIGGERS, **({"plain": ""} if LONG else {})}


@pytest.mark.parametrize("prefix", PREFIXES.values(), ids=PREFIXES.keys())
@pytest.mark.parametrize("unit", HOSTILE_UNITS)
def test_a_hostile_line_is_redacted_in_linear_time(hostile_redactor: Redactor, unit: str,
                                                   prefix: str) -> None:
    big, small = line_of(unit, MIB, prefix), line_of(unit, SMALL, prefix)
    big_time = cpu_seconds(lambda: hostile_redactor.redact(big), 2)
    small_time = cpu_seconds(lambda: hostile_redactor.redact(small), 5)
    assert big_time < 0.5, f"1 MiB of {unit!r}: {big_time:.3f} s"
    # 10.5x the text: linear is ~10x, quadratic ~110x; under 50 ms nothing can be quadratic
    # (the quadratic forms took 100 s for 100 KB)
    assert big_time < 0.05 or big_time / small_time < 25, (big_time, small_time)


def test_a_clean_long_line_is_cheap(hostile_redactor: Redactor) -> None:
    line = line_of("Apply complete! Resources: 3 added, 0 changed. ", MIB)
    assert cpu_seconds(lambda: hostile_redactor.redact(line), 3) < 0.1
    assert hostile_redactor.redact(line) is line


# --- the forms item 5 names, at the redactor ------------------------------------------------

SECRET = "s3cr3t-deploy-value"


@pytest.fixture
def r() -> Redactor:
    redactor = Redactor()
    redactor.register(SECRET)
    return redactor


@pytest.mark.parametrize("line", [
    "s3c\x1b[31mr3t-de\x1b[0mploy-value",
    "s3cr3t-\x1b[1;32mdeploy\x1b[m-value done",
    "s\x1b]0;title\x07" + SECRET[1:],
    "___r3t-deploy-value\rs3c",
    "s3cr3t-dXXXXX\b\b\b\b\beploy-value",
    "s3c\x00r3t-\u200bdeploy-value",
    "progress 10%\rprogress 20%\r" + SECRET,
])
def test_a_secret_as_a_terminal_shows_it_is_redacted(r: Redactor, line: str) -> None:
    assert SECRET not in visible_text(r.redact(line))
    assert SECRET not in r.redact(line)


def test_a_secret_overwritten_on_the_terminal_is_still_not_stored(r: Redactor) -> None:
    assert SECRET not in r.redact(SECRET + "\r" + "x" * 30)


def test_colours_stay_when_there_is_no_secret(r: Redactor) -> None:
    line = "\x1b[32mPASSED\x1b[0m tests/test_x.py::test_y\r"
    assert r.redact(line) is line


@pytest.mark.parametrize(("line", "expected"), [
    ("postgres://user:pass-word@db.internal:5432/app", "postgres://user:***@db.internal:5432/app"),
    ("DATABASE_URL=mysql://root:p@ss@localhost/db", "DATABASE_URL=mysql://root:***@localhost/db"),
    ("https://x-access-token:abc@github.com/o/r.git", "https://x-access-token:***"),  # token:
    ("redis://:only-password@cache:6379", "redis://:***@cache:6379"),
    ("see https://example.com/a:b@c", "see https://example.com/a:b@c"),
    ("git@github.com:owner/repo.git", "git@github.com:owner/repo.git"),
    ("https://user@host/path", "https://user@host/path"),
])
def test_url_userinfo_passwords_are_masked(line: str, expected: str) -> None:
    assert Redactor().redact(line) == expected


@pytest.mark.parametrize("name", ["APIKEY", "API_KEY", "apikey", "PRIVATE_KEY", "CREDENTIALS",
                                  "AUTH", "NPM_AUTH", "SIGNING_PASSPHRASE", "GOOGLE_CREDENTIALS",
                                  "stripeApiKey", "AUTHORIZATION"])
def test_secret_names_without_the_usual_suffix_are_registered(name: str) -> None:
    r = Redactor()
    assert r.register_env({name: "value-of-" + name}) == [name]
    assert r.redact("got value-of-" + name) == "got ***"


@pytest.mark.parametrize("name", ["GIT_AUTHOR_NAME", "AUTHOR", "OAUTH_CLIENT_ID", "KEYBOARD",
                                  "KEY_FILE", "HOME", "PWD"])
def test_ordinary_names_are_not_registered(name: str) -> None:
    assert Redactor().register_env({name: "some-ordinary-value"}) == []


def test_api_key_assignments_are_masked() -> None:
    r = Redactor()
    assert r.redact("MY_APIKEY=abc123 next") == "MY_APIKEY=*** next"
    assert r.redact('{"x-api-key": "abc123"}') == '{"x-api-key": "***"}'


# --- a real tracked_run script, the way a user writes one --------------------------------

DEPLOY_TOKEN = "dpl-7Hq2-Zx9c-Lm4v"
OTHER_SECRETS = {"APIKEY": "apik-55aa-66bb", "AUTH": "auth-77cc-88dd",
                 "CREDENTIALS": "cred-99ee-00ff"}
URL_PASSWORD = "urlpass-Kx81z"  # printed only inside a URL, in no variable
SCRIPT = r'''
import os, sys
from controlplane import tracked_run

token = os.environ["DEPLOY_TOKEN"]
with tracked_run("deploy", "deploy:script", project_root=sys.argv[1],
                 summary="deploy with " + token) as run:
    run.output("token is " + token)
    run.output("ansi " + token[:3] + "\x1b[31m" + token[3:9] + "\x1b[0m" + token[9:])
    run.output("_" * 4 + token[4:] + "\r" + token[:4])
    run.output("postgres://deploy:" + token + "@db.internal/app")
    run.output("postgres://deploy:" + sys.argv[2] + "@db.internal/app")
    for name in ("APIKEY", "AUTH", "CREDENTIALS"):
        run.output(name + " " + os.environ[name])
    run.result = {"note": "used " + token}
'''


JSON_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|[rbtn])")
ESCAPED = {"r": "\r", "b": "\b", "t": "\t", "n": "\n"}


def unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    return ESCAPED[code] if len(code) == 1 else chr(int(code[1:], 16))


def stored_texts(repo: Path) -> list[str]:
    """Everything the run left: the ledger's commits and every file of the repository
    and of .git outside the object store, JSON escapes decoded too."""
    texts = [git(repo, "log", "-p", "--all")]
    for path in repo.rglob("*"):
        if path.is_file() and "objects" not in path.relative_to(repo).parts:
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    decoded = [JSON_ESCAPE.sub(unescape, t) for t in texts]
    return [visible_text(t) for t in texts + decoded]


def test_a_tracked_run_script_never_stores_its_own_secrets(repo: Path) -> None:
    env = {**os.environ, "DEPLOY_TOKEN": DEPLOY_TOKEN, **OTHER_SECRETS}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(repo), URL_PASSWORD], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    texts = stored_texts(repo)
    assert any("token is ***" in text for text in texts)  # the run was recorded
    for secret in [DEPLOY_TOKEN, URL_PASSWORD, *OTHER_SECRETS.values()]:
        assert not [t for t in texts if secret in t], f"{secret} stored"


# --- /healthz while a run's tool prints hostile lines --------------------------------------

TOOL = r'''
import sys
for unit in ("token", 'token="', "secret_", "x://:p@", "ab\b", "\x1b[31m", "a\r"):
    sys.stdout.write((unit * (1048575 // len(unit) + 1))[:1048575] + "\n")
    sys.stdout.flush()
'''


def healthz_seconds(base: str) -> float:
    where = urlsplit(base)
    started = time.monotonic()
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    try:
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    return time.monotonic() - started


def test_healthz_stays_fast_while_a_tool_prints_hostile_1mib_lines(served: str,
                                                                    repo: Path) -> None:
    from controlplane.core.run_tracker import tracked_run
    from controlplane.core.tools import run_tool

    started = threading.Event()
    outcome: dict[str, object] = {}

    def deploy() -> None:
        with tracked_run("deploy", "deploy:hostile", project_root=repo) as run:
            started.set()
            outcome["result"] = run_tool([sys.executable, "-c", TOOL], run=run)

    worker = threading.Thread(target=deploy)
    worker.start()
    started.wait(60)
    latencies = []
    while worker.is_alive():
        latencies.append(healthz_seconds(served))
    worker.join()
    assert outcome["result"].ok  # type: ignore[union-attr]
    assert latencies, "the run ended before any request"
    assert max(latencies) < 2.0, f"/healthz took up to {max(latencies):.2f} s"


# --- Terraform's sensitive ---------------------------------------------------------------

DB_PASS = "tf-db-pass-Q7w2e9"
SHORT_PASS = "pw1"  # too short to register: masked in the stored params all the same
GENERATED = "generated-Secret-99"
OUTPUT_SECRET = "out-secret-K2m4n6"
SENSITIVE_TF = """
variable "db_pass" {
  type      = string
  sensitive = true # never shown
}

variable "pin" {
  type = string
  sensitive = true
}

variable "region" {
  type    = string
  default = "eu-west-1" /* { not a brace } */
}

output "conn" {
  value     = "postgres://app:${var.db_pass}@db/app"
  sensitive = true
}
"""
FAKE_TERRAFORM = r'''
import json, os, sys
args = sys.argv[1:]
if "plan" in args:
    out = [a.split("=", 1)[1] for a in args if a.startswith("-out=")][0]
    open(out, "w").write("plan")
    print("Plan: 1 to add. db_pass = (sensitive value)")
    sys.exit(2)
if "show" in args:
    db_pass, pin = os.environ["TF_VAR_db_pass"], os.environ["TF_VAR_pin"]
    print(json.dumps({
        "format_version": "1.2", "applyable": True,
        "variables": {"db_pass": {"value": db_pass}, "pin": {"value": pin},
                      "region": {"value": os.environ["TF_VAR_region"]}},
        "planned_values": {
            "outputs": {"conn": {"sensitive": True, "value": "@OUT@"}},
            "root_module": {"resources": [{
                "address": "random_password.db", "values": {"result": "@GEN@", "length": 19},
                "sensitive_values": {"result": True}}]}},
        "resource_changes": [{"address": "random_password.db", "change": {
            "actions": ["create"], "before": None, "after": {"result": "@GEN@", "keepers": {
                "pin": pin, "zone": "a"}},
            "before_sensitive": False, "after_sensitive": {"result": True,
                                                           "keepers": {"pin": True}}}}],
        "output_changes": {"conn": {"actions": ["create"], "before": None,
                                    "after": "@OUT@", "after_sensitive": True}},
        "configuration": {"root_module": {"variables": {
            "db_pass": {"sensitive": True, "default": db_pass},
            "region": {"default": "eu-west-1"}}}},
    }))
'''.replace("@OUT@", OUTPUT_SECRET).replace("@GEN@", GENERATED)


@pytest.fixture
def tf_project(repo: Path) -> Path:
    (repo / "infra").mkdir()
    (repo / "infra" / "main.tf").write_text(SENSITIVE_TF)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "infra")
    return repo


def test_terraform_sensitive_values_never_reach_the_ledger(tf_project: Path, make_app, fake_bin,
                                                           tmp_path: Path) -> None:
    from controlplane.core.actions import load_integrations
    from controlplane.core.ledger import Ledger
    from tests.conftest import bearer_client, isolated_path, python_script

    load_integrations()
    fake_bin("terraform", python_script(FAKE_TERRAFORM))
    client = bearer_client(make_app(TOOL_ENV=isolated_path(tmp_path / "tools",
                                                           first=fake_bin.dir)))
    answer = client.post("/terraform/plan", json={
        "dir": "infra", "vars": {"db_pass": DB_PASS, "pin": SHORT_PASS, "region": "eu-west-1"}})
    body = answer.get_json()
    assert body["status"] == "ok", body
    assert body["add"] == 1 and body["output_changes"] == ["conn"]
    run = Ledger.open(tf_project).get(body["run_id"])
    assert run["params"]["vars"] == {"db_pass": "***", "pin": "***", "region": "eu-west-1"}
    shown = [e["data"]["line"] for e in Ledger.open(tf_project).events(body["run_id"])
             if e["type"] == "run:output" and e["data"]["line"].startswith("{")]
    assert len(shown) == 1 and '"result":"***"' in shown[0] and '"zone":"a"' in shown[0]
    texts = [*stored_texts(tf_project), answer.get_data(as_text=True)]
    for secret in (DB_PASS, GENERATED, OUTPUT_SECRET, f'"{SHORT_PASS}"'):
        assert not [t for t in texts if secret in t], f"{secret} stored"

    again = client.post(f"/api/runs/{body['run_id']}/rerun", json={})
    assert again.status_code == 422 and "vars" in again.get_json()["fields"], again.get_json()


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_real_terraform_plan_keeps_sensitive_values_out(tf_project: Path, make_app,
                                                        tmp_path: Path) -> None:
    from controlplane.core.actions import load_integrations
    from controlplane.core.ledger import Ledger
    from tests.conftest import bearer_client, isolated_path

    load_integrations()
    tools = tmp_path / "real"
    tools.mkdir()
    (tools / "terraform").symlink_to(shutil.which("terraform") or "/nonexistent")
    (tmp_path / "terraform.rc").write_text("")
    env = {**isolated_path(tmp_path / "bin", first=tools), "CHECKPOINT_DISABLE": "1",
           "TF_CLI_CONFIG_FILE": str(tmp_path / "terraform.rc"), "HOME": str(tmp_path)}
    client = bearer_client(make_app(TOOL_ENV=env))
    assert client.post("/terraform/init", json={"dir": "infra"}).get_json()["status"] == "ok"
    body = client.post("/terraform/plan", json={
        "dir": "infra", "vars": {"db_pass": DB_PASS, "pin": SHORT_PASS}}).get_json()
    assert body["status"] == "ok" and body["output_changes"] == ["conn"], body
    events = Ledger.open(tf_project).events(body["run_id"])
    assert any('"db_pass":{"value":"***"}' in e["data"].get("line", "") for e in events)
    texts = stored_texts(tf_project)
    for secret in (DB_PASS, f'"{SHORT_PASS}"'):
        assert not [t for t in texts if secret in t], f"{secret} stored"
