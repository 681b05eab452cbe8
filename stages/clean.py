"""clean: the reference NLTK preprocessing (fakenews.text), keeping the raw title beside
the tokens. The BERT model reads the raw title; the LSTM reads the cleaned tokens."""

from __future__ import annotations

import pandas as pd

from fakenews.cli import stage_arg_parser
from fakenews.data.io import write_parquet
from fakenews.data.params import load_params, project_path
from fakenews.data.schema import read_table
from fakenews.data.sections import CleanParams
from fakenews.errors import cli_errors
from fakenews.text import clean_titles

INPUT_COLUMNS = ["id", "title", "label", "source"]


def clean(frame: pd.DataFrame, params: CleanParams) -> pd.DataFrame:
    """The core: add a `tokens` column (list of str) and keep everything else."""
    return frame.assign(tokens=clean_titles(frame["title"], params))


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = stage_arg_parser("clean", "Tokenise, drop stopwords, lemmatise headlines.")
    params = load_params(parser.parse_args(argv).params)
    frame = read_table(project_path(params.paths.ingested), INPUT_COLUMNS)
    cleaned = clean(frame, params.clean)
    write_parquet(cleaned, project_path(params.paths.cleaned))
    empty = int((cleaned["tokens"].str.len() == 0).sum())
    print(f"clean: {len(cleaned)} headlines, {empty} with no token left after cleaning")


if __name__ == "__main__":
    main()
