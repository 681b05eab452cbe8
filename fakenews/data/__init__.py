"""Params, atomic I/O and table schema checks."""
