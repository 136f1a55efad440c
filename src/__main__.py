"""``python -m controlplane``."""

from controlplane.cli import main

main()
