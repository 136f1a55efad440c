"""Benchmarks of the control plane (see docs/benchmarks.md); run with ``python -m bench``."""
