"""Vault: a user creates, unlocks, fills, shares and locks an encrypted vault; no value leaks."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from pathlib import Path

import pytest

from controlplane.core.integrations import _vault_crypto as crypto
from controlplane.core.ledger import Ledger
from tests.conftest import bearer_client

VAULT = ".controlplane/vault.json"
PASSPHRASE = "first passphrase for the test vault"
SECOND = "second passphrase, another key slot"
VALUE = "s3cret-VALUE-never-shown-4711"
EXPORT_PASS = "passphrase of the export file"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def client(make_app):
    return bearer_client(make_app())


@pytest.fixture
def created(client, repo: Path) -> Path:
    answer = client.post("/vault/create", json={"passphrase": PASSPHRASE})
    assert answer.status_code == 200 and answer.json["status"] == "ok", answer.json
    return repo / VAULT


def test_create_writes_an_encrypted_vault_and_never_replaces_it(client, created: Path,
                                                                  repo: Path) -> None:
    doc = json.loads(created.read_text())
    assert doc["format"] == "scp-vault" and len(doc["slots"]) == 1
    assert doc["slots"][0]["kdf"]["name"] in ("argon2id", "scrypt")
    assert created.stat().st_mode & 0o777 == 0o600
    before = digest(created)
    again = client.post("/vault/create", json={"passphrase": "another passphrase"}).json
    assert again["status"] == "failed" and again["error"]["code"] == "vault_exists"
    assert digest(created) == before
    stored = Ledger.open(repo).get(again["run_id"])
    assert "passphrase" not in stored["params"] and stored["params"]["label"] == "primary"


def test_wrong_passphrase_is_a_422_and_the_vault_is_untouched(client, created: Path,
                                                               repo: Path) -> None:
    client.post("/vault/lock", json={})
    runs_before = len(Ledger.open(repo).recent(limit=100))
    before = digest(created)
    answer = client.post("/vault/unlock", json={"passphrase": "not the passphrase"})
    assert answer.status_code == 422
    assert answer.json["error"] == "wrong_passphrase" and "passphrase" in answer.json["fields"]
    assert digest(created) == before
    assert len(Ledger.open(repo).recent(limit=100)) == runs_before  # refused: no run
    still = client.post("/vault/register", json={"name": "X_TOKEN", "value": VALUE}).json
    assert still["status"] == "failed" and still["error"]["code"] == "vault_locked"
    assert digest(created) == before


def test_register_lock_unlock_and_a_second_key_slot(client, created: Path) -> None:
    registered = client.post("/vault/register", json={"name": "API_TOKEN", "value": VALUE}).json
    assert registered["status"] == "ok" and registered["entries"] == 1
    dup = client.post("/vault/register", json={"name": "API_TOKEN", "value": VALUE}).json
    assert dup["error"]["code"] == "entry_exists"
    slots = client.post("/vault/add-keys", json={"new_passphrase": SECOND, "label": "ops"}).json
    assert slots["status"] == "ok" and slots["labels"] == ["primary", "ops"]
    assert client.post("/vault/lock", json={}).json["was_unlocked"] is True
    locked = client.post("/vault/add-keys", json={"new_passphrase": SECOND, "label": "x"}).json
    assert locked["error"]["code"] == "vault_locked"
    for passphrase in (SECOND, PASSPHRASE):
        opened = client.post("/vault/unlock", json={"passphrase": passphrase}).json
        assert opened["status"] == "ok" and opened["names"] == ["API_TOKEN"]
        client.post("/vault/lock", json={})


def test_a_passphrase_sent_with_a_request_opens_the_vault_for_that_run_only(
        client, created: Path) -> None:
    client.post("/vault/lock", json={})
    once = client.post("/vault/register", json={"name": "ONE", "value": VALUE,
                                                "passphrase": PASSPHRASE}).json
    assert once["status"] == "ok"
    after = client.post("/vault/register", json={"name": "TWO", "value": VALUE}).json
    assert after["error"]["code"] == "vault_locked"
    wrong = client.post("/vault/register", json={"name": "TWO", "value": VALUE,
                                                 "passphrase": "wrong passphrase"})
    assert wrong.status_code == 422 and "passphrase" in wrong.json["fields"]


def test_export_then_import_into_another_vault(client, created: Path, repo: Path) -> None:
    client.post("/vault/register", json={"name": "DB_PASSWORD", "value": VALUE})
    exported = client.post("/vault/export", json={"path": "share/vault.export",
                                                  "export_passphrase": EXPORT_PASS}).json
    assert exported["status"] == "ok" and exported["entries"] == 1
    export_file = repo / "share/vault.export"
    assert VALUE.encode() not in export_file.read_bytes()
    stored = Ledger.open(repo).get(exported["run_id"])
    assert stored["artifacts"][0]["sha256"] == digest(export_file)

    other = ".controlplane/other.json"
    assert client.post("/vault/create", json={"vault": other, "passphrase": SECOND}).json["ok"]
    before = digest(repo / other)
    body = {"vault": other, "path": "share/vault.export", "confirm": True}
    refused = client.post("/vault/import", json={**body, "export_passphrase": "wrong one!"})
    assert refused.status_code == 422 and "export_passphrase" in refused.json["fields"]
    assert digest(repo / other) == before
    unconfirmed = client.post("/vault/import", json={**body, "export_passphrase": EXPORT_PASS,
                                                     "confirm": False})
    assert unconfirmed.status_code == 428
    imported = client.post("/vault/import", json={**body, "export_passphrase": EXPORT_PASS}).json
    assert imported["status"] == "ok" and imported["names"] == ["DB_PASSWORD"]
    client.post("/vault/lock", json={"vault": other})
    opened = client.post("/vault/unlock", json={"vault": other, "passphrase": SECOND}).json
    assert opened["names"] == ["DB_PASSWORD"]


def test_an_altered_vault_fails_integrity_and_is_not_rewritten(client, created: Path) -> None:
    client.post("/vault/register", json={"name": "API_TOKEN", "value": VALUE})
    client.post("/vault/lock", json={})
    doc = json.loads(created.read_text())
    blob = bytearray(crypto.unb64(doc["entries"]["ciphertext"]))
    blob[3] ^= 0x01
    doc["entries"]["ciphertext"] = crypto.b64(bytes(blob))
    created.write_text(json.dumps(doc))
    before = digest(created)
    answer = client.post("/vault/unlock", json={"passphrase": PASSPHRASE}).json
    assert answer["status"] == "failed" and answer["error"]["code"] == "integrity_error"
    assert digest(created) == before


def test_absurd_key_derivation_parameters_are_refused(client, created: Path) -> None:
    client.post("/vault/lock", json={})
    doc = json.loads(created.read_text())
    doc["slots"][0]["kdf"]["memory_kib"] = 1 << 30  # a terabyte: a memory bomb
    created.write_text(json.dumps(doc))
    answer = client.post("/vault/unlock", json={"passphrase": PASSPHRASE}).json
    assert answer["status"] == "failed" and answer["error"]["code"] == "vault_corrupt"


def test_scrypt_slots_open_too() -> None:
    doc, key = crypto.new_vault(PASSPHRASE)
    slot = {**doc["slots"][0], "kdf": {**crypto.SCRYPT, "salt": crypto.b64(b"s" * 16)}}
    slot["wrapped"] = crypto.seal(crypto.derive(PASSPHRASE, slot["kdf"]), key,
                                  f"scp-vault-slot:{slot['id']}".encode())
    assert crypto.open_slots({**doc, "slots": [slot]}, PASSPHRASE) == key
    with pytest.raises(crypto.WrongPassphrase):
        crypto.open_slots({**doc, "slots": [slot]}, "another passphrase")


def test_no_value_or_passphrase_appears_in_any_run_event_answer_or_log(
        make_app, repo: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app()
    client = bearer_client(app)
    events: list[dict] = []
    disconnect = app.extensions["controlplane"].bus.connect(events.append)
    answers = []
    try:
        for path, body in [
            ("/vault/create", {"passphrase": PASSPHRASE}),
            ("/vault/register", {"name": "API_TOKEN", "value": VALUE}),
            ("/vault/add-keys", {"new_passphrase": SECOND}),
            ("/vault/lock", {}),
            ("/vault/unlock", {"passphrase": PASSPHRASE}),
            ("/vault/unlock", {"passphrase": VALUE}),  # a value sent where it does not belong
            ("/vault/export", {"path": "v.export", "export_passphrase": EXPORT_PASS}),
            ("/vault/import", {"path": "v.export", "export_passphrase": EXPORT_PASS,
                               "confirm": True}),
        ]:
            answers.append(client.post(path, json=body).get_data(as_text=True))
    finally:
        disconnect()
    secrets = [VALUE, PASSPHRASE, SECOND, EXPORT_PASS]
    ledger_files = subprocess.run(["git", "ls-tree", "-r", "--name-only", "scp-ledger"],
                                  cwd=repo, capture_output=True, text=True, check=True).stdout
    assert "run.json" in ledger_files and "events.jsonl" in ledger_files
    for value in secrets:
        grep = subprocess.run(["git", "grep", "-F", "-e", value, "scp-ledger"], cwd=repo,
                              capture_output=True, text=True, check=False)
        assert grep.returncode == 1, grep.stdout  # 1: no match
        for directory in (repo / ".scp-ledger", repo / ".git" / "scp"):
            files = [p for p in directory.rglob("*") if p.is_file()]
            assert files, directory
            assert not [p for p in files if value.encode() in p.read_bytes()]
        assert not [e for e in events if value in json.dumps(e)]
        assert not [a for a in answers if value in a]
        assert value not in caplog.text
    assert len(events) > 20
