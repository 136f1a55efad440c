"""A vault file with a crafted number of key slots cannot make the server derive keys for
minutes: more than MAX_SLOTS is refused before any key derivation runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from controlplane.core.integrations import _vault_crypto as crypto
from tests.conftest import bearer_client

VAULT = ".controlplane/vault.json"
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def client(make_app):
    return bearer_client(make_app())


def heavy_slot(index: int) -> dict:
    """A slot at the KDF bounds (1 GiB, 10 passes: seconds each) that no passphrase opens."""
    kdf = {"name": "argon2id", "memory_kib": crypto.LIMITS["memory_kib"], "iterations": 10,
           "lanes": 4, "salt": crypto.b64(bytes(16))}
    return {"id": f"{index:016x}", "label": f"s{index}", "kdf": kdf,
            "wrapped": {"nonce": crypto.b64(bytes(12)), "ciphertext": crypto.b64(bytes(48))}}


def test_a_vault_with_too_many_slots_is_refused_before_any_kdf(client, repo: Path) -> None:
    doc, _ = crypto.new_vault(PASSPHRASE)
    doc["slots"] = [heavy_slot(i) for i in range(crypto.MAX_SLOTS + 1)]
    (repo / VAULT).parent.mkdir(parents=True)
    (repo / VAULT).write_text(json.dumps(doc))
    started = time.monotonic()
    answer = client.post("/vault/unlock", json={"passphrase": "wrong passphrase"})
    elapsed = time.monotonic() - started
    assert answer.json["status"] == "failed", answer.json
    assert answer.json["error"]["code"] == "vault_corrupt"
    assert str(crypto.MAX_SLOTS) in answer.json["error"]["message"]
    assert elapsed < 2, elapsed  # one heavy slot alone takes seconds


def test_no_slot_is_added_beyond_the_cap(client, repo: Path) -> None:
    assert client.post("/vault/create", json={"passphrase": PASSPHRASE}).json["status"] == "ok"
    doc = json.loads((repo / VAULT).read_text())
    doc["slots"] += [{**doc["slots"][0], "id": f"{i:016x}", "label": f"copy{i}"}
                     for i in range(crypto.MAX_SLOTS - 1)]
    (repo / VAULT).write_text(json.dumps(doc))
    answer = client.post("/vault/add-keys", json={"new_passphrase": "yet another one",
                                                  "label": "one-too-many"}).json
    assert answer["status"] == "failed" and answer["error"]["code"] == "too_many_slots", answer
    assert len(json.loads((repo / VAULT).read_text())["slots"]) == crypto.MAX_SLOTS
