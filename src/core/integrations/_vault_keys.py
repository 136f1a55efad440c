"""Unlocked vaults: the data keys this server process holds, by vault path.

``/vault/unlock`` puts a vault's data key here, ``/vault/lock`` takes it out;
the vault and content actions ask ``open_vault`` for the key (held, or
unwrapped from a passphrase sent with the request for that run only). Every
value read from a vault is registered with the redactor before anything else
happens with it. Thread-safe: one lock guards the registry.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, SecretStr

from controlplane.core import redact
from controlplane.core.actions import ProjectPath, project_path
from controlplane.core.errors import InvalidInput
from controlplane.core.integrations import _vault_crypto as crypto
from controlplane.core.integrations._atomic_files import write_atomic
from controlplane.core.integrations._safe_paths import written_path

DEFAULT_VAULT = ".controlplane/vault.json"

_lock = threading.Lock()
_unlocked: dict[str, bytes] = {}


class PassphraseRefused(InvalidInput):
    """422 before any run: the passphrase opens no key slot (the field is named for the form)."""

    code = "wrong_passphrase"

    def __init__(self, field: str, message: str) -> None:
        super().__init__({field: message}, message)


# a file the action writes: no link may carry it out of the project or into .git
WrittenPath = Annotated[ProjectPath, AfterValidator(written_path)]
# normalised, so that one vault has one lock key however its path is spelt
VaultPath = Annotated[WrittenPath, AfterValidator(os.path.normpath)]


class VaultParams(BaseModel):
    vault: VaultPath = Field(DEFAULT_VAULT, min_length=1, max_length=300,
                             description="the vault file, inside the project")


class KeyedParams(VaultParams):
    passphrase: SecretStr | None = Field(None, max_length=1024,
                                         description="the vault's passphrase if it is locked "
                                                     "(used for this run only)")


def failure(error: crypto.VaultError, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": {"code": error.code, "message": str(error)}, **extra}


def vault_file(root: Path, relative: str) -> Path:
    return project_path(root, relative, "vault")


def held(path: Path) -> bytes | None:
    """The data key of the vault at *path* if this process holds it unlocked."""
    with _lock:
        return _unlocked.get(str(path.resolve()))


def remember(path: Path, data_key: bytes) -> None:
    with _lock:
        _unlocked[str(path.resolve())] = data_key


def forget(path: Path) -> bool:
    """Lock the vault at *path*; True if it was unlocked."""
    with _lock:
        return _unlocked.pop(str(path.resolve()), None) is not None


def load(path: Path) -> dict[str, Any]:
    """The vault document at *path*; VaultError ``vault_missing`` or ``vault_corrupt``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise crypto.VaultError(f"no vault at {path.name}: create one first",
                                "vault_missing") from None
    return crypto.parse_vault(raw)


def save(path: Path, doc: dict[str, Any], root: Path | None = None) -> None:
    """Write the vault document (0600), walking from the project *root* (``_safe_paths``)."""
    write_atomic(path, crypto.dump(doc), mode=0o600, root=root)


def secret(value: SecretStr | None) -> str | None:
    """The plain value of a secret field, registered with the redactor first."""
    if value is None:
        return None
    plain = value.get_secret_value()
    redact.register_secret(plain)
    return plain


def reveal(doc: dict[str, Any], data_key: bytes) -> dict[str, str]:
    """The vault's entries, each value registered with the redactor before it is returned."""
    entries = crypto.read_entries(doc, data_key)
    redact.redactor.register_many(entries.values())
    return entries


@dataclass
class OpenVault:
    """A vault opened for one run: its file, document, data key and (redacted) entries."""

    path: Path
    doc: dict[str, Any]
    data_key: bytes
    entries: dict[str, str]
    root: Path | None = None  # the project: writes are walked from it

    def store(self, entries: dict[str, str]) -> None:
        """Write *entries* into the vault file (atomically) and keep them."""
        redact.redactor.register_many(entries.values())
        self.doc = crypto.write_entries(self.doc, self.data_key, entries)
        save(self.path, self.doc, self.root)
        self.entries = entries


def open_vault(root: Path, relative: str, passphrase: SecretStr | None) -> OpenVault:
    """The vault unlocked: the held key, else the one *passphrase* unwraps (this run only).

    VaultError ``vault_locked`` if neither is there; a held key that no longer opens
    the file (the vault was replaced) is dropped.
    """
    path = vault_file(root, relative)
    doc = load(path)
    key = held(path)
    if key is not None:
        try:
            return OpenVault(path, doc, key, reveal(doc, key), root)
        except crypto.IntegrityError:
            forget(path)
            key = None
    plain = secret(passphrase)
    if plain is None:
        raise crypto.VaultError("the vault is locked: unlock it first (or send its passphrase)",
                                "vault_locked")
    key = crypto.open_slots(doc, plain)
    return OpenVault(path, doc, key, reveal(doc, key), root)


def check_passphrase(field: str = "passphrase") -> Callable[[Path, BaseModel], None]:
    """A precheck: 422 ``wrong_passphrase`` naming *field* before any run, vault untouched.

    Only a passphrase that was sent is checked; a missing or unreadable vault is left
    for the run to report.
    """

    def check(root: Path, params: BaseModel) -> None:
        plain = secret(getattr(params, field, None))
        if plain is None:
            return
        try:
            crypto.open_slots(load(vault_file(root, getattr(params, "vault", DEFAULT_VAULT))),
                              plain)
        except crypto.WrongPassphrase as exc:
            raise PassphraseRefused(field, str(exc)) from None
        except crypto.VaultError:
            return

    return check
