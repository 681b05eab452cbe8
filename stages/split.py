"""split: train / validation / test, stratified by label, duplicates kept together.

With `split.column` set it uses the dataset's own split instead: the values of that
ingested column (carried over by `ingest.csv.keep_columns`) map to train / val / test
through `split.column_values`, as fact-checking benchmarks ship them.

Titles that are equal after lowercasing and dropping everything but letters and digits
form one group, and a group lands in exactly one split, so no headline is judged on a
near-copy of itself. The test split is the one every model is judged on.

It writes only the assignment (id, label, split), read from the ingested headlines: the
training stages and evaluate join what they need by id (fakenews.data.splits), so a
change to cleaning or embedding never changes which rows a model trains or is tested on.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from fakenews.cli import stage_arg_parser
from fakenews.data.io import write_json, write_parquet
from fakenews.data.params import load_params, project_path
from fakenews.data.schema import read_table, require_unique_ids
from fakenews.data.sections import SplitParams, SplitValues
from fakenews.data.splits import ASSIGNMENT_COLUMNS, SPLITS
from fakenews.errors import PipelineError, cli_errors

INPUT_COLUMNS = ["id", "title", "label"]


def duplicate_key(titles: pd.Series) -> pd.Series:
    return titles.str.lower().str.replace(r"[\W_]+", "", regex=True)


def split(frame: pd.DataFrame, params: SplitParams) -> dict[str, pd.DataFrame]:
    """The core: {"train": ..., "val": ..., "test": ...}, the dataset's own split when
    `column` is set, else drawn with the sizes in params."""
    if params.column:
        return given_split(frame, params.column, params.column_values)
    return drawn_split(frame, params)


def given_split(frame: pd.DataFrame, column: str, values: SplitValues) -> dict[str, pd.DataFrame]:
    """The rows whose `column` holds one of `values[name]` form split `name`; every value
    must be mapped and every split get rows."""
    if column not in frame.columns:
        raise PipelineError(
            f"the ingested headlines have no column {column!r} (split.column); "
            "carry it over with ingest.csv.keep_columns"
        )
    name_of = {v.strip(): name for name in SPLITS for v in getattr(values, name)}
    raw = frame[column].astype(str).str.strip()
    unknown = raw[~raw.isin(list(name_of))]
    if len(unknown):
        counts = ", ".join(f"{v!r} ({n})" for v, n in unknown.value_counts().items())
        raise PipelineError(
            f"column {column!r} has values outside split.column_values: {counts}; mapped: {name_of}"
        )
    named = raw.map(name_of)
    parts = {name: frame[named == name].reset_index(drop=True) for name in SPLITS}
    empty = [name for name, part in parts.items() if part.empty]
    if empty:
        raise PipelineError(
            f"column {column!r}: no rows for split {', '.join(empty)}; check split.column_values"
        )
    return parts


def drawn_split(frame: pd.DataFrame, params: SplitParams) -> dict[str, pd.DataFrame]:
    """Stratified by label with the sizes in params, duplicate groups kept together."""
    test_size, val_size, seed = params.test_size, params.val_size, params.seed
    keyed = frame.assign(_group=duplicate_key(frame["title"]))
    # A group's label is its majority label; ingest already dropped conflicting titles.
    groups = keyed.groupby("_group")["label"].agg(lambda s: int(s.mean() >= 0.5))
    stratify = groups if groups.value_counts().min() >= 3 else None
    rest, test = train_test_split(groups, test_size=test_size, random_state=seed, stratify=stratify)
    val_share = val_size / (1 - test_size)
    stratify_rest = rest if stratify is not None and rest.value_counts().min() >= 2 else None
    train, val = train_test_split(
        rest, test_size=val_share, random_state=seed, stratify=stratify_rest
    )
    parts = {"train": train, "val": val, "test": test}
    return {
        name: keyed[keyed["_group"].isin(part.index)].drop(columns="_group").reset_index(drop=True)
        for name, part in parts.items()
    }


def assignment(parts: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row a headline: id, label and the name of its split."""
    return pd.concat([part.assign(split=name) for name, part in parts.items()], ignore_index=True)[
        ASSIGNMENT_COLUMNS
    ]


def split_report(parts: dict[str, pd.DataFrame]) -> dict[str, Any]:
    total = sum(len(p) for p in parts.values())
    return {
        name: {
            "rows": int(len(part)),
            "share": round(len(part) / total, 4),
            "fake_rate": round(float(part["label"].mean()), 4) if len(part) else 0.0,
        }
        for name, part in parts.items()
    }


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = stage_arg_parser("split", "Split headlines into train/val/test.")
    params = load_params(parser.parse_args(argv).params)
    paths = params.paths
    frame = read_table(project_path(paths.ingested), INPUT_COLUMNS)  # and any split.column
    require_unique_ids(frame, project_path(paths.ingested))  # an id is assigned once
    parts = split(frame, params.split)
    write_parquet(assignment(parts), project_path(paths.split))
    report = split_report(parts)
    write_json(report, project_path(paths.split_metrics))
    print("split: " + ", ".join(f"{n}={r['rows']}" for n, r in report.items()))


if __name__ == "__main__":
    main()
