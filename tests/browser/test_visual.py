"""Visual regression: the main pages compared with committed screenshots, in Debian chromium.

Seeded demo data (``demo.fill`` with a fixed seed, ending at today's UTC midnight so every run
falls on the same calendar day offsets and inside a 7-day or wider window), a fixed browser clock
(Playwright's clock API, noon of that day, UTC), absolute dates and run ids masked (they name
today's date), one repository commit with fixed dates (its id shows as the code ref).

Baselines live in ``tests/browser/baselines/<chromium major>/``. Update them on purpose with
``CONTROLPLANE_UPDATE_BASELINES=1 python3 -m pytest tests/browser/test_visual.py`` and look at
them before committing. A differing screenshot is written under the test's tmp path
(``actual.png``, ``diff.png``) and named in the failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controlplane.core import demo
from controlplane.core.ledger import Ledger
from tests.browser.conftest import CHROMIUM, DEMO_TESTS, browser_tool_env
from tests.conftest import GIT_ENV, TOKEN

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")
try:
    from PIL import Image, ImageChops
except ImportError:
    if os.environ.get("CI") == "true":
        raise  # the test extra installs Pillow: missing under CI is a failure, not a skip
    pytest.skip("Pillow is missing (pip install -e '.[test]')", allow_module_level=True)

BASELINES = Path(__file__).parent / "baselines"
UPDATE = os.environ.get("CONTROLPLANE_UPDATE_BASELINES") == "1"
SEED = 16
VIEWPORTS = {"desktop": {"width": 1920, "height": 1080}, "phone": {"width": 390, "height": 844}}
PAGES = ("dashboard", "failed-run", "integration", "metrics")
CHANNEL_SLACK = 24  # a pixel differs when a channel moves more than this (anti-aliasing)
TOLERANCE = 0.003  # the share of differing pixels a screenshot may have
# Texts that name today's date (or a run id, which starts with it): masked in every screenshot.
# The machine's host name is masked too (demo runs record it).
MASKED = ("time", ".crumbs .mono", "[data-run-facts] .mono", "table[data-per-day] tbody th",
          ".chart__tick:not(.chart__tick--y)", ".facts__row:has(dt:text-is('Host')) dd",
          "[data-processes] [data-cell=pid]", "[data-processes] [data-cell=host]",
          "[data-processes] [data-cell=heartbeat]")


def chromium_major() -> str:
    version = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True,
                             check=True).stdout
    found = re.search(r"(\d+)\.", version)
    assert found, f"chromium --version said {version!r}"
    return found.group(1)


def fixed_git(repo: Path, *args: str) -> None:
    when = "2026-01-01T00:00:00+00:00"
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                   env={**os.environ, **GIT_ENV, "GIT_AUTHOR_DATE": when,
                        "GIT_COMMITTER_DATE": when})


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The demo project, its commits with fixed dates (the code ref shown is the same)."""
    repo = tmp_path / "project"
    repo.mkdir()
    fixed_git(repo, "init", "-q", "-b", "main")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_demo.py").write_text(DEMO_TESTS)
    (repo / ".gitignore").write_text("gate\n__pycache__/\n")
    fixed_git(repo, "add", ".")
    fixed_git(repo, "commit", "-q", "-m", "demo suite")
    return repo


def midnight_utc() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture
def seeded(project: Path) -> tuple[str, datetime]:
    """150 demo runs over the 6 days before today's UTC midnight: the newest failed one, that
    midnight. Any metrics window of 7 days or more holds them all, whatever the hour."""
    midnight = midnight_utc()
    ledger = Ledger.open(project)
    ids = demo.fill(ledger, runs=150, days=6, seed=SEED, now=midnight.timestamp())
    failed = [i for i in ids if (ledger.get(i) or {}).get("status") == "failed"]
    assert failed, "the seeded demo data has no failed run"
    return failed[-1], midnight


@pytest.fixture(scope="module")
def baseline_dir() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (CI installs Debian's chromium package)")
    found = BASELINES / chromium_major()
    if not found.is_dir() and not UPDATE:  # a browser upgrade: new baselines are a human's call
        have = sorted(p.name for p in BASELINES.iterdir() if p.is_dir())
        pytest.skip(f"no visual baselines for browser major {found.name} (have {have}): look at "
                    "the pages, then CONTROLPLANE_UPDATE_BASELINES=1 python3 -m pytest "
                    "tests/browser/test_visual.py")
    return found


@pytest.fixture
def shots(browser: Any, serve: Any, seeded: tuple[str, datetime],
          tmp_path: Path) -> Iterator[Any]:
    """Take the screenshot of one page in one viewport (a fresh context each).

    *tweak* is script run before the shot (the pages' CSP refuses added style sheets).
    The tools' PATH holds only git and Python, so the settings warning names the same
    missing tools on every machine."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for name, target in (("git", shutil.which("git")), ("python3", sys.executable)):
        assert target, name
        (tools / name).symlink_to(target)
    server = serve(TOOL_ENV={**browser_tool_env(), "PATH": str(tools)})
    failed_run, midnight = seeded
    paths = {"dashboard": "/", "failed-run": f"/runs/{failed_run}",
             "integration": "/integrations/testing", "metrics": "/metrics"}
    opened: list[Any] = []

    def shoot(page_name: str, viewport: str, tweak: str = "") -> bytes:
        context = browser.new_context(base_url=server.url, viewport=VIEWPORTS[viewport],
                                      timezone_id="UTC", locale="en-GB",
                                      reduced_motion="reduce", color_scheme="light")
        opened.append(context)
        page = context.new_page()
        page.clock.set_fixed_time(midnight + timedelta(hours=12))
        page.goto(f"/login?token={TOKEN}&next={paths[page_name]}")
        sync_api.expect(page.locator("[data-conn]")).to_have_attribute(
            "data-state", "connected", timeout=20_000)
        help_card = page.locator("[data-help]:visible")
        if help_card.count():  # the first-visit help would fill a phone's screen: dismissed
            help_card.locator("[data-help-dismiss]").click()
            sync_api.expect(page.locator("[data-help]:visible")).to_have_count(0)
        page.wait_for_load_state("networkidle")
        page.evaluate("document.fonts.ready")
        if tweak:
            page.evaluate(tweak)
        masks = [page.locator(css) for css in MASKED]
        return page.screenshot(mask=masks, animations="disabled", caret="hide")

    yield shoot
    for context in opened:
        context.close()


def differing_share(expected: Path, actual: bytes, out: Path) -> float:
    """The share of pixels that differ by more than CHANNEL_SLACK; writes the diff to *out*."""
    import io

    before = Image.open(expected).convert("RGB")
    after = Image.open(io.BytesIO(actual)).convert("RGB")
    if before.size != after.size:
        return 1.0
    diff = ImageChops.difference(before, after)
    mask = diff.convert("L").point(lambda v: 255 if v > CHANNEL_SLACK else 0)
    changed = mask.histogram()[255]
    if changed:
        out.mkdir(parents=True, exist_ok=True)
        after.save(out / "actual.png")
        mask.save(out / "diff.png")
    return changed / (before.size[0] * before.size[1])


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("page_name", PAGES)
def test_page_looks_like_its_baseline(page_name: str, viewport: str, shots: Any,
                                      baseline_dir: Path, tmp_path: Path) -> None:
    actual = shots(page_name, viewport)
    baseline = baseline_dir / f"{page_name}-{viewport}.png"
    if UPDATE:
        baseline.parent.mkdir(parents=True, exist_ok=True)
        baseline.write_bytes(actual)
        return
    assert baseline.exists(), (
        f"no baseline {baseline.relative_to(BASELINES.parent.parent.parent)} for chromium "
        f"{baseline_dir.name}: run CONTROLPLANE_UPDATE_BASELINES=1 python3 -m pytest "
        "tests/browser/test_visual.py, look at the PNGs, commit them")
    share = differing_share(baseline, actual, tmp_path / "visual")
    assert share <= TOLERANCE, (
        f"{page_name} ({viewport}) differs from {baseline.name} in {share:.2%} of its pixels "
        f"(tolerance {TOLERANCE:.2%}): see {tmp_path / 'visual'}; if intended, update the "
        "baselines with CONTROLPLANE_UPDATE_BASELINES=1")


def test_a_small_change_of_style_is_caught(shots: Any, baseline_dir: Path, tmp_path: Path) -> None:
    """The comparison sees a real change: buttons a little wider than the baseline's."""
    baseline = baseline_dir / "dashboard-desktop.png"
    if UPDATE or not baseline.exists():
        pytest.skip("the baselines are being written" if UPDATE else f"no {baseline}")
    wider = "document.querySelectorAll('.btn').forEach(b => { b.style.paddingInline = '1.5em' })"
    actual = shots("dashboard", "desktop", tweak=wider)
    assert differing_share(baseline, actual, tmp_path / "visual") > TOLERANCE
