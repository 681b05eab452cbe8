"""The benchmark harness (`make bench`); see bench/harness.py."""
