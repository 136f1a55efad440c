"""``python -m bench [--runs N] [--samples S] [--quick]``: the ledger benchmark."""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python bench` (the directory) rather than `python -m bench`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ledger_bench import main

if __name__ == "__main__":
    sys.exit(main())
