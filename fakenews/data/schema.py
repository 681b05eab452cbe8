"""Column checks shared by every stage that reads a table, and the model's input rule."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from fakenews.errors import PipelineError

# Every model's columns: `title` in; `fake_probability` and `predicted_label` out.
TITLE, OUTPUT, LABEL = "title", "fake_probability", "predicted_label"


def require_columns(frame: pd.DataFrame, columns: Iterable[str], source: Path | str) -> None:
    """Fail with the missing and the found columns named, so the fix is obvious."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        found = ", ".join(map(shown_name, frame.columns)) or "(none)"
        raise PipelineError(
            f"{source}: missing column(s) {', '.join(missing)}; columns found: {found}"
        )


def shown_name(name) -> str:
    """A column name as it reads in a one-line message: quoted when it holds a line break,
    a NUL or other characters that do not print."""
    text = str(name)
    return text if text.isprintable() else repr(text)


def require_unique_ids(frame: pd.DataFrame, source: Path | str, column: str = "id") -> None:
    """Fail, naming up to five repeated ids and their counts, unless every id is unique:
    each join by id must be one-to-one, or rows are duplicated across splits."""
    counts = frame[column].value_counts()
    repeated = counts[counts > 1]
    if repeated.empty:
        return
    shown = ", ".join(f"{value!r} ({n} rows)" for value, n in repeated.head(5).items())
    more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
    raise PipelineError(
        f"{source}: {len(repeated)} {column}(s) appear in more than one row: {shown}{more}; "
        "ids must be unique for a join by id (rerun the pipeline: ingest refuses repeats)"
    )


def read_table(path: Path | str, columns: Iterable[str]) -> pd.DataFrame:
    """Read a stage's Parquet output and check it has the columns the caller needs."""
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"{path}: not found; run the stage that writes it (dvc repro)")
    frame = pd.read_parquet(path)
    require_columns(frame, columns, path)
    return frame


def non_string_rows(values: list, first_row: int = 0, shown: int = 10) -> str | None:
    """The rows holding something other than a title string, as 'row 1 (missing), row 4
    (int) and 3 more' (rows numbered from `first_row`); None when every value is a string.
    The one input rule of every model, checked by the model itself and, before any model
    loads, by batch scoring."""
    bad = [(first_row + i, value) for i, value in enumerate(values) if not isinstance(value, str)]
    if not bad:
        return None
    more = f" and {len(bad) - shown} more" if len(bad) > shown else ""
    return ", ".join(f"row {row} ({_kind(value)})" for row, value in bad[:shown]) + more


def _kind(value) -> str:
    """What a non-string cell holds: `missing` for a null read as NaN (pandas' str columns)."""
    return "missing" if isinstance(value, float) and value != value else type(value).__name__
