"""The vocabulary params sections are written in (fakenews.data.sections): the strict,
closed, frozen Section base and the field types YAML values are checked against."""

from __future__ import annotations

import codecs
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field


def _as_strings(value: Any) -> list[str]:
    """YAML reads `title_columns: title` as a scalar and `fake: [1]` as a number; a list of
    strings is meant. A boolean is refused: YAML reads an unquoted `true` or `false` so."""
    items = [] if value is None else value if isinstance(value, (list, tuple)) else [value]
    if any(isinstance(item, bool) for item in items):
        raise ValueError(
            'YAML read an unquoted true/false/yes/no as a boolean; quote it, e.g. "false"'
        )
    if not all(isinstance(item, (str, int, float)) for item in items):
        raise ValueError(f"expected strings, got {items!r}")
    return [str(item) for item in items]


def _known_encoding(name: str) -> str:
    try:
        codecs.lookup(name)
    except LookupError:
        raise ValueError(
            f"unknown text encoding {name!r}; use e.g. utf-8, latin-1 or cp1252"
        ) from None
    return name


StrList = Annotated[list[str], BeforeValidator(_as_strings)]
Encoding = Annotated[str, AfterValidator(_known_encoding)]
# numpy and scikit-learn take seeds in [0, 2**32 - 1]; anything else fails deep inside them
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]
Positive = Annotated[int, Field(ge=1)]
NgramRange = Annotated[list[Positive], Field(min_length=2, max_length=2)]


class Section(BaseModel):
    """A params section: strict types, no unknown keys, immutable once read; no float is
    infinite or NaN (`.inf` and `.nan` are YAML floats, and no knob means them)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)
