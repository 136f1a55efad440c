"""Backup: a user backs up project files and restores them byte for byte; hostile archives
are refused with nothing written anywhere."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from controlplane.core.ledger import Ledger
from tests.conftest import bearer_client

BACKUPS = ".controlplane/backups"


@pytest.fixture
def client(make_app):
    return bearer_client(make_app())


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(top: Path) -> dict[str, tuple]:
    """Every path under *top* (the run's own records in .git and .scp-ledger left out)."""
    seen = {}
    for path in sorted(top.rglob("*")):
        relative = path.relative_to(top)
        if {".git", ".scp-ledger"} & set(relative.parts):
            continue
        if path.is_symlink():
            seen[str(relative)] = ("link", os.readlink(path))
        elif path.is_file():
            seen[str(relative)] = ("file", sha(path), path.stat().st_mode)
        else:
            seen[str(relative)] = ("dir",)
    return seen


def make_files(repo: Path) -> dict[str, str]:
    (repo / "src/pkg").mkdir(parents=True)
    (repo / "src/pkg/app.py").write_text("print('hello')\n")
    (repo / "src/run.sh").write_text("#!/bin/sh\necho run\n")
    (repo / "src/run.sh").chmod(0o755)
    (repo / "data.bin").write_bytes(os.urandom(300_000) + bytes(range(256)))
    (repo / "src/link").symlink_to("/etc/passwd")
    return {p: sha(repo / p) for p in ("src/pkg/app.py", "src/run.sh", "data.bin")}


def test_create_then_restore_byte_for_byte(client, repo: Path) -> None:
    hashes = make_files(repo)
    made = client.post("/backup/create", json={"paths": ["src", "data.bin"], "name": "b1"}).json
    assert made["status"] == "ok" and made["files"] == 3 and made["skipped_links"] == ["src/link"]
    archive = repo / BACKUPS / "b1.tar.gz"
    stored = Ledger.open(repo).get(made["run_id"])
    assert stored["artifacts"] == [{"path": f"{BACKUPS}/b1.tar.gz", "sha256": sha(archive),
                                    "size": archive.stat().st_size, "files": 3}]
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("MANIFEST.json").read())
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == hashes

    shutil.rmtree(repo / "src")
    (repo / "data.bin").write_bytes(b"overwritten")
    refused = client.post("/backup/restore", json={"name": "b1"})
    assert refused.status_code == 428
    restored = client.post("/backup/restore", json={"name": "b1", "confirm": True}).json
    assert restored["status"] == "ok" and restored["restored"] == 3
    assert {p: sha(repo / p) for p in hashes} == hashes
    assert (repo / "src/run.sh").stat().st_mode & 0o777 == 0o755
    assert not [p for p in (repo / BACKUPS).iterdir() if p.name.startswith(".restore-")]


def test_paths_that_do_not_exist_are_named(client, repo: Path) -> None:
    answer = client.post("/backup/create", json={"paths": ["README.md", "nope"]}).json
    assert answer["status"] == "failed" and answer["error"]["code"] == "not_found"
    assert answer["missing"] == ["nope"] and not (repo / BACKUPS).exists()


def member(name: str, data: bytes = b"x\n", **attrs) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    if info.type != tarfile.REGTYPE:
        info.size = 0
    return info, data


def hostile_archive(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> None:
    """A gzip tar whose manifest lists every regular member correctly (only the path lies)."""
    files = [{"path": i.name, "size": i.size, "sha256": hashlib.sha256(d).hexdigest(),
              "mode": 0o644} for i, d in members if i.type == tarfile.REGTYPE]
    manifest = json.dumps({"format": "scp-backup", "version": 1, "files": files}).encode()
    with tarfile.open(path, "w:gz") as tar:
        for info, data in [*members, member("MANIFEST.json", manifest)]:
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)


HOSTILE = {
    "dotdot": [member("ok.txt"), member("../evil", b"evil\n")],
    "absolute": [member("/tmp/abs-evil-scp", b"evil\n")],
    "symlink": [member("passwd", type=tarfile.SYMTYPE, linkname="/etc/passwd")],
    "hardlink": [member("shadow", type=tarfile.LNKTYPE, linkname="/etc/shadow")],
    "device": [member("dev-null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)],
    "git_hook": [member(".git/hooks/post-commit", b"#!/bin/sh\ntouch pwned\n")],
    "nested_dotdot": [member("docs/../../evil", b"evil\n")],
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_archives_are_refused_and_nothing_is_written(client, repo: Path, tmp_path: Path,
                                                             kind: str) -> None:
    (repo / BACKUPS).mkdir(parents=True)
    hostile_archive(repo / BACKUPS / "evil.tar.gz", *HOSTILE[kind])
    shutil.copy(repo / BACKUPS / "evil.tar.gz", repo / "incoming.tar.gz")
    before = snapshot(tmp_path)
    restore = client.post("/backup/restore", json={"name": "evil", "confirm": True}).json
    assert restore["status"] == "failed" and restore["error"]["code"] == "archive_refused"
    imported = client.post("/backup/import", json={"path": "incoming.tar.gz", "name": "in",
                                                   "confirm": True}).json
    assert imported["status"] == "failed" and imported["error"]["code"] == "archive_refused"
    assert snapshot(tmp_path) == before
    assert not Path("/tmp/abs-evil-scp").exists()


def test_a_link_in_the_project_cannot_carry_a_restore_outside(client, repo: Path,
                                                              tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "out").symlink_to(outside)
    (repo / BACKUPS).mkdir(parents=True)
    hostile_archive(repo / BACKUPS / "evil.tar.gz", member("out/planted.txt", b"planted\n"))
    before = snapshot(tmp_path)
    answer = client.post("/backup/restore", json={"name": "evil", "confirm": True}).json
    assert answer["error"]["code"] == "archive_refused" and "outside" in answer["error"]["message"]
    assert snapshot(tmp_path) == before


def test_a_hash_that_differs_from_the_manifest_is_refused(client, repo: Path,
                                                          tmp_path: Path) -> None:
    (repo / "a.txt").write_text("original\n")
    client.post("/backup/create", json={"paths": ["a.txt"], "name": "good"})
    archive = repo / BACKUPS / "good.tar.gz"
    with tarfile.open(archive) as tar:
        manifest = tar.extractfile("MANIFEST.json").read()
    with tarfile.open(archive, "w:gz") as tar:  # same manifest, other content
        for info, data in (member("a.txt", b"tampered\n"), member("MANIFEST.json", manifest)):
            tar.addfile(info, io.BytesIO(data))
    (repo / "a.txt").write_text("current\n")
    before = snapshot(tmp_path)
    answer = client.post("/backup/restore", json={"name": "good", "confirm": True}).json
    assert answer["error"]["code"] == "archive_refused" and "SHA-256" in answer["error"]["message"]
    assert snapshot(tmp_path) == before


def test_import_an_archive_made_with_tar_then_restore_it(client, repo: Path,
                                                         tmp_path: Path) -> None:
    staging = tmp_path / "elsewhere"
    (staging / "notes").mkdir(parents=True)
    (staging / "notes/todo.md").write_text("- ship it\n")
    manifest = {"format": "scp-backup", "version": 1, "files": [
        {"path": "notes/todo.md", "size": 10, "sha256": sha(staging / "notes/todo.md")}]}
    (staging / "MANIFEST.json").write_text(json.dumps(manifest))
    subprocess.run(["tar", "-czf", str(repo / "from-tar.tgz"), "-C", str(staging), "."],
                   check=True)  # members ./, ./notes/, ./notes/todo.md, ./MANIFEST.json
    imported = client.post("/backup/import", json={"path": "from-tar.tgz", "confirm": True}).json
    assert imported["status"] == "ok" and imported["name"] == "from-tar"
    assert sha(repo / BACKUPS / "from-tar.tar.gz") == imported["sha256"]
    restored = client.post("/backup/restore", json={"name": "from-tar", "confirm": True}).json
    assert restored["status"] == "ok"
    assert (repo / "notes/todo.md").read_text() == "- ship it\n"


def test_delete_one_then_wipe_all(client, repo: Path) -> None:
    (repo / "a.txt").write_text("a\n")
    for name in ("one", "two", "three"):
        assert client.post("/backup/create", json={"paths": ["a.txt"], "name": name}).json["ok"]
    taken = client.post("/backup/create", json={"paths": ["a.txt"], "name": "one"})
    assert taken.status_code == 409
    assert client.post("/backup/delete", json={"name": "nope", "confirm": True}).status_code == 404
    deleted = client.post("/backup/delete", json={"name": "two", "confirm": True}).json
    assert deleted["status"] == "ok" and not (repo / BACKUPS / "two.tar.gz").exists()
    mistaken = client.post("/backup/wipe", json={"name": "one", "confirm": True})
    assert mistaken.status_code == 422 and (repo / BACKUPS / "one.tar.gz").exists()
    assert client.post("/backup/wipe", json={}).status_code == 428
    wiped = client.post("/backup/wipe", json={"confirm": True}).json
    assert wiped["status"] == "ok" and wiped["deleted"] == 2
    assert wiped["names"] == ["one", "three"]
    assert list((repo / BACKUPS).glob("*.tar.gz")) == []
