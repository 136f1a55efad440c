"""Content: encrypt and decrypt project files with the vault's data key (AES-256-GCM).

An encrypted file is a 27-byte header (magic ``SCPENC``, version, key id,
nonce) authenticated with the ciphertext; ``armor`` writes it as text (base64
between BEGIN/END lines) for files kept in git. A tampered file fails to
decrypt with ``integrity_error`` and the output is left untouched. Outputs are
written atomically; an existing one is replaced only with ``overwrite: true``
(409 before any run otherwise).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from controlplane.core.actions import Action, ActionContext, Example, ProjectPath, project_path
from controlplane.core.actions import register as register_actions
from controlplane.core.errors import Conflict
from controlplane.core.integrations import _vault_crypto as crypto
from controlplane.core.integrations._atomic_files import write_atomic
from controlplane.core.integrations._vault_examples import (
    EXAMPLE_ENCRYPTED,
    EXAMPLE_PASSPHRASE,
    EXAMPLE_PLAINTEXT,
    EXAMPLE_VAULT,
)
from controlplane.core.integrations._vault_keys import (
    DEFAULT_VAULT,
    KeyedParams,
    check_passphrase,
    failure,
    open_vault,
)

SUFFIX = ".enc"


class EncryptParams(KeyedParams):
    input: ProjectPath = Field(min_length=1, max_length=300,
                               description="the file to encrypt, inside the project")
    output: ProjectPath | None = Field(None, max_length=300,
                                       description="the encrypted file to write "
                                                   "(default: the input plus .enc)")
    armor: bool = Field(False, description="write text (base64 lines) instead of binary")
    overwrite: bool = Field(False, description="replace an existing output file")

    def target(self) -> str:
        return self.output or self.input + SUFFIX


class DecryptParams(KeyedParams):
    input: ProjectPath = Field(min_length=1, max_length=300,
                               description="the encrypted file, inside the project")
    output: ProjectPath | None = Field(None, max_length=300, validate_default=True,
                                       description="the file to write (default: the input "
                                                   "without .enc)")
    overwrite: bool = Field(False, description="replace an existing output file")

    @field_validator("output")
    @classmethod
    def _output_named(cls, value: str | None, info: ValidationInfo) -> str | None:
        source = info.data.get("input") or ""
        if value is None and source and not source.endswith(SUFFIX):
            raise ValueError(f"name the output file (the input does not end in {SUFFIX})")
        return value

    def target(self) -> str:
        return self.output or self.input[: -len(SUFFIX)]


def precheck(root: Path, params: BaseModel) -> None:
    """422 for a wrong passphrase, 409 for an existing output without ``overwrite``."""
    check_passphrase()(root, params)
    if not isinstance(params, EncryptParams | DecryptParams) or params.overwrite:
        return
    target = params.target()
    if project_path(root, target, "output").exists():
        raise Conflict(f"{target} exists: send \"overwrite\": true to replace it", path=target)


def transform(ctx: ActionContext, params: EncryptParams | DecryptParams, encrypt: bool
              ) -> dict[str, Any]:
    """Read the input, encrypt or decrypt it with the vault's key, write the output atomically."""
    target = params.target()
    answer: dict[str, Any] = {"input": params.input, "output": target}
    try:
        vault = open_vault(ctx.project_root, params.vault, params.passphrase)
        source = project_path(ctx.project_root, params.input, "input")
        if not source.is_file():
            raise crypto.VaultError(f"{params.input} is not a file", "not_found")
        output = project_path(ctx.project_root, target, "output")
        if output.exists() and not params.overwrite:
            raise crypto.VaultError(f"{target} exists: send \"overwrite\": true", "exists")
        data = source.read_bytes()
        if encrypt:
            result = crypto.encrypt_blob(vault.data_key, data)
            if getattr(params, "armor", False):
                result = crypto.armor(result)
        else:
            result = crypto.decrypt_blob(vault.data_key, crypto.unarmor(data))
    except crypto.VaultError as exc:
        return failure(exc, **answer)
    write_atomic(output, result, mode=source.stat().st_mode & 0o777, root=ctx.project_root)
    ctx.run.output(f"{'encrypted' if encrypt else 'decrypted'} {params.input} -> {target}")
    return {"ok": True, **answer, "bytes_in": len(data), "bytes_out": len(result),
            "sha256": hashlib.sha256(result).hexdigest()}


def encrypt_file(ctx: ActionContext, params: EncryptParams) -> dict[str, Any]:
    """Encrypt a project file with the vault's data key."""
    return transform(ctx, params, encrypt=True)


def decrypt_file(ctx: ActionContext, params: DecryptParams) -> dict[str, Any]:
    """Decrypt a file made by ``/content/encrypt``; a tampered file is refused."""
    return transform(ctx, params, encrypt=False)


VAULT_FILES = {DEFAULT_VAULT: EXAMPLE_VAULT}

register_actions(
    Action(path="/content/encrypt", writes=True, subtype="setup:encrypt", title="Encrypt content",
           params=EncryptParams, service=encrypt_file, lock_key="content:{input}",
           precheck=precheck,
           description="Encrypt a project file with the vault's key (the vault must be "
                       "unlocked, or send its passphrase).",
           example=Example(params={"input": "notes.txt", "armor": True,
                                   "passphrase": EXAMPLE_PASSPHRASE},
                           files={**VAULT_FILES, "notes.txt": EXAMPLE_PLAINTEXT},
                           expect={"output": "notes.txt.enc", "bytes_in": 21},
                           invalid={"input": "../notes.txt"}, invalid_field="input")),
    Action(path="/content/decrypt", writes=True, subtype="setup:decrypt", title="Decrypt content",
           params=DecryptParams, service=decrypt_file, lock_key="content:{input}",
           precheck=precheck,
           description="Decrypt a file encrypted with the vault's key; a tampered file fails "
                       "with integrity_error and nothing is written.",
           example=Example(params={"input": "notes.txt.enc", "passphrase": EXAMPLE_PASSPHRASE},
                           files={**VAULT_FILES, "notes.txt.enc": EXAMPLE_ENCRYPTED},
                           expect={"output": "notes.txt", "bytes_out": 21},
                           invalid={"input": "notes.bin", "output": None},
                           invalid_field="output")),
)
