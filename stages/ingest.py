"""ingest: read the raw headline source into one tidy table (id, title, label, source).

Two source formats:
- ``fakenewsnet``: a folder of ``{gossipcop,politifact}_{fake,real}.csv`` files; the label
  and the source come from each file name.
- ``csv``: any CSV/TSV described in params (separator, header or column names, title
  column(s), label column, raw label values for fake and real).

Every id in the output is unique: a split assigns ids, so an id shared by two headlines
could put one in train and the other in test. Repeats are refused unless
`ingest.duplicate_ids: keep_first` says to keep each id's first row (counted as dropped).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from fakenews.cli import stage_arg_parser
from fakenews.data.io import csv_read_errors, write_json, write_parquet
from fakenews.data.params import load_params, project_path
from fakenews.data.schema import require_columns
from fakenews.data.sections import CsvParams, DuplicateIds, IngestParams, LabelValues
from fakenews.errors import PipelineError, cli_errors

FAKE, REAL = 1, 0
COLUMNS = ["id", "title", "label", "source"]
FAKENEWSNET_FILE = re.compile(r"^(?P<source>[a-z0-9]+)_(?P<label>fake|real)\.csv$")


def read_csv_file(
    path: Path, encoding_fix: str = "set ingest.csv.encoding in params.yaml", **read_args: Any
) -> pd.DataFrame:
    """Read a CSV as strings, turning the usual failures into one-paragraph errors.

    `encoding_fix` says how the caller's user picks another encoding (a param, a flag).
    """
    if not path.is_file():
        raise PipelineError(f"{path}: file not found")
    with csv_read_errors(path, read_args.get("encoding", "utf-8"), encoding_fix):
        return pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False, **read_args)


def read_fakenewsnet(folder: Path) -> pd.DataFrame:
    """All FakeNewsNet headline files in `folder`, labelled from their file names."""
    if not folder.is_dir():
        raise PipelineError(f"{folder}: FakeNewsNet folder not found")
    files = sorted(p for p in folder.iterdir() if FAKENEWSNET_FILE.match(p.name))
    if not files:
        raise PipelineError(
            f"{folder}: no files named like gossipcop_fake.csv / politifact_real.csv"
        )
    frames = []
    for path in files:
        match = FAKENEWSNET_FILE.match(path.name)
        raw = read_csv_file(path)
        require_columns(raw, ["id", "title"], path)
        frames.append(
            pd.DataFrame(
                {
                    "id": raw["id"],
                    "title": raw["title"],
                    "label": FAKE if match["label"] == "fake" else REAL,
                    "source": match["source"],
                    "file": path.name,
                    "row": range(2, len(raw) + 2),  # 1-based, after the header line
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def read_generic_csv(path: Path, spec: CsvParams) -> pd.DataFrame:
    """A CSV/TSV described by `spec` (the ``ingest.csv`` params section)."""
    read_args: dict[str, Any] = {
        "sep": spec.sep,
        "encoding": spec.encoding,
        "header": 0 if spec.header else None,
    }
    if spec.names:
        read_args["names"] = spec.names  # with a header line, `names` replaces it
    raw = read_csv_file(path, **read_args)
    raw.columns = [str(c) for c in raw.columns]
    id_columns = [spec.id_column] if spec.id_column else []
    require_columns(
        raw, [*spec.title_columns, spec.label_column, *id_columns, *spec.keep_columns], path
    )

    title = raw[spec.title_columns].apply(
        lambda row: spec.title_joiner.join(v for v in row if v.strip()), axis=1
    )
    label = map_labels(raw[spec.label_column], spec.labels, path, spec.label_column)
    first_row = 2 if spec.header else 1
    ids = raw[spec.id_column] if spec.id_column else [f"{path.stem}-{i}" for i in range(len(raw))]
    return pd.DataFrame(
        {
            "id": ids,
            "title": title if len(raw) else pd.Series(dtype=str),
            "label": label,
            "source": spec.source_name or path.stem,
            "file": path.name,
            "row": range(first_row, first_row + len(raw)),
            **{column: raw[column] for column in spec.keep_columns},
        }
    )


def map_labels(values: pd.Series, labels: LabelValues, path: Path, column: str) -> pd.Series:
    """Raw label values → 1 (fake) / 0 (real); unknown values fail with their counts."""
    mapping = {v.strip(): FAKE for v in labels.fake}
    mapping.update({v.strip(): REAL for v in labels.real})
    stripped = values.str.strip()
    unknown = stripped[~stripped.isin(list(mapping))]
    if len(unknown):
        counts = ", ".join(f"{v!r} ({n})" for v, n in unknown.value_counts().items())
        first_row = unknown.index[0] + 2
        raise PipelineError(
            f"{path}: column '{column}' has values outside the label mapping: {counts} "
            f"(first at row {first_row}); mapping knows fake={labels.fake} "
            f"real={labels.real}; fix ingest.csv.labels in params.yaml"
        )
    return stripped.map(mapping).astype("int64")


def tidy(
    raw: pd.DataFrame, origin: str, duplicate_ids: DuplicateIds = "refuse"
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drop empty titles, duplicate titles and titles seen with both labels; count each.
    Then every id must be unique (refuse_repeated_ids), or with `duplicate_ids:
    keep_first` the later rows of an id are dropped and counted.

    Titles are compared after trimming and collapsing white space, so two copies that
    differ only in spacing count as one headline. A row repeated whole is a duplicate
    title, not a repeated id: only ids that still name two headlines count.
    """
    title = raw["title"].astype(str).str.replace(r"\s+", " ", regex=True).str.strip()
    frame = raw.assign(title=title)
    empty = frame["title"] == ""
    frame = frame[~empty]
    conflicting_titles = frame.groupby("title")["label"].nunique().loc[lambda n: n > 1].index
    conflicting = frame["title"].isin(conflicting_titles)
    frame = frame[~conflicting]
    duplicate = frame.duplicated("title", keep="first")
    frame = frame[~duplicate]
    repeated_id = frame.duplicated("id", keep="first")
    if repeated_id.any() and duplicate_ids == "refuse":
        refuse_repeated_ids(frame, origin)
    frame = frame[~repeated_id]
    report = {
        "rows_read": int(len(raw)),
        "rows_kept": int(len(frame)),
        "dropped": {
            "empty_title": int(empty.sum()),
            "conflicting_label": int(conflicting.sum()),
            "duplicate_title": int(duplicate.sum()),
            "duplicate_id": int(repeated_id.sum()),
        },
        "label_counts": {
            "fake": int((frame["label"] == FAKE).sum()),
            "real": int((frame["label"] == REAL).sum()),
        },
    }
    if frame.empty:
        raise PipelineError(
            f"{origin}: zero usable rows ({report['rows_read']} read; dropped "
            + ", ".join(f"{k}={v}" for k, v in report["dropped"].items())
            + ")"
        )
    extra = [c for c in frame.columns if c not in (*COLUMNS, "file", "row")]  # csv.keep_columns
    return frame[COLUMNS + extra].reset_index(drop=True), report


def refuse_repeated_ids(frame: pd.DataFrame, origin: str) -> None:
    """The PipelineError for ids used by more than one headline: the first such id with
    both of its rows (file and line), and how many other ids repeat."""
    repeated = frame[frame.duplicated("id", keep=False)]
    first_id = repeated["id"].iloc[0]
    first, second = (
        _row_where(row) for _, row in repeated[repeated["id"] == first_id][:2].iterrows()
    )
    others = repeated["id"].nunique() - 1
    raise PipelineError(
        f"{origin}: id {first_id!r} names two different headlines, {first} and {second}"
        + (f" ({others} more id(s) repeat)" if others else "")
        + "; ids must be unique, or a split could put one id in train and test. Fix the "
        "source, or set ingest.duplicate_ids: keep_first to keep each id's first row"
    )


def _row_where(row: pd.Series) -> str:
    where = f"{row['file']} row {row['row']}" if "file" in row else f"row {row.name}"
    return f"{where} ({_shortened(row['title'])!r})"


def _shortened(title: str, chars: int = 60) -> str:
    return title if len(title) <= chars else title[: chars - 3] + "..."


def ingest(params: IngestParams) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The core: read the configured source and return (table, report)."""
    path = project_path(params.path)
    if params.format == "fakenewsnet":
        raw = read_fakenewsnet(path)
    else:
        raw = read_generic_csv(path, params.csv)
    if params.max_rows_per_label:  # the first N rows of each label: the tiny profile
        raw = raw.groupby("label", group_keys=False, sort=False).head(params.max_rows_per_label)
    frame, report = tidy(raw, str(path), params.duplicate_ids)
    report["source"] = {"format": params.format, "path": params.path}
    return frame, report


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = stage_arg_parser("ingest", "Read raw headlines into one table.")
    params = load_params(parser.parse_args(argv).params)
    frame, report = ingest(params.ingest)
    write_parquet(frame, project_path(params.paths.ingested))
    write_json(report, project_path(params.paths.ingest_report))
    print(
        f"ingest: kept {report['rows_kept']} of {report['rows_read']} rows; dropped "
        f"{report['dropped']}"
    )


if __name__ == "__main__":
    main()
