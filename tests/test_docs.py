"""The docs stay honest: every setting and every action is documented."""

from __future__ import annotations

import re
from pathlib import Path

from controlplane.core.settings import SETTINGS

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "settings.md").read_text()
    for setting in SETTINGS:
        assert f"| `{setting.name}` | `{setting.env}` |" in text, setting.name
    documented = set(re.findall(r"^\| `(\w+)` \| `CONTROLPLANE_", text, re.MULTILINE))
    assert documented == {s.name for s in SETTINGS}
