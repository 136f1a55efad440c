"""Vault: an encrypted secrets file in the project (Argon2id/scrypt key slots, AES-256-GCM).

``/vault/unlock`` keeps the data key in this server process (``_vault_keys``)
until ``/vault/lock``; every action that needs the key also takes the
passphrase for that run only. Values are registered with the redactor the
moment they are read or sent, are never echoed, and secret fields are never
stored in a run's params. A wrong passphrase is refused with 422 naming the
field before any run starts, the vault file untouched.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr

from controlplane.core import redact
from controlplane.core.actions import Action, ActionContext, Example, ProjectPath, project_path
from controlplane.core.actions import register as register_actions
from controlplane.core.integrations import _vault_crypto as crypto
from controlplane.core.integrations._atomic_files import create_exclusive, write_atomic
from controlplane.core.integrations._cli_tools import Name
from controlplane.core.integrations._vault_examples import (
    EXAMPLE_EXPORT,
    EXAMPLE_PASSPHRASE,
    EXAMPLE_VAULT,
    EXPORT_PASSPHRASE,
)
from controlplane.core.integrations._vault_keys import (
    DEFAULT_VAULT,
    KeyedParams,
    PassphraseRefused,
    VaultParams,
    WrittenPath,
    check_passphrase,
    failure,
    forget,
    load,
    open_vault,
    remember,
    reveal,
    save,
    secret,
    vault_file,
)

EntryName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$",
                                 description="the entry's name, e.g. API_TOKEN")]
NewPassphrase = Annotated[SecretStr, Field(min_length=8, max_length=1024)]


class CreateParams(VaultParams):
    passphrase: NewPassphrase = Field(description="passphrase of the new vault "
                                                  "(8 characters at least)")
    label: Name = Field("primary", description="a name for this passphrase's key slot")


class UnlockParams(VaultParams):
    passphrase: SecretStr = Field(min_length=1, max_length=1024,
                                  description="the vault's passphrase")


class RegisterParams(KeyedParams):
    name: EntryName
    value: SecretStr = Field(min_length=1, max_length=65536,
                             description="the value to keep encrypted (never shown again)")
    overwrite: bool = Field(False, description="replace an entry of the same name")


class AddKeysParams(KeyedParams):
    new_passphrase: NewPassphrase = Field(description="another passphrase that opens the vault")
    label: Name = Field("extra", description="a name for the new key slot")


class ExportParams(KeyedParams):
    path: WrittenPath = Field(".controlplane/vault-export.json", min_length=1, max_length=300,
                              description="the export file to write, inside the project")
    export_passphrase: NewPassphrase = Field(description="passphrase protecting the export")
    overwrite: bool = Field(False, description="replace an existing export file")


class ImportParams(KeyedParams):
    path: ProjectPath = Field(min_length=1, max_length=300,
                              description="an export file, inside the project")
    export_passphrase: SecretStr = Field(min_length=1, max_length=1024,
                                         description="the passphrase the export was made with")


def create_vault(ctx: ActionContext, params: CreateParams) -> dict[str, Any]:
    """A new vault with one key slot; left unlocked. Refuses to replace an existing vault."""
    path = vault_file(ctx.project_root, params.vault)
    exists = crypto.VaultError(f"{params.vault} exists: a vault is never replaced",
                               "vault_exists")
    if path.exists():
        return failure(exists, vault=params.vault)
    doc, data_key = crypto.new_vault(secret(params.passphrase) or "", params.label)
    if not create_exclusive(path, crypto.dump(doc), mode=0o600, root=ctx.project_root):
        return failure(exists, vault=params.vault)
    remember(path, data_key)
    kdf = doc["slots"][0]["kdf"]["name"]
    ctx.run.output(f"created {params.vault} (key derivation {kdf}, AES-256-GCM)")
    return {"ok": True, "vault": params.vault, "kdf": kdf, "slots": 1, "unlocked": True}


def lock_vault(ctx: ActionContext, params: VaultParams) -> dict[str, Any]:
    """Forget the data key this process holds; the vault file is not touched."""
    was = forget(vault_file(ctx.project_root, params.vault))
    return {"ok": True, "vault": params.vault, "locked": True, "was_unlocked": was}


def unlock_vault(ctx: ActionContext, params: UnlockParams) -> dict[str, Any]:
    """Unwrap the data key with the passphrase and hold it; the vault file is not touched."""
    path = vault_file(ctx.project_root, params.vault)
    try:
        doc = load(path)
        data_key = crypto.open_slots(doc, secret(params.passphrase) or "")
        entries = reveal(doc, data_key)
    except crypto.VaultError as exc:
        return failure(exc, vault=params.vault)
    remember(path, data_key)
    return {"ok": True, "vault": params.vault, "unlocked": True, "entries": len(entries),
            "names": sorted(entries)}


def register_entry(ctx: ActionContext, params: RegisterParams) -> dict[str, Any]:
    """Add (or with ``overwrite`` replace) one entry, encrypted into the vault file."""
    value = secret(params.value) or ""
    try:
        vault = open_vault(ctx.project_root, params.vault, params.passphrase)
        replaced = params.name in vault.entries
        if replaced and not params.overwrite:
            raise crypto.VaultError(f"{params.name} is in the vault: send \"overwrite\": true "
                                    "to replace it", "entry_exists")
        vault.store({**vault.entries, params.name: value})
    except crypto.VaultError as exc:
        return failure(exc, name=params.name)
    return {"ok": True, "vault": params.vault, "name": params.name, "replaced": replaced,
            "entries": len(vault.entries)}


def add_key_slot(ctx: ActionContext, params: AddKeysParams) -> dict[str, Any]:
    """Another key slot: the same data key wrapped by a new passphrase."""
    try:
        vault = open_vault(ctx.project_root, params.vault, params.passphrase)
        if len(vault.doc["slots"]) >= crypto.MAX_SLOTS:
            raise crypto.VaultError(f"the vault has {crypto.MAX_SLOTS} key slots, the most it "
                                    "may have", "too_many_slots")
        if any(slot.get("label") == params.label for slot in vault.doc["slots"]):
            raise crypto.VaultError(f"a key slot is already labelled {params.label!r}",
                                    "slot_exists")
        slot = crypto.make_slot(vault.data_key, secret(params.new_passphrase) or "",
                                params.label)
        vault.doc = {**vault.doc, "slots": [*vault.doc["slots"], slot]}
        save(vault.path, vault.doc, ctx.project_root)
    except crypto.VaultError as exc:
        return failure(exc, label=params.label)
    return {"ok": True, "vault": params.vault, "label": params.label,
            "slots": len(vault.doc["slots"]),
            "labels": [slot.get("label") for slot in vault.doc["slots"]]}


def export_vault(ctx: ActionContext, params: ExportParams) -> dict[str, Any]:
    """Write every entry, encrypted with the export passphrase, to an export file."""
    target = project_path(ctx.project_root, params.path)
    try:
        vault = open_vault(ctx.project_root, params.vault, params.passphrase)
        if target.exists() and not params.overwrite:
            raise crypto.VaultError(f"{params.path} exists: send \"overwrite\": true to "
                                    "replace it", "exists")
        data = crypto.export_entries(vault.entries, secret(params.export_passphrase) or "")
    except crypto.VaultError as exc:
        return failure(exc, path=params.path)
    write_atomic(target, data, mode=0o600, root=ctx.project_root)
    digest = hashlib.sha256(data).hexdigest()
    ctx.run.add_artifact(params.path, digest, kind="vault_export")
    return {"ok": True, "path": params.path, "entries": len(vault.entries), "sha256": digest}


def import_vault(ctx: ActionContext, params: ImportParams) -> dict[str, Any]:
    """Read an export file into the vault: its entries replace those of the same name."""
    source = project_path(ctx.project_root, params.path)
    try:
        vault = open_vault(ctx.project_root, params.vault, params.passphrase)
        try:
            raw = source.read_bytes()
        except FileNotFoundError:
            raise crypto.VaultError(f"{params.path} not found", "not_found") from None
        imported = crypto.import_entries(raw, secret(params.export_passphrase) or "")
        redact.redactor.register_many(imported.values())
        replaced = sorted(set(imported) & set(vault.entries))
        vault.store({**vault.entries, **imported})
    except crypto.VaultError as exc:
        return failure(exc, path=params.path)
    return {"ok": True, "path": params.path, "imported": len(imported),
            "names": sorted(imported), "replaced": replaced, "entries": len(vault.entries)}


def check_import(root: Path, params: BaseModel) -> None:
    """422 before any run for a wrong vault or export passphrase (nothing is written)."""
    check_passphrase()(root, params)
    plain = secret(getattr(params, "export_passphrase", None)) or ""
    try:
        crypto.import_entries(project_path(root, getattr(params, "path", "")).read_bytes(),
                              plain)
    except crypto.WrongPassphrase as exc:
        raise PassphraseRefused("export_passphrase", str(exc)) from None
    except (OSError, crypto.VaultError):
        return


VAULT_FILES = {DEFAULT_VAULT: EXAMPLE_VAULT}
UNLOCK_ONCE = {"passphrase": EXAMPLE_PASSPHRASE}
LOCK = "vault:{vault}"

register_actions(
    Action(path="/vault/create", subtype="setup:vault", title="Create vault", params=CreateParams,
           writes=True,
           service=create_vault, lock_key=LOCK,
           description="A new encrypted vault (Argon2id key slot, AES-256-GCM); it is left "
                       "unlocked. An existing vault is never replaced.",
           example=Example(params={"passphrase": "a long passphrase"},
                           expect={"vault": DEFAULT_VAULT, "slots": 1, "unlocked": True},
                           invalid={"passphrase": "short"}, invalid_field="passphrase")),
    Action(path="/vault/lock", subtype="setup:vault_lock", title="Lock vault", params=VaultParams,
           service=lock_vault, lock_key=LOCK,
           description="Forget the vault's key held by the server; the file is untouched.",
           example=Example(params={}, files=VAULT_FILES, expect={"locked": True},
                           invalid={"vault": "../elsewhere.json"}, invalid_field="vault")),
    Action(path="/vault/unlock", subtype="setup:vault_unlock", title="Unlock vault",
           params=UnlockParams, service=unlock_vault, lock_key=LOCK,
           precheck=check_passphrase(),
           description="Hold the vault's key in the server until locked. A wrong passphrase "
                       "is refused (422 wrong_passphrase) and the vault left untouched.",
           example=Example(params=UNLOCK_ONCE, files=VAULT_FILES,
                           expect={"unlocked": True, "entries": 1, "names": ["API_TOKEN"]},
                           invalid={"passphrase": ""}, invalid_field="passphrase")),
    Action(path="/vault/register", subtype="setup:vault_register", title="Register vault",
           writes=True,
           params=RegisterParams, service=register_entry, lock_key=LOCK,
           precheck=check_passphrase(),
           description="Keep a named value encrypted in the vault (which must be unlocked, or "
                       "send its passphrase); the value is never shown or stored in a run.",
           example=Example(params={"name": "DEPLOY_TOKEN", "value": "s3cr3t-deploy-value",
                                   **UNLOCK_ONCE}, files=VAULT_FILES,
                           expect={"name": "DEPLOY_TOKEN", "entries": 2, "replaced": False},
                           invalid={"name": "-rf"}, invalid_field="name")),
    Action(path="/vault/add-keys", writes=True, subtype="setup:vault_keys", title="Add keys",
           params=AddKeysParams, service=add_key_slot, lock_key=LOCK,
           precheck=check_passphrase(),
           description="Another passphrase that opens the vault (a second key slot).",
           example=Example(params={"new_passphrase": "a second passphrase", "label": "backup",
                                   **UNLOCK_ONCE}, files=VAULT_FILES,
                           expect={"slots": 2, "labels": ["primary", "backup"]},
                           invalid={"new_passphrase": "x"}, invalid_field="new_passphrase")),
    Action(path="/vault/import", writes=True, subtype="restore:vault", title="Import vault",
           params=ImportParams, service=import_vault, lock_key=LOCK, destructive=True,
           precheck=check_import,
           description="Read an encrypted export file into the vault; its entries replace "
                       "those of the same name.",
           example=Example(params={"path": "vault-export.json",
                                   "export_passphrase": EXPORT_PASSPHRASE, **UNLOCK_ONCE},
                           files={**VAULT_FILES, "vault-export.json": EXAMPLE_EXPORT},
                           expect={"imported": 1, "names": ["DB_PASSWORD"], "entries": 2},
                           invalid={"path": "/etc/passwd"}, invalid_field="path")),
    Action(path="/vault/export", writes=True, subtype="backup:vault", title="Export vault",
           params=ExportParams, service=export_vault, lock_key=LOCK,
           precheck=check_passphrase(),
           description="Write every entry to a file encrypted with an export passphrase.",
           example=Example(params={"export_passphrase": EXPORT_PASSPHRASE, **UNLOCK_ONCE},
                           files=VAULT_FILES,
                           expect={"path": ".controlplane/vault-export.json", "entries": 1},
                           invalid={"path": "../outside.json"}, invalid_field="path")),
)
