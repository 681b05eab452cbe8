"""The in-process engine: the input streamed in chunks through a loaded pyfunc model.

Memory holds one chunk (`score.chunk_rows` rows) and its scores, whatever the input's size;
the output grows on disk beside its target and is renamed into place when complete.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from fakenews.data.schema import LABEL, OUTPUT, TITLE
from fakenews.scoring.tables import Chunk, InputTable, bad_titles, table_writer


@dataclass
class Counts:
    """What the closing summary line reports."""

    rows: int = 0
    fake: int = 0
    empty: int = 0  # empty or whitespace-only titles, which a wrong --title-column shows up as

    def add(self, scored: pd.DataFrame, title_column: str) -> None:
        self.rows += len(scored)
        self.fake += int((scored[LABEL] == "fake").sum())
        self.empty += int(scored[title_column].astype(str).str.strip().eq("").sum())


def predict_in_batches(
    model, titles: list[Any], batch_size: int, progress: bool | None = None
) -> pd.DataFrame:
    """The model's output (fake_probability, predicted_label), `batch_size` titles per model
    call, with a progress bar on stderr; `progress=None` shows it only on a terminal."""
    parts = []
    with tqdm(
        total=len(titles),
        unit="title",
        desc="scoring",
        file=sys.stderr,
        disable=None if progress is None else not progress,
    ) as bar:
        for start in range(0, len(titles), batch_size):
            batch = titles[start : start + batch_size]
            # the raw titles: the model itself strips and cuts them to its own max length
            parts.append(model.predict(pd.DataFrame({TITLE: batch}))[[OUTPUT, LABEL]])
            bar.update(len(batch))
    if not parts:
        return pd.DataFrame({OUTPUT: np.zeros(0), LABEL: np.array([], dtype=object)})
    return pd.concat(parts, ignore_index=True)


def score_frame(
    frame: pd.DataFrame,
    model,
    title_column: str = "title",
    batch_size: int = 256,
    threshold: float | None = None,
    source: Path | str = "input",
    progress: bool | None = None,
    chunk: Chunk | None = None,
) -> pd.DataFrame:
    """`frame` with `fake_probability` and `predicted_label` (fake/real) added: the model's
    own label, or the label at `threshold` when one is given.

    `model` is anything with the pyfunc `predict` (a DataFrame with a `title` column in, a
    DataFrame with `fake_probability` and `predicted_label` out), e.g.
    `mlflow.pyfunc.load_model(uri)`.
    """
    bad_titles(frame, title_column, chunk, source)  # on the whole chunk: rows named in the file
    scores = predict_in_batches(model, frame[title_column].tolist(), batch_size, progress)
    probabilities, labels = scores[OUTPUT].to_numpy(), scores[LABEL].to_numpy()
    if threshold is not None:
        labels = np.where(probabilities >= threshold, "fake", "real")  # >= as in binary_metrics
    return frame.assign(**{OUTPUT: probabilities, LABEL: labels})


def score_table(
    table: InputTable,
    model,
    target: Path,
    title_column: str = "title",
    batch_size: int = 256,
    threshold: float | None = None,
    chunk_rows: int = 10_000,
    sep: str | None = None,
    progress: bool | None = None,
) -> Counts:
    """Score `table` chunk by chunk into `target` (CSV, TSV or Parquet by its name).

    A bad chunk (unreadable, a missing column, a non-string title) stops it with a
    PipelineError, and no output appears.
    """
    counts = Counts()
    with (
        table_writer(target, sep) as append,
        tqdm(
            unit="title",
            desc="scoring",
            file=sys.stderr,
            disable=None if progress is None else not progress,
        ) as bar,
    ):
        for chunk in table.chunks(chunk_rows):
            scored = score_frame(
                chunk.frame, model, title_column, batch_size, threshold, progress=False, chunk=chunk
            )
            append(scored)
            counts.add(scored, title_column)
            bar.update(len(scored))
    return counts
