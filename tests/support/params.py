"""Typed params sections for tests, built the way a params file is read (and validated)."""

from __future__ import annotations

from typing import Any

from fakenews.data.params import params_from


def section(name: str, **values: Any):
    """The `name` section with `values` over its defaults, e.g. section("split", seed=7)."""
    return getattr(params_from({name: values}, f"test params ({name})"), name)
