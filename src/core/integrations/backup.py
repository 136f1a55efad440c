"""Backup: tar.gz archives of chosen project paths, with a manifest of hashes.

Archives live in ``.controlplane/backups/<name>.tar.gz``. Restore and import
check the manifest, every hash, every path and member kind before anything
is written (``_archive_safety``), and restore swaps files in all or nothing.
Wipe and delete remove archives (both confirmed).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from controlplane.core.actions import Action, ActionContext, Example, ProjectPath, project_path
from controlplane.core.actions import register as register_actions
from controlplane.core.errors import Conflict, NotFound
from controlplane.core.integrations import _archive_safety as safety
from controlplane.core.integrations._atomic_files import (
    atomic_writer,
    relative_to_root,
    sha256_file,
)
from controlplane.core.integrations._cli_tools import Name
from controlplane.core.integrations._safe_paths import UnsafePath

BACKUPS = ".controlplane/backups"
SUFFIX = ".tar.gz"
SKIPPED_DIRS = {".git", ".scp-ledger", "__pycache__"}
LOCK = "backup"


class CreateParams(BaseModel):
    paths: list[ProjectPath] = Field(min_length=1, max_length=1000,
                                     description="files and directories to back up")
    name: Name | None = Field(None, description="the backup's name (default: backup-<UTC time>)")
    overwrite: bool = Field(False, description="replace a backup of the same name")


class NamedParams(BaseModel):
    name: Name = Field(description="a backup in .controlplane/backups (without .tar.gz)")


class ImportParams(BaseModel):
    path: ProjectPath = Field(min_length=1, max_length=300,
                              description="a backup archive (.tar.gz), inside the project")
    name: Name | None = Field(None, description="name to keep it under (default: the file's)")
    overwrite: bool = Field(False, description="replace a backup of the same name")


class WipeParams(BaseModel):
    """No parameters: a body meant for /backup/delete (say ``name``) is refused, not obeyed."""

    model_config = ConfigDict(extra="forbid")


def archive_path(root: Path, name: str) -> Path:
    return project_path(root, f"{BACKUPS}/{name}{SUFFIX}", "name")


def failure(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}, **extra}


def collect(root: Path, paths: list[str]) -> tuple[list[str], list[str], list[str]]:
    """The regular files under *paths* (relative, sorted), the links skipped, the paths missing."""
    base = root.resolve()
    files: set[str] = set()
    skipped: set[str] = set()
    missing = []

    def name_of(path: Path) -> str:  # relative, without following a link at the end
        return (PurePosixPath(relative_to_root(base, path.parent)) / path.name).as_posix()

    for relative in paths:
        start = project_path(root, relative, "paths")
        if not start.exists():
            missing.append(relative)
        elif start.is_file():
            files.add(relative_to_root(base, start))
        for directory, dirs, names in os.walk(start) if start.is_dir() else ():
            here = Path(directory)
            skipped.update(name_of(here / d) for d in dirs if (here / d).is_symlink())
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and
                             here / d != base / BACKUPS and not (here / d).is_symlink())
            for name in names:
                path = here / name
                if path.is_symlink():
                    skipped.add(name_of(path))
                elif path.is_file():
                    files.add(name_of(path))
    return sorted(files), sorted(skipped), missing


def create_backup(ctx: ActionContext, params: CreateParams) -> dict[str, Any]:
    """A tar.gz of the files under *paths* with MANIFEST.json, recorded as the run's artifact."""
    root = ctx.project_root
    now = datetime.now(UTC)
    name = params.name or now.strftime("backup-%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z"
    target = archive_path(root, name)
    if target.exists() and not params.overwrite:
        return failure("exists", f"backup {name} exists: send \"overwrite\": true", name=name)
    files, skipped, missing = collect(root, params.paths)
    if missing:
        return failure("not_found", f"not in the project: {', '.join(missing)}",
                       missing=missing)
    if not files:
        return failure("nothing_to_back_up", "no regular files under the given paths",
                       skipped_links=skipped)
    try:
        with atomic_writer(target, root=root) as fh:
            entries = safety.write_archive(fh, root, files)
    except UnsafePath as exc:
        return failure(exc.code, f"{BACKUPS}: {exc.why}", name=name)
    for entry in entries:
        ctx.run.output(f"{entry.sha256[:12]}  {entry.size:>10}  {entry.path}")
    digest = sha256_file(target)
    relative = f"{BACKUPS}/{name}{SUFFIX}"
    ctx.run.add_artifact(relative, digest, size=target.stat().st_size, files=len(entries))
    return {"ok": True, "name": name, "archive": relative, "sha256": digest,
            "files": len(entries), "bytes": sum(e.size for e in entries),
            "skipped_links": skipped}


def restore_backup(ctx: ActionContext, params: NamedParams) -> dict[str, Any]:
    """Check the whole archive, then put every file back in place, all or nothing."""
    root = ctx.project_root
    archive = archive_path(root, params.name)
    if not archive.is_file():
        return failure("not_found", f"no backup named {params.name}", name=params.name)
    try:
        entries = safety.verify(archive, root)
        safety.restore(archive, root, entries, root / BACKUPS)
    except safety.ArchiveRefused as exc:
        return failure(exc.code, str(exc), name=params.name, restored=0)
    for entry in entries:
        ctx.run.output(f"restored {entry.path}")
    return {"ok": True, "name": params.name, "restored": len(entries),
            "bytes": sum(e.size for e in entries), "sha256": sha256_file(archive)}


def import_backup(ctx: ActionContext, params: ImportParams) -> dict[str, Any]:
    """Check an external archive like a restore would, then copy it into the backups."""
    root = ctx.project_root
    source = project_path(root, params.path)
    file_name = source.name
    name = params.name or next((file_name[: -len(ext)] for ext in (SUFFIX, ".tgz", ".tar")
                                if file_name.endswith(ext)), "")
    if not _plain_name(name):
        return failure("bad_name", f"{file_name!r} gives no usable name: send \"name\"")
    if not source.is_file():
        return failure("not_found", f"{params.path} is not a file", path=params.path)
    target = archive_path(root, name)
    if target.exists() and not params.overwrite:
        return failure("exists", f"backup {name} exists: send \"overwrite\": true", name=name)
    checked = sha256_file(source)
    try:
        entries = safety.verify(source, root)
        copy_in(source, target, checked, root)
    except safety.ArchiveRefused as exc:
        return failure(exc.code, str(exc), path=params.path)
    except UnsafePath as exc:
        return failure(exc.code, f"{BACKUPS}: {exc.why}", name=name)
    digest = sha256_file(target)
    relative = f"{BACKUPS}/{name}{SUFFIX}"
    ctx.run.add_artifact(relative, digest, size=target.stat().st_size, files=len(entries))
    return {"ok": True, "name": name, "archive": relative, "sha256": digest,
            "files": len(entries)}


def copy_in(source: Path, target: Path, checked: str, root: Path | None = None,
            exclusive: bool = False) -> None:
    """Copy the verified *source* to *target* atomically (gzip-compressing a plain tar), making
    sure the bytes copied are the ones that were checked (sha256 *checked*). *exclusive*: an
    existing *target* is never replaced (FileExistsError)."""
    with open(source, "rb") as fh:
        gzipped = fh.read(2) == safety.GZIP_MAGIC
    with atomic_writer(target, root=root, exclusive=exclusive) as raw, open(source, "rb") as fh:
        digest = hashlib.sha256()
        sink = raw if gzipped else gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
            sink.write(block)
        if sink is not raw:
            sink.close()
        if digest.hexdigest() != checked:
            raise safety.ArchiveRefused(f"{source.name} changed while being imported")


def _plain_name(name: str) -> bool:
    try:
        TypeAdapter(Name).validate_python(name)
    except ValidationError:
        return False
    return True


def backups(root: Path) -> list[Path]:
    directory = project_path(root, BACKUPS)
    return sorted(directory.glob(f"*{SUFFIX}")) if directory.is_dir() else []


def wipe_backups(ctx: ActionContext, params: WipeParams) -> dict[str, Any]:
    """Delete every backup archive in .controlplane/backups."""
    removed = []
    for archive in backups(ctx.project_root):
        archive.unlink()
        removed.append(archive.name[: -len(SUFFIX)])
        ctx.run.output(f"deleted {archive.name}")
    return {"ok": True, "deleted": len(removed), "names": removed}


def delete_backup(ctx: ActionContext, params: NamedParams) -> dict[str, Any]:
    """Delete one backup archive."""
    archive = archive_path(ctx.project_root, params.name)
    try:
        archive.unlink()
    except FileNotFoundError:
        return failure("not_found", f"no backup named {params.name}", name=params.name)
    return {"ok": True, "deleted": params.name}


def backup_exists(root: Path, params: BaseModel) -> None:
    """A precheck: 404 before any run for a backup that is not there."""
    name = getattr(params, "name", "")
    if not archive_path(root, name).is_file():
        raise NotFound(f"no backup named {name} in {BACKUPS}", name=name)


def name_free(root: Path, params: BaseModel) -> None:
    """A precheck: 409 before any run when the chosen name is taken and not to be replaced."""
    name = getattr(params, "name", None)
    if name and not getattr(params, "overwrite", False) and archive_path(root, name).exists():
        raise Conflict(f"backup {name} exists: send \"overwrite\": true to replace it",
                       name=name)


# -- archives over HTTP: listed, downloaded, uploaded (ui/web/api_backups.py) --------------

UPLOAD_SUBTYPE = "backup:upload"
UPLOAD_MAX_BYTES = 128 << 20  # default of the backup_upload_max_bytes setting
MADE_BY = ("backup:create", "restore:import", UPLOAD_SUBTYPE)  # runs that leave an archive
MAX_NAME_TRIES = 1000


@dataclass(frozen=True)
class ArchiveInfo:
    """One archive in .controlplane/backups, as the page and ``GET /api/backups`` list it."""

    name: str
    size: int
    created: str  # the file's modification time, ISO 8601 UTC
    run_id: str | None = None  # the newest run that recorded it as its artifact


def list_archives(root: Path) -> list[ArchiveInfo]:
    """The regular files ``<name>.tar.gz`` with a plain name (no link), newest first."""
    found = []
    for path in backups(root):
        name = path.name[: -len(SUFFIX)]
        info = os.lstat(path)
        if stat.S_ISREG(info.st_mode) and _plain_name(name):
            created = datetime.fromtimestamp(info.st_mtime, UTC).isoformat(timespec="seconds")
            found.append(ArchiveInfo(name, info.st_size, created))
    return sorted(found, key=lambda a: (a.created, a.name), reverse=True)


def with_runs(archives: list[ArchiveInfo], runs: Iterable[dict[str, Any]]) -> list[ArchiveInfo]:
    """*archives* with the run that made each: the first ok run of *runs* (newest first)
    whose artifact is the archive's path."""
    made: dict[str, str] = {}
    for run in runs:
        if run.get("status") != "ok":
            continue
        for artifact in run.get("artifacts") or ():
            path = artifact.get("path") if isinstance(artifact, dict) else None
            if isinstance(path, str):
                made.setdefault(path, str(run.get("run_id")))
    return [replace(a, run_id=made.get(f"{BACKUPS}/{a.name}{SUFFIX}")) for a in archives]


def open_archive(root: Path, name: str) -> tuple[IO[bytes], int]:
    """(an open file, its size) of the listed archive *name*; NotFound naming ``name`` for
    anything that is not one (``..``, ``/``, a link, an absolute path, a missing file)."""
    if name not in {a.name for a in list_archives(root)}:
        raise NotFound(f"no backup named {name!r} in {BACKUPS}: pick one the list shows",
                       field="name")
    try:
        fd = os.open(archive_path(root, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # deleted or swapped for a link since it was listed
        raise NotFound(f"no backup named {name!r} in {BACKUPS}", field="name") from None
    fh = os.fdopen(fd, "rb")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        fh.close()
        raise NotFound(f"no backup named {name!r} in {BACKUPS}", field="name")
    return fh, info.st_size


def upload_name(wanted: str | None, file_name: str) -> str | None:
    """The name to keep an upload under: *wanted*, else the file's name without its
    extension; None when neither is a plain name."""
    name = wanted or next((file_name[: -len(ext)] for ext in (SUFFIX, ".tgz", ".tar")
                           if file_name.endswith(ext)), file_name)
    return name if _plain_name(name) else None


def store_upload(run: Any, root: Path, staged: Path, name: str) -> dict[str, Any]:
    """Check the uploaded archive *staged* like a restore would, then keep it in the
    backups under *name*, or ``<name>-2``… when taken (an archive is never replaced)."""
    checked = sha256_file(staged)
    try:
        entries = safety.verify(staged, root)
    except safety.ArchiveRefused as exc:
        return failure(exc.code, f"file: {exc}", field="file")
    for attempt in range(1, MAX_NAME_TRIES + 1):
        final = name if attempt == 1 else f"{name[:120]}-{attempt}"
        try:
            copy_in(staged, archive_path(root, final), checked, root, exclusive=True)
            break
        except FileExistsError:
            continue
        except safety.ArchiveRefused as exc:
            return failure(exc.code, f"file: {exc}", field="file")
        except UnsafePath as exc:
            return failure(exc.code, f"{BACKUPS}: {exc.why}", field="file")
    else:
        return failure("exists", f"backups named {name} up to -{MAX_NAME_TRIES} exist: "
                                 "send another \"name\"", field="name")
    for entry in entries:
        run.output(f"{entry.sha256[:12]}  {entry.size:>10}  {entry.path}")
    target = archive_path(root, final)
    digest = sha256_file(target)
    relative = f"{BACKUPS}/{final}{SUFFIX}"
    run.add_artifact(relative, digest, size=target.stat().st_size, files=len(entries))
    return {"ok": True, "name": final, "archive": relative, "sha256": digest,
            "files": len(entries), "renamed": final != name}


SAMPLE = {"docs/guide.md": "# Guide\n\nHello.\n", "config/app.yaml": "port: 8080\n"}
# example files are text: a plain ustar backup of ASCII files is text too
SAMPLE_ARCHIVE = safety.text_archive(SAMPLE)

register_actions(
    Action(path="/backup/create", writes=True, subtype="backup:create", title="Create backup",
           params=CreateParams, service=create_backup, lock_key=LOCK, precheck=name_free,
           description="A tar.gz of the chosen paths with MANIFEST.json (path, size, SHA-256 "
                       "of each file) in .controlplane/backups; the archive is the run's "
                       "artifact.",
           example=Example(params={"paths": ["docs", "config/app.yaml"], "name": "nightly"},
                           files=SAMPLE,
                           expect={"name": "nightly", "files": 2,
                                   "archive": ".controlplane/backups/nightly.tar.gz"},
                           invalid={"paths": ["../outside"]}, invalid_field="paths.0")),
    Action(path="/backup/restore", writes=True, subtype="restore:backup", title="Restore backup",
           params=NamedParams, service=restore_backup, lock_key=LOCK, destructive=True,
           precheck=backup_exists,
           description="Put a backup's files back in place, all or nothing, after checking its "
                       "manifest, every hash, and that no member is a link, a device, an "
                       "absolute path or climbs out with '..'.",
           example=Example(params={"name": "nightly"},
                           files={"docs/guide.md": "# Guide (edited)\n",
                                  f"{BACKUPS}/nightly{SUFFIX}": SAMPLE_ARCHIVE},
                           expect={"name": "nightly", "restored": 2},
                           invalid={"name": "-nightly"}, invalid_field="name")),
    Action(path="/backup/import", writes=True, subtype="restore:import", title="Import backup",
           params=ImportParams, service=import_backup, lock_key=LOCK, destructive=True,
           precheck=name_free,
           description="Bring an archive from elsewhere in the project into the backups, after "
                       "the same checks as a restore (a plain tar is stored gzip-compressed).",
           example=Example(params={"path": "incoming/site.tar"},
                           files={"incoming/site.tar": SAMPLE_ARCHIVE},
                           expect={"name": "site", "files": 2,
                                   "archive": ".controlplane/backups/site.tar.gz"},
                           invalid={"path": "/etc/passwd"}, invalid_field="path")),
    Action(path="/backup/wipe", writes=True, subtype="destroy:backup_wipe", title="Wipe data",
           params=WipeParams, service=wipe_backups, lock_key=LOCK, destructive=True,
           description="Delete ALL backup archives in .controlplane/backups (takes no "
                       "parameters; the result says how many).",
           example=Example(params={}, files={f"{BACKUPS}/old{SUFFIX}": "not checked\n"},
                           expect={"deleted": 1, "names": ["old"]},
                           invalid={"name": "old"}, invalid_field="name")),
    Action(path="/backup/delete", subtype="destroy:backup_delete", title="Delete backup",
           writes=True,
           params=NamedParams, service=delete_backup, lock_key=LOCK, destructive=True,
           precheck=backup_exists, description="Delete one backup archive by name.",
           example=Example(params={"name": "old"},
                           files={f"{BACKUPS}/old{SUFFIX}": "not checked\n"},
                           expect={"deleted": "old"},
                           invalid={"name": "../old"}, invalid_field="name")),
)
