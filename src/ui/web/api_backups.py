"""Backup archives over HTTP: list, download, upload (the backup integration's page links here).

- ``GET /api/backups``: the archives (name, size, created, the run that made it).
- ``GET /api/backups/<name>``: one archive, streamed as an attachment. *name* must be
  one the list shows (a regular file, no link): anything else is 404 naming ``name``.
  Read-only, so not a run (docs/actions.md).
- ``POST /api/backups/upload``: ``multipart/form-data`` with the archive as ``file`` (and
  an optional ``name``), capped by the ``backup_upload_max_bytes`` setting (the body is
  read no further than the cap: werkzeug's ``max_content_length``, set for this path
  before the gate reads a form's CSRF token). Recorded as a ``backup:upload`` run by the
  logged-in user, holding the backup lock; the archive gets the checks a restore makes
  (``_archive_safety.verify``) before it is stored, under a new name when the name is
  taken. A refusal after the gate is a failed run and a 4xx; a browser's form post
  (JavaScript off) answers 303 to the run's page, or an error page linking it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
)
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse

from controlplane.core.integrations import backup
from controlplane.core.run_tracker import ActiveRun, open_run
from controlplane.ui.web.errors import error_response, prefers_html
from controlplane.ui.web.routes import BROWSER_AUTH, request_actor
from controlplane.ui.web.state import base_url, local_path, state

bp = Blueprint("api_backups", __name__)

UPLOAD_PATH = "/api/backups/upload"
CAP_SETTING = "backup_upload_max_bytes"
MULTIPART = "multipart/form-data"
RECENT_RUNS = 200  # per subtype, searched for the run that made each archive
STATUS_OF = {"too_large": 413, "unsupported_media_type": 415, "exists": 409}


def upload_cap() -> int:
    return int(state().settings.get(CAP_SETTING) or backup.UPLOAD_MAX_BYTES)


def allow_upload_body() -> None:
    """Before the gate: the upload's body may be as large as the cap (the app's limit is
    1 MiB), so the gate's reading of the form's CSRF token stops at the cap too."""
    if request.method == "POST" and local_path() == UPLOAD_PATH:
        request.max_content_length = upload_cap()


def archives() -> list[backup.ArchiveInfo]:
    """The archives with the run that made each (the ledger's newest runs first)."""
    plane = state()
    found = backup.list_archives(plane.root)
    if not found:
        return found
    runs: list[dict[str, Any]] = []
    for subtype in backup.MADE_BY:
        runs += plane.ledger.index.recent(limit=RECENT_RUNS, subtype=subtype)
    runs.sort(key=lambda run: str(run.get("run_id")), reverse=True)
    return backup.with_runs(found, runs)


def page_helpers() -> dict[str, Any]:
    """For ``_backups.html`` on the backup integration's page (called only there)."""
    return {"cp_backup_archives": archives, "cp_backup_upload_cap": upload_cap}


def install(app: Flask, parent: Blueprint, *, whole_app: bool) -> None:
    """Register the routes, the page helpers and the body limit (before the gate's hook)."""
    for target in ((app, parent) if whole_app else (parent,)):
        target.before_request(allow_upload_body)
        target.context_processor(page_helpers)
    parent.register_blueprint(bp)


@bp.get("/api/backups")
def list_backups() -> Response:
    """The backup archives, newest first, each with the run that made it."""
    return jsonify(backups=[asdict(a) for a in archives()])


@bp.get("/api/backups/<path:name>")
def download(name: str) -> Response:
    """One backup archive as a download (404 naming ``name`` unless the list shows it)."""
    fh, size = backup.open_archive(state().root, name)
    response = send_file(fh, mimetype="application/gzip", as_attachment=True,
                         download_name=f"{name}{backup.SUFFIX}", conditional=False, etag=False,
                         max_age=0)
    response.headers["Content-Length"] = str(size)
    response.headers["Cache-Control"] = "no-store"
    return response


class Refusal(Exception):
    """An upload refused before its archive is looked at: code, one line, the field."""

    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def staged_upload(cap: int, directory: str) -> tuple[Path, str, str | None]:
    """(the uploaded file copied to *directory*, its file name, the name asked for)."""
    if request.mimetype != MULTIPART:
        raise Refusal("unsupported_media_type",
                      f"file: send the archive as {MULTIPART} (field \"file\"), "
                      f"not {request.mimetype or 'no content type'}", "file")
    too_large = Refusal("too_large", f"file: the upload is over the {cap}-byte cap "
                        f"({CAP_SETTING}): upload a smaller archive or raise the setting", "file")
    if request.content_length is not None and request.content_length > cap:
        raise too_large
    try:
        upload, wanted = request.files.get("file"), request.form.get("name") or None
    except RequestEntityTooLarge:
        raise too_large from None
    if upload is None or not upload.filename:
        raise Refusal("missing_file", "file: choose an archive (.tar.gz, .tgz or .tar) to upload",
                      "file")
    staged = Path(directory) / "upload"
    with open(staged, "xb") as out:
        shutil.copyfileobj(upload.stream, out, 1 << 20)
    return staged, upload.filename, wanted


def upload_job(root: Path, directory: str) -> tuple[dict[str, Any], Callable[[ActiveRun], Any]]:
    """(the run's params, what the run does): store the upload, or say why not."""
    try:
        staged, file_name, wanted = staged_upload(upload_cap(), directory)
    except Refusal as refusal:
        refused = backup.failure(refusal.code, refusal.message, field=refusal.field)
        return {}, lambda run: refused
    params = {"file": file_name[:200], "name": wanted, "bytes": staged.stat().st_size}
    name = backup.upload_name(wanted, file_name)
    if name is None:
        field = "name" if wanted else "file"
        refused = backup.failure("bad_name", f"{field}: {(wanted or file_name)[:80]!r} gives no "
                                 "usable name: send a \"name\" of letters, digits, '.', '_', '-'",
                                 field=field)
        return params, lambda run: refused
    return params, lambda run: backup.store_upload(run, root, staged, name)


@bp.post(UPLOAD_PATH)
def upload() -> BaseResponse | tuple[str, int]:
    """Upload a backup archive (multipart ``file``): checked, kept, a ``backup:upload`` run."""
    plane = state()
    with tempfile.TemporaryDirectory(prefix="controlplane-upload-") as directory:
        params, work = upload_job(plane.root, directory)
        active = open_run("backup", backup.UPLOAD_SUBTYPE, summary="Upload backup",
                          project_root=plane.root, bus=plane.bus, params=params,
                          actor=request_actor())
        job = plane.executor.submit(active, work, backup.LOCK)
        plane.executor.wait(active.run_id)
        final = job.final or active.run.to_dict()
        plane.executor.forget(active.run_id)
    run_id = final["run_id"]
    result = dict(final.get("result") or {})
    error = result.get("error") if isinstance(result.get("error"), dict) else final.get("error")
    status = 200 if final["status"] == "ok" else (
        STATUS_OF.get(str((error or {}).get("code")), 422))
    if g.get("controlplane_auth") in BROWSER_AUTH and prefers_html():  # a form's navigation
        if status == 200:
            return redirect(f"{base_url()}/runs/{run_id}", code=303)
        message = str((error or {}).get("message") or "the upload was refused")
        page = render_template("controlplane/error.html", status=status,
                               message=f"{message} (run {run_id})")
        return page, status
    if status != 200:
        return error_response(status, str((error or {}).get("code") or "refused"),
                              str((error or {}).get("message") or "the upload was refused"),
                              field=result.get("field", "file"), run_id=run_id)
    return jsonify({**result, "run_id": run_id, "status": final["status"]})


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc: RequestEntityTooLarge) -> Response:
    """The gate read a browser form's CSRF token past the cap: nothing was recorded (the
    request's origin was not known yet)."""
    return error_response(413, "too_large", f"file: the upload is over the {upload_cap()}-byte "
                          f"cap ({CAP_SETTING}): upload a smaller archive or raise the setting",
                          field="file")
