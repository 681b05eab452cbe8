"""Data in and out: typed params and their loading, atomic writes, table schema checks and
the split assignment."""
