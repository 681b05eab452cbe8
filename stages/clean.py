"""clean: the reference NLTK preprocessing, keeping the raw title beside the tokens.

lowercase → word_tokenize → drop stopwords and punctuation → WordNet lemmatisation.
The BERT model reads the raw title; the LSTM reads the cleaned tokens.
"""
from __future__ import annotations

import unicodedata
from typing import Any, Iterable

import pandas as pd

from fakenews.cli import stage_arg_parser
from fakenews.data.io import write_parquet
from fakenews.data.params import project_path, stage_params
from fakenews.data.schema import read_table
from fakenews.errors import cli_errors
from fakenews.nltk_setup import lemmatizer, stopword_set, use_nltk_data

INPUT_COLUMNS = ["id", "title", "label", "source"]


def _is_punctuation(token: str) -> bool:
    return all(unicodedata.category(ch).startswith("P") or unicodedata.category(ch).startswith("S")
               for ch in token)


def clean_title(title: str, params: dict[str, Any]) -> list[str]:
    """One headline → its cleaned tokens. Needs `use_nltk_data` to have run first."""
    from nltk.tokenize import word_tokenize

    text = title.lower() if params.get("lowercase", True) else title
    tokens: Iterable[str] = word_tokenize(text, preserve_line=True)  # no Punkt offline
    if params.get("drop_punctuation", True):
        tokens = [t for t in tokens if not _is_punctuation(t)]
    if params.get("drop_stopwords", True):
        stops = stopword_set(params.get("language", "english"))
        tokens = [t for t in tokens if t not in stops]
    if params.get("lemmatize", True):
        lemma = lemmatizer().lemmatize
        tokens = [lemma(t) for t in tokens]
    min_len = int(params.get("min_token_length", 1))
    return [t for t in tokens if len(t) >= min_len]


def clean_titles(titles: Iterable[str], params: dict[str, Any]) -> list[list[str]]:
    """Many headlines at once; non-strings count as empty headlines."""
    use_nltk_data(project_path(params["nltk_data"]))
    return [clean_title(t if isinstance(t, str) else "", params) for t in titles]


def clean(frame: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """The core: add a `tokens` column (list of str) and keep everything else."""
    return frame.assign(tokens=clean_titles(frame["title"], params))


@cli_errors
def main(argv: list[str] | None = None) -> None:
    args = stage_arg_parser("clean", "Tokenise, drop stopwords, lemmatise headlines.").parse_args(argv)
    params = stage_params("clean", args.params)
    paths = stage_params("paths", args.params)
    frame = read_table(project_path(paths["ingested"]), INPUT_COLUMNS)
    cleaned = clean(frame, params)
    write_parquet(cleaned, project_path(paths["cleaned"]))
    empty = int((cleaned["tokens"].str.len() == 0).sum())
    print(f"clean: {len(cleaned)} headlines, {empty} with no token left after cleaning")


if __name__ == "__main__":
    main()
