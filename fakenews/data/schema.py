"""Column checks shared by every stage that reads a table."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from fakenews.errors import PipelineError


def require_columns(frame: pd.DataFrame, columns: Iterable[str], source: Path | str) -> None:
    """Fail with the missing and the found columns named, so the fix is obvious."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "(none)"
        raise PipelineError(
            f"{source}: missing column(s) {', '.join(missing)}; columns found: {found}"
        )


def read_table(path: Path | str, columns: Iterable[str]) -> pd.DataFrame:
    """Read a stage's Parquet output and check it has the columns the caller needs."""
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"{path}: not found; run the stage that writes it (dvc repro)")
    frame = pd.read_parquet(path)
    require_columns(frame, columns, path)
    return frame
