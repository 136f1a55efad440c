"""Fixtures for the real-project corpus (``tests/corpus.py``): checkouts of pinned releases.

``corpus(name)`` answers a fresh copy (its own git repository) of a checkout prepared once
per session; ``repo`` is that copy when a test parametrizes it indirectly
(``@pytest.mark.parametrize("repo", ["click"], indirect=True)``), so ``make_app`` serves it.
A registry that cannot be reached skips, unless ``CI`` is set: then the test fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.corpus import PROJECTS, CorpusUnavailable, checkout


@pytest.fixture(scope="session")
def corpus_templates(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    prepared: dict[str, Path] = {}

    def template(name: str) -> Path:
        if name not in prepared:
            try:
                prepared[name] = checkout(PROJECTS[name],
                                          tmp_path_factory.mktemp("corpus") / name)
            except CorpusUnavailable as exc:
                if os.environ.get("CI"):
                    pytest.fail(f"corpus project unavailable under CI: {exc}")
                pytest.skip(f"registry unreachable, corpus project not cached: {exc}")
        return prepared[name]

    return template


@pytest.fixture
def corpus(corpus_templates: Callable[[str], Path], tmp_path: Path) -> Callable[[str], Path]:
    """``corpus("click")``: this test's own copy of the prepared checkout."""

    def copy(name: str) -> Path:
        dest = tmp_path / "corpus" / name
        shutil.copytree(corpus_templates(name), dest, symlinks=True)
        return dest

    return copy


@pytest.fixture
def repo(request: pytest.FixtureRequest, corpus: Callable[[str], Path]) -> Path:
    """The corpus project named by the test's indirect parameter (default click)."""
    return corpus(getattr(request, "param", "click"))
