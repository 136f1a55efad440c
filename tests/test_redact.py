"""Redaction: registered values in all their forms, token shapes, structures."""

from __future__ import annotations

import base64
import json
import threading
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from controlplane.core import redact
from controlplane.core.redact import Redactor

GITHUB_TOKEN = "ghp_" + "Zx9" * 12
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)


@pytest.fixture
def r() -> Redactor:
    return Redactor()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"remote: {GITHUB_TOKEN} rest", "remote: *** rest"),
        ("gho_" + "a" * 36, "***"),
        ("ghu_" + "B" * 40 + " x", "*** x"),
        ("ghs_" + "1" * 36, "***"),
        ("ghr_" + "c" * 36, "***"),
        ("github_pat_11ABCDEFG0abcdefghij_KLMNOPQRSTUVWXYZabcdefgh done", "*** done"),
        ("aws AKIAIOSFODNN7EXAMPLE key", "aws *** key"),
        ("slack xoxb-123456789012-abcdefABCDEF!", "slack ***!"),
        ("xoxp-1234-5678-90ab", "***"),
        (f"key:\n{PEM}\nafter", "key:\n***\nafter"),
        ("-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA", "***"),
        ("cfg -----BEGIN PRIVATE KEY-----", "cfg ***"),
        ("db password=hunter22 host=x", "db password=*** host=x"),
        ("id-token: write", "id-token: write"),
        ("def login(token: str) -> None:", "def login(token: str) -> None:"),
        ("MYSQL_ALLOW_EMPTY_PASSWORD=yes", "MYSQL_ALLOW_EMPTY_PASSWORD=yes"),
        ("password: hunter22", "password: ***"),
        ("passwd=abc&user=bob", "passwd=***&user=bob"),
        ("https://x/?token=abc123&page=2", "https://x/?token=***&page=2"),
        ("SECRET=top", "SECRET=***"),
        ("export GITHUB_TOKEN='a b c'", "export GITHUB_TOKEN='***'"),
        ('{"password": "p4ss word"}', '{"password": "***"}'),
        ("Authorization: Bearer eyJhbGciOi.J9.x", "Authorization: Bearer ***"),
        ("authorization: bearer abc", "authorization: bearer ***"),
        ("-H 'Authorization: Basic dXNlcjpwYXNz'", "-H 'Authorization: Basic ***'"),
    ],
)
def test_token_shapes_are_redacted(r: Redactor, text: str, expected: str) -> None:
    assert r.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Deploying release web-frontend to namespace production (revision 42)",
        "ghp_tooshort",
        "AKIA-not-a-key",
        "the password is not given here",
        "-----BEGIN CERTIFICATE-----",
        "",
    ],
)
def test_ordinary_text_is_left_alone(r: Redactor, text: str) -> None:
    r.register("some-registered-value")
    assert r.redact(text) == text


def test_a_line_without_secrets_comes_back_unchanged_and_uncopied(r: Redactor) -> None:
    r.register_many([f"secret-value-{i:03d}" for i in range(50)])
    line = "Apply complete! Resources: 3 added, 0 changed, 0 destroyed."
    assert r.redact(line) is line


def test_registered_value_is_redacted(r: Redactor) -> None:
    r.register("correct-horse-battery")
    assert r.redact("pw correct-horse-battery, again correct-horse-battery") == "pw ***, again ***"


@pytest.mark.parametrize("before", [b"", b"x", b"xy", b"0123456789abc"])
@pytest.mark.parametrize("after", [b"", b"z", b"zw", b"tail-bytes"])
def test_registered_value_is_redacted_inside_longer_base64(
    r: Redactor, before: bytes, after: bytes
) -> None:
    secret = "vault-value-Kq8#z"
    r.register(secret)
    assert_base64_masked(r, before, secret.encode(), after)


def assert_base64_masked(r: Redactor, before: bytes, secret: bytes, after: bytes) -> None:
    """Every base64 char computed only from the secret's bytes is hidden."""
    blob = base64.b64encode(before + secret + after).decode()
    redacted = r.redact(blob)
    head, star, tail = redacted.partition("***")
    assert star, redacted
    assert blob.startswith(head) and blob.endswith(tail)
    first_secret_only = (len(before) * 8 + 5) // 6
    end_secret_only = (len(before) + len(secret)) * 8 // 6
    assert len(head) <= first_secret_only
    assert len(blob) - len(tail) >= end_secret_only


def test_registered_value_is_redacted_in_url_and_json_forms(r: Redactor) -> None:
    secret = 'p@ss w/rd&x=1+"é\\'
    r.register(secret)
    assert r.redact(f"https://u:{quote(secret, safe='')}@example.com/") == (
        "https://u:***@example.com/"
    )
    assert r.redact(f"q={quote_plus(secret)}&a=1") == "q=***&a=1"
    assert r.redact(json.dumps({"value": secret})) == '{"value": "***"}'
    assert r.redact(json.dumps({"value": secret}, ensure_ascii=False)) == '{"value": "***"}'


def test_multi_line_secret_is_redacted_line_by_line(r: Redactor) -> None:
    r.register("first-line-abc\n  second-line-def\nxyz\n")
    assert r.redact("first-line-abc") == "***"
    assert r.redact("> second-line-def <") == "> *** <"
    assert r.redact("xyz") == "xyz"  # too short to register on its own
    assert r.redact("a first-line-abc\n  second-line-def\nxyz\n b") == "a *** b"


def test_overlapping_and_adjacent_matches_are_merged(r: Redactor) -> None:
    r.register("abcdefgh")
    r.register("efghijkl")
    assert r.redact("xx abcdefghijkl yy") == "xx *** yy"
    assert r.redact("xx efghijklabcdefgh yy") == "xx *** yy"
    assert r.redact("abcdefghefghijkl") == "***"
    r.register("verysecretvalue")
    assert r.redact("password=verysecretvalue rest") == "password=*** rest"
    assert r.redact("x-verysecretvalue-token: abc123xyz") == "x-***-token: ***"
    assert r.redact(f"{GITHUB_TOKEN}abcdefgh") == "***"


def test_short_values_are_not_registered(r: Redactor) -> None:
    r.register("abc12")
    r.register("   ab   ")
    r.register("")
    assert r.redact("abc12 ab") == "abc12 ab"


def test_surrounding_whitespace_of_a_value_does_not_matter(r: Redactor) -> None:
    r.register("token-from-file\n")
    assert r.redact("got token-from-file.") == "got ***."
    encoded = base64.b64encode(b"token-from-file").decode()
    assert r.redact(encoded) == "***"


def test_register_env_takes_values_of_secret_looking_names(r: Redactor) -> None:
    environ = {
        "GITHUB_TOKEN": "tok-123456",
        "DB_PASSWORD": "pw-123456",
        "db_passwd": "lower-123456",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI",
        "AWS_ACCESS_KEY_ID": "AKID-123456",
        "MY_API_KEY": "apikey-123",
        "SHORT_TOKEN": "abc",
        "HOME": "/home/user-xyz",
        "KEYBOARD": "us-layout",
        "KEY_FILE": "/etc/key-file",
    }
    names = r.register_env(environ)
    assert names == sorted(
        ["GITHUB_TOKEN", "DB_PASSWORD", "db_passwd", "AWS_SECRET_ACCESS_KEY",
         "AWS_ACCESS_KEY_ID", "MY_API_KEY", "SHORT_TOKEN"]
    )  # fmt: skip
    text = " ".join(environ.values())
    assert r.redact(text) == "*** *** *** *** *** *** abc /home/user-xyz us-layout /etc/key-file"


def test_redact_obj_walks_nested_structures(r: Redactor) -> None:
    r.register("vault-value-1")
    data = {
        "summary": "deployed with vault-value-1",
        "steps": [("login", f"token {GITHUB_TOKEN}"), {"n": 3, "ok": True}],
        "auth": {"password": 1234, "api_key": ["a", "b"], "Client_Secret": "x", "token": None},
        7: "vault-value-1",
    }
    assert r.redact_obj(data) == {
        "summary": "deployed with ***",
        "steps": [("login", "token ***"), {"n": 3, "ok": True}],
        "auth": {"password": "***", "api_key": "***", "Client_Secret": "***", "token": None},
        7: "***",
    }
    assert data["summary"] == "deployed with vault-value-1"  # the input is not changed


def test_clear_forgets_registered_values(r: Redactor) -> None:
    r.register("forget-me-please")
    r.clear()
    assert r.redact("forget-me-please") == "forget-me-please"
    assert r.redact(GITHUB_TOKEN) == "***"


def test_module_functions_use_the_process_wide_redactor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redact, "redactor", Redactor())
    redact.register_secret("module-level-secret")
    assert redact.register_env({"X_TOKEN": "env-level-secret"}) == ["X_TOKEN"]
    assert redact.redact("module-level-secret env-level-secret") == "*** ***"
    assert redact.redact_obj(["module-level-secret"]) == ["***"]


def test_registering_while_redacting_from_other_threads(r: Redactor) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def redact_lines() -> None:
        try:
            while not stop.is_set():
                r.redact("value-0007 and value-0042 in a line")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    readers = [threading.Thread(target=redact_lines) for _ in range(3)]
    for thread in readers:
        thread.start()
    for i in range(50):
        r.register(f"value-{i:04d}")
    stop.set()
    for thread in readers:
        thread.join()
    assert not errors
    assert r.redact("value-0007 and value-0042 in a line") == "*** and *** in a line"


secrets = st.text(min_size=6).filter(lambda s: "*" not in s and len(s.strip()) >= 6)


@given(prefix=st.text(), secret=secrets, suffix=st.text())
def test_a_registered_secret_never_survives(prefix: str, secret: str, suffix: str) -> None:
    r = Redactor()
    r.register(secret)
    assert secret not in r.redact(prefix + secret + suffix)


@given(
    before=st.binary(max_size=20),
    secret=st.text(min_size=6, max_size=40).filter(lambda s: len(s.strip()) == len(s)),
    after=st.binary(max_size=20),
)
def test_a_registered_secret_never_survives_in_base64(
    before: bytes, secret: str, after: bytes
) -> None:
    assume("*" not in secret)
    r = Redactor()
    r.register(secret)
    assert_base64_masked(r, before, secret.encode(), after)
