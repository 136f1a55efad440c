"""An operator downloads a backup from the backup page and uploads one through its form."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from controlplane.core.ledger import Ledger
from tests.conftest import bearer_client

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
BACKUPS = ".controlplane/backups"


def made_backup(server: Any, name: str) -> str:
    (server.repo / "docs").mkdir(exist_ok=True)
    (server.repo / "docs/guide.md").write_text("# Guide\n")
    made = bearer_client(server.app).post("/backup/create",
                                          json={"paths": ["docs"], "name": name}).json
    assert made["status"] == "ok", made
    return made["run_id"]


def test_download_via_the_link_and_upload_via_the_form(server, context, tmp_path: Path) -> None:
    made_run = made_backup(server, "nightly")
    page = context.new_page()
    page.goto("/integrations/backup")
    row = page.locator('[data-backup="nightly"]')
    expect(row.get_by_role("link", name=made_run)).to_be_visible()
    with page.expect_download() as waiting:
        row.get_by_role("link", name="Download nightly").click()
    download = waiting.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.name == "nightly.tar.gz"
    assert saved.read_bytes() == (server.repo / BACKUPS / "nightly.tar.gz").read_bytes()

    archives = page.get_by_role("region", name="Archives")
    archives.get_by_label("Archive to upload").set_input_files(str(saved))
    archives.get_by_label("Name").fill("from-browser")
    archives.get_by_role("button", name="Upload", exact=True).click()
    page.wait_for_url(re.compile(r"/runs/[0-9A-Za-z-]+$"))
    run_id = page.url.rsplit("/", 1)[1]
    run = Ledger.open(server.repo).get(run_id)
    assert run["subtype"] == "backup:upload" and run["status"] == "ok"
    assert (server.repo / BACKUPS / "from-browser.tar.gz").read_bytes() == saved.read_bytes()

    page.goto("/integrations/backup")
    uploaded = page.locator('[data-backup="from-browser"]')
    expect(uploaded.get_by_role("link", name=run_id)).to_be_visible()


def test_a_hostile_upload_shows_why_and_keeps_nothing(server, context, tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    evil.write_bytes(b"not an archive at all\n")
    page = context.new_page()
    page.goto("/integrations/backup")
    archives = page.get_by_role("region", name="Archives")
    archives.get_by_label("Archive to upload").set_input_files(str(evil))
    archives.get_by_role("button", name="Upload", exact=True).click()
    expect(page.get_by_text("file: ")).to_be_visible()
    assert not (server.repo / BACKUPS / "evil.tar.gz").exists()
    failed = Ledger.open(server.repo).index.recent(subtype="backup:upload")
    assert [r["status"] for r in failed] == ["failed"]


def test_the_backup_page_passes_axe(server, context) -> None:
    from tests.browser.test_accessibility import serious_violations

    made_backup(server, "nightly")
    page = context.new_page()
    page.goto("/integrations/backup")
    expect(page.locator('[data-backup="nightly"]')).to_be_visible()
    assert serious_violations(page) == []
