"""The reliability and security campaign (issue 7): fuzzing, faults, load, attacks."""
