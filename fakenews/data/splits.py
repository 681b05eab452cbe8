"""The split assignment (id, label, split) and the join every consumer makes with it.

`split` writes only which headline goes where; each stage joins the columns it needs by
id, so a change to cleaning or embedding does not touch what BERT trains on.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fakenews.data.schema import read_table, require_unique_ids
from fakenews.errors import PipelineError

SPLITS = ("train", "val", "test")
ASSIGNMENT_COLUMNS = ["id", "label", "split"]


def read_assignment(path: Path | str) -> pd.DataFrame:
    """The split stage's output, checked: the columns, and only known split names."""
    assignment = read_table(path, ASSIGNMENT_COLUMNS)
    unknown = sorted(set(assignment["split"]) - set(SPLITS))
    if unknown:
        raise PipelineError(
            f"{path}: column 'split' holds {', '.join(map(str, unknown))}; "
            f"expected only {', '.join(SPLITS)}"
        )
    return assignment


def join_splits(
    assignment: pd.DataFrame,
    table: pd.DataFrame,
    source: Path | str,
    assignment_source: Path | str = "the split assignment",
) -> dict[str, pd.DataFrame]:
    """{"train": ..., "val": ..., "test": ...}: `table`'s rows for each split's ids, in the
    assignment's order, with the assignment's label. Every assigned id must be in `table`,
    and the join is one-to-one: an id repeated on either side is refused, since a
    many-to-many merge would put one id's rows in several splits."""
    require_unique_ids(assignment, assignment_source)
    require_unique_ids(table, source)
    columns = [c for c in table.columns if c not in ("label", "split")]
    joined = assignment.merge(
        table[columns], on="id", how="left", indicator=True, validate="one_to_one"
    )
    missing = joined.loc[joined["_merge"] == "left_only", "id"]
    if len(missing):
        shown = ", ".join(map(str, missing[:5])) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise PipelineError(
            f"{source}: {len(missing)} id(s) of the split assignment are missing "
            f"({shown}); rerun the pipeline (dvc repro) so both come from the same data"
        )
    joined = joined.drop(columns="_merge")
    return {
        name: joined[joined["split"] == name].drop(columns="split").reset_index(drop=True)
        for name in SPLITS
    }


def load_splits(
    assignment_path: Path | str, table_path: Path | str, columns: list[str]
) -> dict[str, pd.DataFrame]:
    """Read the assignment and a stage output with `columns` (id among them), and join them."""
    table = read_table(table_path, columns)
    return join_splits(read_assignment(assignment_path), table, table_path, assignment_path)
