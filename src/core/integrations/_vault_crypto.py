"""The vault's cryptography: key derivation, key slots, authenticated encryption.

- A random 256-bit **data key** encrypts everything with AES-256-GCM (a fresh
  96-bit nonce per message, and associated data binding each ciphertext to
  what it is: the vault's entries, a content file's header, an export).
- Each **key slot** holds the data key wrapped by a key derived from one
  passphrase: Argon2id (RFC 9106's second recommended setting) when this
  ``cryptography`` has it, else scrypt (n=2**15, r=8, p=1); a salt of its own
  per slot. The KDF and its parameters are stored in the slot, so a vault made
  with either opens anywhere; absurd parameters (a memory bomb) are refused.
- A wrong passphrase fails the wrap's authentication tag: ``WrongPassphrase``;
  any altered ciphertext fails its tag: ``IntegrityError``.

Content files: ``SCPENC`` | version (1 byte) | key id (8 bytes) | nonce (12 bytes) |
ciphertext+tag, the 27-byte header being the associated data. Pure functions, thread-safe.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

try:  # cryptography >= 44
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
except ImportError:  # pragma: no cover - older cryptography
    Argon2id = None  # type: ignore[assignment,misc]

VAULT_FORMAT, EXPORT_FORMAT, VERSION = "scp-vault", "scp-vault-export", 1
MAGIC = b"SCPENC"
HEADER_SIZE = len(MAGIC) + 1 + 8 + 12
ARGON2 = {"name": "argon2id", "memory_kib": 65536, "iterations": 3, "lanes": 4}
SCRYPT = {"name": "scrypt", "n": 2 ** 15, "r": 8, "p": 1}
# Bounds on stored KDF parameters: a crafted vault file must not exhaust the server.
LIMITS = {"memory_kib": 1 << 20, "iterations": 10, "lanes": 16, "n": 1 << 20, "r": 16, "p": 16}
KDF_FIELDS = {"argon2id": ("memory_kib", "iterations", "lanes"), "scrypt": ("n", "r", "p")}
# Each slot may cost seconds and up to 1 GiB of KDF: a vault file with more slots is refused
# before any key derivation runs, and no slot is added beyond it.
MAX_SLOTS = 16


class VaultError(Exception):
    """A vault operation failed; ``code`` names why (the run's error code)."""

    code = "vault_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code or self.code


class WrongPassphrase(VaultError):
    code = "wrong_passphrase"


class IntegrityError(VaultError):
    code = "integrity_error"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError:
        raise VaultError("not base64", "vault_corrupt") from None


def new_kdf() -> dict[str, Any]:
    """Fresh KDF parameters with a new random salt: Argon2id if available, else scrypt."""
    params = dict(ARGON2 if Argon2id is not None else SCRYPT)
    params["salt"] = b64(os.urandom(16))
    return params


def derive(passphrase: str, kdf: dict[str, Any]) -> bytes:
    """The 256-bit key *kdf* derives from *passphrase*; VaultError for unknown or absurd KDFs."""
    try:
        numbers = {k: int(v) for k, v in kdf.items() if k in LIMITS}
        salt = unb64(kdf["salt"])
    except (KeyError, TypeError, ValueError):
        raise VaultError("unreadable key derivation parameters", "vault_corrupt") from None
    if any(not 1 <= value <= LIMITS[key] for key, value in numbers.items()):
        raise VaultError("key derivation parameters out of bounds", "vault_corrupt")
    secret = passphrase.encode("utf-8")
    wanted = KDF_FIELDS.get(str(kdf.get("name")))
    if wanted is None or (kdf["name"] == "argon2id" and Argon2id is None):
        raise VaultError(f"key derivation {kdf.get('name')!r} is not available",
                         "vault_unsupported")
    if set(numbers) != set(wanted):
        raise VaultError("incomplete key derivation parameters", "vault_corrupt")
    try:
        if kdf["name"] == "argon2id":
            return Argon2id(salt=salt, length=32, iterations=numbers["iterations"],
                            lanes=numbers["lanes"], memory_cost=numbers["memory_kib"]
                            ).derive(secret)
        return Scrypt(salt=salt, length=32, n=numbers["n"], r=numbers["r"],
                      p=numbers["p"]).derive(secret)
    except ValueError as exc:  # e.g. n not a power of two
        raise VaultError(f"bad key derivation parameters: {exc}", "vault_corrupt") from None


def seal(key: bytes, plaintext: bytes, aad: bytes) -> dict[str, str]:
    """AES-256-GCM with a fresh nonce; ``{"nonce", "ciphertext"}`` in base64."""
    nonce = os.urandom(12)
    return {"nonce": b64(nonce), "ciphertext": b64(AESGCM(key).encrypt(nonce, plaintext, aad))}


def unseal(key: bytes, sealed: Any, aad: bytes) -> bytes:
    """The plaintext of ``seal``; IntegrityError if anything was altered (or the key is wrong)."""
    try:
        nonce, ciphertext = unb64(sealed["nonce"]), unb64(sealed["ciphertext"])
    except (KeyError, TypeError):
        raise VaultError("sealed data is incomplete", "vault_corrupt") from None
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except (InvalidTag, ValueError):
        raise IntegrityError("authentication failed: the data was altered") from None


def make_slot(data_key: bytes, passphrase: str, label: str) -> dict[str, Any]:
    """A key slot: *data_key* wrapped by the key *passphrase* derives (new salt)."""
    slot_id = secrets.token_hex(8)
    kdf = new_kdf()
    wrapped = seal(derive(passphrase, kdf), data_key, f"scp-vault-slot:{slot_id}".encode())
    return {"id": slot_id, "label": label, "kdf": kdf, "wrapped": wrapped}


def _entries_aad(doc: dict[str, Any]) -> bytes:
    return f"scp-vault-entries:{doc['vault_id']}".encode()


def new_vault(passphrase: str, label: str = "primary") -> tuple[dict[str, Any], bytes]:
    """A vault document with one slot and no entries, and its data key."""
    data_key = AESGCM.generate_key(bit_length=256)
    doc: dict[str, Any] = {"format": VAULT_FORMAT, "version": VERSION,
                           "vault_id": secrets.token_hex(16),
                           "slots": [make_slot(data_key, passphrase, label)]}
    return write_entries(doc, data_key, {}), data_key


def parse_vault(raw: bytes) -> dict[str, Any]:
    """The vault document in *raw*; VaultError ``vault_corrupt`` if it is not one."""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise VaultError("the vault file is not JSON", "vault_corrupt") from None
    if not isinstance(doc, dict) or doc.get("format") != VAULT_FORMAT \
            or not isinstance(doc.get("slots"), list) or "vault_id" not in doc:
        raise VaultError("not a vault file", "vault_corrupt")
    if doc.get("version") != VERSION:
        raise VaultError(f"vault version {doc.get('version')!r} is not supported",
                         "vault_unsupported")
    if len(doc["slots"]) > MAX_SLOTS:
        raise VaultError(f"the vault file has {len(doc['slots'])} key slots, more than "
                         f"{MAX_SLOTS}: restore it from a backup", "vault_corrupt")
    return doc


def dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"


def open_slots(doc: dict[str, Any], passphrase: str) -> bytes:
    """The data key, unwrapped by whichever slot *passphrase* opens; WrongPassphrase if none."""
    if not isinstance(doc.get("slots"), list) or len(doc["slots"]) > MAX_SLOTS:
        raise VaultError(f"a vault has at most {MAX_SLOTS} key slots", "vault_corrupt")
    for slot in doc["slots"]:
        try:
            kek = derive(passphrase, slot["kdf"])
            return unseal(kek, slot["wrapped"], f"scp-vault-slot:{slot['id']}".encode())
        except IntegrityError:
            continue
        except (KeyError, TypeError):
            raise VaultError("a key slot is incomplete", "vault_corrupt") from None
    raise WrongPassphrase("wrong passphrase: no key slot of the vault opens with it")


def read_entries(doc: dict[str, Any], data_key: bytes) -> dict[str, str]:
    """The vault's name → value entries."""
    entries = json.loads(unseal(data_key, doc.get("entries"), _entries_aad(doc)))
    if not isinstance(entries, dict):
        raise VaultError("the vault's entries are not a mapping", "vault_corrupt")
    return {str(k): str(v) for k, v in entries.items()}


def write_entries(doc: dict[str, Any], data_key: bytes, entries: dict[str, str]) -> dict[str, Any]:
    """A copy of *doc* holding *entries*, encrypted under a fresh nonce."""
    plaintext = json.dumps(entries, sort_keys=True).encode()
    return {**doc, "entries": seal(data_key, plaintext, _entries_aad(doc))}


def key_id(data_key: bytes) -> bytes:
    """8 bytes naming a data key without revealing it (an HMAC of a constant)."""
    return hmac.new(data_key, b"scp-vault key id", hashlib.sha256).digest()[:8]


def encrypt_blob(data_key: bytes, plaintext: bytes) -> bytes:
    """A content file: header (magic, version, key id, nonce) + AES-GCM ciphertext."""
    header = MAGIC + bytes([VERSION]) + key_id(data_key) + os.urandom(12)
    return header + AESGCM(data_key).encrypt(header[-12:], plaintext, header)


def decrypt_blob(data_key: bytes, blob: bytes) -> bytes:
    """The plaintext of ``encrypt_blob``; IntegrityError if the file was altered."""
    header = blob[:HEADER_SIZE]
    if len(blob) < HEADER_SIZE + 16 or not header.startswith(MAGIC):
        raise VaultError("not a file encrypted by the vault", "not_encrypted")
    if header[len(MAGIC)] != VERSION:
        raise VaultError(f"encryption version {header[len(MAGIC)]} is not supported",
                         "vault_unsupported")
    if not hmac.compare_digest(header[len(MAGIC) + 1:len(MAGIC) + 9], key_id(data_key)):
        raise VaultError("the file was encrypted with another vault's key", "wrong_key")
    try:
        return AESGCM(data_key).decrypt(header[-12:], blob[HEADER_SIZE:], header)
    except InvalidTag:
        raise IntegrityError("authentication failed: the file was altered") from None


def export_entries(entries: dict[str, str], passphrase: str) -> bytes:
    """An export file: *entries* encrypted with a key derived from *passphrase* (new salt)."""
    kdf = new_kdf()
    plaintext = json.dumps(entries, sort_keys=True).encode()
    sealed = seal(derive(passphrase, kdf), plaintext, EXPORT_FORMAT.encode())
    return dump({"format": EXPORT_FORMAT, "version": VERSION, "kdf": kdf, **sealed})


def import_entries(raw: bytes, passphrase: str) -> dict[str, str]:
    """The entries of an export file; WrongPassphrase or VaultError if it cannot be read."""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise VaultError("the export file is not JSON", "not_an_export") from None
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT or "kdf" not in doc:
        raise VaultError("not a vault export file", "not_an_export")
    if doc.get("version") != VERSION:
        raise VaultError(f"export version {doc.get('version')!r} is not supported",
                         "vault_unsupported")
    try:
        plaintext = unseal(derive(passphrase, doc["kdf"]), doc, EXPORT_FORMAT.encode())
    except IntegrityError:
        raise WrongPassphrase("wrong passphrase for this export (or the file was altered)") \
            from None
    entries = json.loads(plaintext)
    return {str(k): str(v) for k, v in entries.items()}


ARMOR_BEGIN, ARMOR_END = "-----BEGIN SCP ENCRYPTED FILE-----", "-----END SCP ENCRYPTED FILE-----"


def armor(blob: bytes) -> bytes:
    """*blob* as text (base64 lines between BEGIN/END markers), for files kept in git."""
    text = b64(blob)
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return "\n".join([ARMOR_BEGIN, *lines, ARMOR_END, ""]).encode("ascii")


def unarmor(data: bytes) -> bytes:
    """The blob inside an armored file, or *data* itself if it is not armored."""
    if not data.startswith(ARMOR_BEGIN.encode()):
        return data
    lines = data.decode("ascii", "replace").strip().splitlines()
    if lines[-1].strip() != ARMOR_END:
        raise IntegrityError("the armored file is truncated")
    return unb64("".join(line.strip() for line in lines[1:-1]))
