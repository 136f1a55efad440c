"""Restores and generated files cannot be carried into .git or out of the project by a link.

The attacker commits ``dotgit -> .git`` (or ``link -> /outside``) to the project and hands
over a backup made the way /backup/create makes them, whose members go through that link.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path

import pytest

from controlplane.core.integrations import _archive_safety as archives
from controlplane.core.integrations._atomic_files import write_atomic
from controlplane.core.integrations._safe_paths import UnsafePath, check
from tests.conftest import bearer_client, git

BACKUPS = ".controlplane/backups"
HOOK = "#!/bin/sh\ntouch \"$(git rev-parse --show-toplevel)/../pwned\"\n"


@pytest.fixture
def client(make_app):
    return bearer_client(make_app())


def backup_of(tmp_path: Path, repo: Path, name: str, tree: dict[str, str]) -> Path:
    """An archive of *tree* made elsewhere, exactly as the backup action writes one."""
    source = tmp_path / f"attacker-{name}"
    for relative, text in tree.items():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_text(text)
        (source / relative).chmod(0o755)
    archive = repo / BACKUPS / f"{name}.tar.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with archive.open("wb") as fh:
        archives.write_archive(fh, source, sorted(tree))
    return archive


def commit_link(repo: Path, name: str, target: str) -> None:
    (repo / name).symlink_to(target)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", f"add {name}")


def test_a_restore_through_a_link_to_dotgit_is_refused_and_no_hook_runs(
        client, repo: Path, tmp_path: Path) -> None:
    commit_link(repo, "dotgit", ".git")
    backup_of(tmp_path, repo, "evil", {"docs/readme.md": "hi\n",
                                       "dotgit/hooks/post-commit": HOOK})
    answer = client.post("/backup/restore", json={"name": "evil", "confirm": True}).json
    assert answer["status"] == "failed" and answer["error"]["code"] == "archive_refused"
    assert "'dotgit/hooks/post-commit'" in answer["error"]["message"]
    assert ".git" in answer["error"]["message"]
    assert not (repo / ".git/hooks/post-commit").exists()
    assert not (repo / "docs").exists()  # all or nothing
    (repo / "next.txt").write_text("next\n")
    git(repo, "add", "next.txt")
    git(repo, "commit", "-q", "-m", "next")
    assert not (tmp_path / "pwned").exists()


def test_import_of_the_same_archive_is_refused(client, repo: Path, tmp_path: Path) -> None:
    commit_link(repo, "dotgit", ".git")
    archive = backup_of(tmp_path, repo, "evil", {"dotgit/config": "[core]\n"})
    archive.rename(repo / "incoming.tar.gz")
    answer = client.post("/backup/import", json={"path": "incoming.tar.gz",
                                                 "confirm": True}).json
    assert answer["error"]["code"] == "archive_refused", answer
    assert "'dotgit/config'" in answer["error"]["message"]


@pytest.mark.parametrize("link", ["/outside", "../outside", "inside/../../outside"])
def test_a_link_out_of_the_project_is_refused(client, repo: Path, tmp_path: Path,
                                              link: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "inside").mkdir()
    commit_link(repo, "link", str(outside) if link == "/outside" else link)
    backup_of(tmp_path, repo, "evil", {"link/x": "planted\n"})
    answer = client.post("/backup/restore", json={"name": "evil", "confirm": True}).json
    assert answer["error"]["code"] == "archive_refused", answer
    assert "'link/x'" in answer["error"]["message"] and "outside" in answer["error"]["message"]
    assert list(outside.iterdir()) == []


def test_a_chain_of_links_into_dotgit_is_refused(client, repo: Path, tmp_path: Path) -> None:
    (repo / "a").mkdir()
    commit_link(repo, "a/up", "..")
    commit_link(repo, "hop", "a/up/a/up/.GIT")  # case-insensitive filesystems: still .git
    backup_of(tmp_path, repo, "evil", {"hop/hooks/pre-commit": HOOK})
    answer = client.post("/backup/restore", json={"name": "evil", "confirm": True}).json
    assert answer["error"]["code"] == "archive_refused", answer
    assert not list((repo / ".git/hooks").glob("pre-commit"))


def test_a_link_loop_is_refused(client, repo: Path, tmp_path: Path) -> None:
    commit_link(repo, "loop", "loop")
    backup_of(tmp_path, repo, "evil", {"loop/x": "x\n"})
    answer = client.post("/backup/restore", json={"name": "evil", "confirm": True}).json
    assert answer["error"]["code"] == "archive_refused", answer
    assert "links" in answer["error"]["message"]


def test_a_symlinked_directory_inside_the_project_stays_usable(client, repo: Path,
                                                               tmp_path: Path) -> None:
    (repo / "docs").mkdir()
    commit_link(repo, "manual", "docs")
    commit_link(repo, "abs-manual", str(repo / "docs"))
    backup_of(tmp_path, repo, "good", {"manual/guide.md": "guide\n",
                                       "abs-manual/more/faq.md": "faq\n"})
    answer = client.post("/backup/restore", json={"name": "good", "confirm": True}).json
    assert answer["status"] == "ok", answer
    assert (repo / "docs/guide.md").read_text() == "guide\n"
    assert (repo / "docs/more/faq.md").read_text() == "faq\n"
    assert (repo / "manual").is_symlink()


def test_a_link_as_the_last_component_is_replaced_not_written_through(
        client, repo: Path, tmp_path: Path) -> None:
    commit_link(repo, "notes.md", ".git/config")
    config = (repo / ".git/config").read_text()
    backup_of(tmp_path, repo, "good", {"notes.md": "notes\n"})
    answer = client.post("/backup/restore", json={"name": "good", "confirm": True}).json
    assert answer["status"] == "ok", answer
    assert not (repo / "notes.md").is_symlink()
    assert (repo / "notes.md").read_text() == "notes\n"
    assert (repo / ".git/config").read_text() == config


def test_a_generator_writing_into_dotgit_through_a_link_is_refused(client, repo: Path) -> None:
    commit_link(repo, "dotgit", ".git")
    config = (repo / ".git/config").read_text()
    answer = client.post("/security/generate/gitignore", json={
        "output": "dotgit/config", "write": True, "overwrite": True})
    assert answer.status_code == 422, answer.json
    assert "output" in answer.json["fields"] and ".git" in answer.json["fields"]["output"]
    assert (repo / ".git/config").read_text() == config
    preview = client.post("/security/generate/gitignore", json={"output": "dotgit/info/x"})
    assert preview.status_code == 422


def test_a_generator_writes_through_a_symlinked_directory_inside(client, repo: Path) -> None:
    (repo / "real").mkdir()
    commit_link(repo, "alias", "real")
    answer = client.post("/security/generate/gitignore", json={
        "output": "alias/.gitignore", "write": True}).json
    assert answer["status"] == "ok" and answer["written"] is True, answer
    assert (repo / "real/.gitignore").is_file()


def test_a_vault_written_through_a_link_into_dotgit_is_refused(client, repo: Path) -> None:
    commit_link(repo, "dotgit", ".git")
    answer = client.post("/vault/create", json={"vault": "dotgit/vault.json",
                                                "passphrase": "correct horse battery"})
    assert answer.status_code in (200, 422), answer.json
    assert answer.status_code == 422 or answer.json["status"] == "failed", answer.json
    assert not (repo / ".git/vault.json").exists()


def test_the_writer_refuses_what_a_link_put_in_place_after_the_check(repo: Path) -> None:
    """The check and the write are one walk: swapping a directory for a link is caught."""
    (repo / "out").mkdir()
    target = (repo / "out/file.txt").resolve()
    (repo / "out").rmdir()
    (repo / "out").symlink_to(".git")  # swapped after the caller resolved its path
    with pytest.raises(UnsafePath):
        write_atomic(target, b"x", root=repo)
    assert not (repo / ".git/file.txt").exists()


def zeros_archive(path: Path, size: int) -> None:
    """A real backup whose one member is *size* zero bytes: gzip makes it ~1000:1."""
    digest = hashlib.sha256()
    block = bytes(1 << 20)
    for _ in range(size >> 20):
        digest.update(block)
    manifest = json.dumps({"format": "scp-backup", "version": 1, "files": [
        {"path": "zeros.bin", "size": size, "sha256": digest.hexdigest()}]}).encode()
    with gzip.open(path, "wb", compresslevel=9) as raw, \
            tarfile.open(fileobj=raw, mode="w|") as tar:
        info = tarfile.TarInfo("zeros.bin")
        info.size = size
        tar.addfile(info, io.BytesIO(bytes(size)))
        info = tarfile.TarInfo("MANIFEST.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))


def test_an_archive_bomb_is_refused_while_streaming(client, repo: Path) -> None:
    archive = repo / BACKUPS / "bomb.tar.gz"
    archive.parent.mkdir(parents=True)
    zeros_archive(archive, 200 << 20)
    ratio = (200 << 20) / archive.stat().st_size
    assert ratio > 900, ratio
    started = time.monotonic()
    answer = client.post("/backup/restore", json={"name": "bomb", "confirm": True}).json
    assert answer["error"]["code"] == "archive_refused", answer
    assert "archive bomb" in answer["error"]["message"]
    assert time.monotonic() - started < 30
    assert not (repo / "zeros.bin").exists()
    assert [p for p in (repo / BACKUPS).iterdir() if p.name != "bomb.tar.gz"] == []


def test_a_compressible_archive_under_the_floor_restores(client, repo: Path) -> None:
    archive = repo / BACKUPS / "sparse.tar.gz"
    archive.parent.mkdir(parents=True)
    zeros_archive(archive, 8 << 20)  # 1000:1, but 8 MiB: below the floor
    answer = client.post("/backup/restore", json={"name": "sparse", "confirm": True}).json
    assert answer["status"] == "ok", answer
    assert os.path.getsize(repo / "zeros.bin") == 8 << 20


def test_backups_are_not_written_into_dotgit_through_a_link(client, repo: Path) -> None:
    commit_link(repo, ".controlplane", ".git")
    answer = client.post("/backup/create", json={"paths": ["README.md"], "name": "b"}).json
    assert answer["status"] == "failed" and answer["error"]["code"] == "unsafe_path", answer
    assert ".git" in answer["error"]["message"]
    assert not (repo / ".git/backups").exists()


def test_two_members_landing_on_one_file_through_a_link_are_refused(client, repo: Path,
                                                                    tmp_path: Path) -> None:
    (repo / "real").mkdir()
    commit_link(repo, "alias", "real")
    assert check(repo, "alias/new/dir/x").resolved == "real/new/dir/x"  # not made yet
    backup_of(tmp_path, repo, "twice", {"alias/new/x": "one\n", "real/new/x": "two\n"})
    answer = client.post("/backup/restore", json={"name": "twice", "confirm": True}).json
    assert answer["error"]["code"] == "archive_refused", answer
    assert "same file" in answer["error"]["message"]
    assert not (repo / "real/new").exists()
