"""Backup archives leave through a download link and come in through an upload.

Archives are made by the backup action itself; hostile uploads are built the way an
attacker would (a tar with ``../x``, a symlink member, a body over the cap, the wrong
content type, a form without its CSRF token) and each is refused with nothing written.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from pathlib import Path

import pytest

from controlplane.core.ledger import Ledger
from tests.conftest import TOKEN, bearer_client

BACKUPS = ".controlplane/backups"
ORIGIN = "http://localhost"


@pytest.fixture
def client(make_app):
    return bearer_client(make_app())


def made_backup(client, repo: Path, name: str = "nightly") -> dict:
    (repo / "docs").mkdir(exist_ok=True)
    (repo / "docs/guide.md").write_text("# Guide\n")
    (repo / "data.bin").write_bytes(os.urandom(200_000))
    made = client.post("/backup/create", json={"paths": ["docs", "data.bin"], "name": name}).json
    assert made["status"] == "ok", made
    return made


def stored(repo: Path) -> dict[str, str]:
    """Every file in the backups directory (hidden temporaries too) with its SHA-256."""
    top = repo / BACKUPS
    if not top.is_dir():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "?"
            for p in sorted(top.iterdir())}


def upload(client, data: bytes, file_name: str = "incoming.tar.gz", **fields: str):
    form = {"file": (io.BytesIO(data), file_name), **fields}
    return client.post("/api/backups/upload", data=form, content_type="multipart/form-data")


def uploads(repo: Path) -> list[dict]:
    ledger = Ledger.open(repo)
    ledger.catch_up()
    return ledger.index.recent(subtype="backup:upload")


def hostile_tar(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    """A tar.gz with a manifest that names *member* as a file, as a forger would write it."""
    buffer = io.BytesIO()
    manifest = json.dumps({"format": "scp-backup", "version": 1, "files": [
        {"path": member.name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
         "mode": 0o644}]}).encode()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
        info = tarfile.TarInfo("MANIFEST.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    return buffer.getvalue()


# -- download ---------------------------------------------------------------------------


def test_download_is_byte_identical_and_listed_with_its_run(client, repo: Path) -> None:
    made = made_backup(client, repo)
    listed = client.get("/api/backups").json["backups"]
    assert [(b["name"], b["run_id"]) for b in listed] == [("nightly", made["run_id"])]
    assert listed[0]["size"] == (repo / BACKUPS / "nightly.tar.gz").stat().st_size
    answer = client.get("/api/backups/nightly")
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"] == "attachment; filename=nightly.tar.gz"
    assert answer.data == (repo / BACKUPS / "nightly.tar.gz").read_bytes()
    assert uploads(repo) == []  # a download is read-only: no run


@pytest.mark.parametrize("name", ["..", "../nightly", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd",
                                  "nightly%2F..%2Fnightly", "missing", ".hidden", "linked",
                                  "escape"])
def test_download_refuses_names_not_in_the_list(client, repo: Path, name: str) -> None:
    made_backup(client, repo)
    (repo / BACKUPS / "linked.tar.gz").symlink_to("nightly.tar.gz")
    (repo / BACKUPS / "escape.tar.gz").symlink_to("/etc/passwd")
    (repo / BACKUPS / ".hidden.tar.gz").write_bytes(b"x")
    answer = client.get(f"/api/backups/{name}", follow_redirects=True)  # '//' merged: 308
    assert answer.status_code in (400, 404), (name, answer.status_code)
    assert answer.json["field"] == "name", answer.json
    assert b"root:" not in answer.data


def test_download_needs_a_login(make_app, repo: Path) -> None:
    app = make_app()
    made_backup(bearer_client(app), repo)
    assert app.test_client().get("/api/backups/nightly").status_code == 401


# -- upload -----------------------------------------------------------------------------


def test_a_downloaded_archive_uploads_under_a_new_name_recorded_as_a_run(client,
                                                                         repo: Path) -> None:
    made_backup(client, repo)
    data = client.get("/api/backups/nightly").data
    answer = upload(client, data, "nightly.tar.gz")
    assert answer.status_code == 200, answer.json
    assert answer.json["name"] == "nightly-2" and answer.json["renamed"] is True
    assert (repo / BACKUPS / "nightly-2.tar.gz").read_bytes() == data
    run = Ledger.open(repo).get(answer.json["run_id"])
    assert run["subtype"] == "backup:upload" and run["status"] == "ok"
    assert run["artifacts"][0]["path"] == f"{BACKUPS}/nightly-2.tar.gz"
    listed = {b["name"]: b["run_id"] for b in client.get("/api/backups").json["backups"]}
    assert listed["nightly-2"] == run["run_id"]
    again = upload(client, data, "x.tgz", name="kept")
    assert again.json["name"] == "kept" and (repo / BACKUPS / "kept.tar.gz").read_bytes() == data


@pytest.mark.parametrize("case", ["dotdot", "symlink", "absolute", "device", "not_a_tar"])
def test_hostile_archives_are_refused_as_failed_runs_with_nothing_written(
        client, repo: Path, case: str) -> None:
    made_backup(client, repo)
    before = stored(repo)
    if case == "dotdot":
        member = tarfile.TarInfo("../x")
        member.size = 2
        data = hostile_tar(member, b"hi")
    elif case == "absolute":
        member = tarfile.TarInfo("/tmp/x")
        member.size = 2
        data = hostile_tar(member, b"hi")
    elif case == "symlink":
        member = tarfile.TarInfo("docs/guide.md")
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
        data = hostile_tar(member)
    elif case == "device":
        member = tarfile.TarInfo("dev")
        member.type, member.devmajor, member.devminor = tarfile.CHRTYPE, 1, 3
        data = hostile_tar(member)
    else:
        data = b"this is not an archive\n" * 100
    answer = upload(client, data, "evil.tar.gz")
    assert 400 <= answer.status_code < 500, answer.json
    assert answer.json["error"] == "archive_refused" and answer.json["field"] == "file"
    assert stored(repo) == before
    assert not (repo.parent / "x").exists()
    run = Ledger.open(repo).get(answer.json["run_id"])
    assert run["status"] == "failed" and run["subtype"] == "backup:upload"
    assert "\n" not in run["error"]["message"] and run["error"]["message"].startswith("file:")


def test_a_body_over_the_cap_is_refused_413_reading_no_more(make_app, repo: Path) -> None:
    client = bearer_client(make_app(SETTINGS={"backup_upload_max_bytes": 100_000}))
    made_backup(client, repo)
    before = stored(repo)
    answer = upload(client, os.urandom(150_000), "big.tar.gz")
    assert answer.status_code == 413 and answer.json["field"] == "file"
    assert "100000-byte cap" in answer.json["message"]
    assert stored(repo) == before
    assert Ledger.open(repo).get(answer.json["run_id"])["status"] == "failed"


def test_the_wrong_content_type_or_no_file_is_refused(client, repo: Path) -> None:
    made_backup(client, repo)
    before = stored(repo)
    data = client.get("/api/backups/nightly").data
    raw = client.post("/api/backups/upload", data=data, content_type="application/gzip")
    assert raw.status_code == 415 and raw.json["field"] == "file"
    empty = client.post("/api/backups/upload", data={"name": "x"},
                        content_type="multipart/form-data")
    assert empty.status_code == 422 and empty.json["field"] == "file"
    named = upload(client, data, "ok.tar.gz", name="../up")
    assert named.status_code == 422 and named.json["field"] == "name"
    assert stored(repo) == before
    assert [r["status"] for r in uploads(repo)] == ["failed"] * 3


def logged_in(app):
    client = app.test_client()
    assert client.get(f"/login?token={TOKEN}").status_code == 303
    return client


def page_csrf(client) -> str:
    html = client.get("/integrations/backup", headers={"Accept": "text/html"}).get_data(True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_the_upload_form_needs_its_csrf_token_and_answers_with_the_run_page(
        make_app, repo: Path) -> None:
    app = make_app()
    made_backup(bearer_client(app), repo)
    browser = logged_in(app)
    html = browser.get("/integrations/backup", headers={"Accept": "text/html"}).get_data(True)
    assert 'href="/api/backups/nightly"' in html and 'enctype="multipart/form-data"' in html
    data = browser.get("/api/backups/nightly").data
    before = stored(repo)
    for token in (None, "wrong" * 8):
        form = {"file": (io.BytesIO(data), "n.tar.gz")}
        if token:
            form["csrf_token"] = token
        refused = browser.post("/api/backups/upload", data=form, headers={"Origin": ORIGIN})
        assert refused.status_code == 403 and refused.json["error"] == "csrf"
    assert stored(repo) == before and uploads(repo) == []  # refused at the gate: no run
    form = {"csrf_token": page_csrf(browser), "file": (io.BytesIO(data), "n.tar.gz")}
    posted = browser.post("/api/backups/upload", data=form,
                          headers={"Origin": ORIGIN, "Accept": "text/html"})
    assert posted.status_code == 303, posted.get_data(True)[:300]
    run_id = posted.headers["Location"].rsplit("/", 1)[1]
    run = Ledger.open(repo).get(run_id)
    assert run["status"] == "ok" and run["actor"]["kind"] == "web"
    assert (repo / BACKUPS / "n.tar.gz").read_bytes() == data


def test_an_oversize_form_post_is_413_naming_the_field(make_app, repo: Path) -> None:
    app = make_app(SETTINGS={"backup_upload_max_bytes": 50_000})
    browser = logged_in(app)
    form = {"csrf_token": page_csrf(browser), "file": (io.BytesIO(os.urandom(80_000)), "b.tgz")}
    answer = browser.post("/api/backups/upload", data=form, headers={"Origin": ORIGIN})
    assert answer.status_code == 413 and answer.json["field"] == "file"
    assert stored(repo) == {}


# -- through a real `controlplane serve` (its loop buffers bodies before a thread serves) --


def test_a_real_serve_takes_an_upload_over_1_mib_and_refuses_one_over_the_cap(
        repo: Path, tmp_path: Path) -> None:
    import requests

    from tests.test_serve import BEARER, Server, server_env

    big = tmp_path / "big"
    big.mkdir()
    (big / "blob.bin").write_bytes(os.urandom(3 << 20))  # random: the gzip stays > 1 MiB
    from controlplane.core.integrations import _archive_safety as safety
    buffer = io.BytesIO()
    safety.write_archive(buffer, big, ["blob.bin"])
    data = buffer.getvalue()
    assert len(data) > 3 << 20
    server = Server(repo, tmp_path, env=server_env(CONTROLPLANE_BACKUP_UPLOAD_MAX_BYTES="4000000"))
    try:
        files = {"file": ("big.tar.gz", data, "application/gzip")}
        answer = requests.post(f"{server.base}/api/backups/upload", files=files, headers=BEARER,
                               timeout=60)
        assert answer.status_code == 200, answer.text
        assert (repo / BACKUPS / "big.tar.gz").read_bytes() == data
        back = requests.get(f"{server.base}/api/backups/big", headers=BEARER, timeout=60)
        assert back.content == data
        over = {"file": ("over.tar.gz", data + os.urandom(1 << 20), "application/gzip")}
        refused = requests.post(f"{server.base}/api/backups/upload", files=over, headers=BEARER,
                                timeout=60)
        assert refused.status_code == 413 and refused.json()["field"] == "file"
        assert not (repo / BACKUPS / "over.tar.gz").exists()
    finally:
        server.kill()
