"""``python -m controlplane``."""

from controlplane.cli_fast import main

main()
