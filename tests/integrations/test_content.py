"""Content: a user encrypts a project file with the vault's key and gets it back, byte for byte."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from controlplane.core.ledger import Ledger
from tests.conftest import bearer_client

PASSPHRASE = "content test passphrase"


@pytest.fixture
def client(make_app, repo: Path):
    client = bearer_client(make_app())
    assert client.post("/vault/create", json={"passphrase": PASSPHRASE}).json["status"] == "ok"
    return client


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("armor", [False, True])
def test_encrypt_then_decrypt_gives_the_same_bytes(client, repo: Path, armor: bool) -> None:
    original = os.urandom(70_000) + b"\x00tail"
    (repo / "data.bin").write_bytes(original)
    encrypted = client.post("/content/encrypt", json={"input": "data.bin", "armor": armor}).json
    assert encrypted["status"] == "ok" and encrypted["output"] == "data.bin.enc"
    blob = (repo / "data.bin.enc").read_bytes()
    assert blob.startswith(b"-----BEGIN SCP ENCRYPTED FILE-----" if armor else b"SCPENC\x01")
    assert original[:64] not in blob
    decrypted = client.post("/content/decrypt",
                            json={"input": "data.bin.enc", "output": "copy.bin"}).json
    assert decrypted["status"] == "ok" and decrypted["bytes_out"] == len(original)
    assert (repo / "copy.bin").read_bytes() == original


def test_a_locked_vault_writes_nothing(client, repo: Path) -> None:
    (repo / "notes.txt").write_text("private notes\n")
    client.post("/vault/lock", json={})
    answer = client.post("/content/encrypt", json={"input": "notes.txt"}).json
    assert answer["status"] == "failed" and answer["error"]["code"] == "vault_locked"
    assert not (repo / "notes.txt.enc").exists()
    once = client.post("/content/encrypt", json={"input": "notes.txt",
                                                 "passphrase": PASSPHRASE}).json
    assert once["status"] == "ok"


def test_a_tampered_file_fails_integrity_and_leaves_the_output_alone(client, repo: Path) -> None:
    (repo / "notes.txt").write_text("private notes\n")
    client.post("/content/encrypt", json={"input": "notes.txt"})
    blob = bytearray((repo / "notes.txt.enc").read_bytes())
    blob[-5] ^= 0x40
    (repo / "notes.txt.enc").write_bytes(bytes(blob))
    (repo / "notes.txt").write_text("the current version\n")
    before = digest(repo / "notes.txt")
    answer = client.post("/content/decrypt", json={"input": "notes.txt.enc",
                                                   "overwrite": True}).json
    assert answer["status"] == "failed" and answer["error"]["code"] == "integrity_error"
    assert digest(repo / "notes.txt") == before
    fresh = client.post("/content/decrypt", json={"input": "notes.txt.enc",
                                                  "output": "restored.txt"}).json
    assert fresh["error"]["code"] == "integrity_error" and not (repo / "restored.txt").exists()


def test_an_existing_output_is_kept_without_overwrite(client, repo: Path) -> None:
    (repo / "a.txt").write_text("a\n")
    (repo / "a.txt.enc").write_text("already here\n")
    runs = len(Ledger.open(repo).recent(limit=50))
    answer = client.post("/content/encrypt", json={"input": "a.txt"})
    assert answer.status_code == 409 and (repo / "a.txt.enc").read_text() == "already here\n"
    assert len(Ledger.open(repo).recent(limit=50)) == runs
    replaced = client.post("/content/encrypt", json={"input": "a.txt", "overwrite": True}).json
    assert replaced["status"] == "ok"


def test_another_vaults_key_is_named_as_such(client, repo: Path) -> None:
    (repo / "a.txt").write_text("a\n")
    client.post("/content/encrypt", json={"input": "a.txt"})
    other = ".controlplane/other.json"
    client.post("/vault/create", json={"vault": other, "passphrase": "other passphrase"})
    answer = client.post("/content/decrypt", json={"input": "a.txt.enc", "output": "b.txt",
                                                   "vault": other}).json
    assert answer["error"]["code"] == "wrong_key" and not (repo / "b.txt").exists()


def test_paths_outside_the_project_and_unnamed_outputs_are_refused(client, repo: Path) -> None:
    outside = client.post("/content/encrypt", json={"input": "../../etc/hostname"})
    assert outside.status_code == 422 and "input" in outside.json["fields"]
    unnamed = client.post("/content/decrypt", json={"input": "secret.bin"})
    assert unnamed.status_code == 422 and "output" in unnamed.json["fields"]
