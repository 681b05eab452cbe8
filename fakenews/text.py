"""Headline cleaning, as the LSTM and its served model both need it: NLTK from an offline
folder, then lowercase → word_tokenize → drop punctuation and stopwords → WordNet lemmas.

The clean stage writes these tokens for training; the logged LSTM model cleans every
headline it serves with the same function and the settings it was trained with.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from fakenews.data.params import project_path
from fakenews.data.sections import CleanParams
from fakenews.errors import PipelineError

REQUIRED_CORPORA = {"stopwords": "corpora/stopwords", "wordnet": "corpora/wordnet"}


def use_nltk_data(folder: Path | str) -> None:
    """Point NLTK at `folder` (first on its search path) and check the corpora are there."""
    import nltk

    folder = str(Path(folder).resolve())
    if folder not in nltk.data.path:
        nltk.data.path.insert(0, folder)
    missing = [
        name for name, resource in REQUIRED_CORPORA.items() if not _found(Path(folder), resource)
    ]
    if missing:
        raise PipelineError(
            f"NLTK data missing from {folder}: {', '.join(missing)}. Put "
            f"corpora/stopwords.zip and corpora/wordnet.zip there (for example "
            f"`python -m nltk.downloader -d {folder} {' '.join(missing)}` on a machine "
            "with internet), or set clean.nltk_data in params.yaml to a folder that has them"
        )


def _found(folder: Path, resource: str) -> bool:
    """Only the configured folder counts: a stray copy elsewhere must not hide a bad setting.

    NLTK reads a corpus unpacked or as a .zip where the folder would be.
    """
    return (folder / resource).is_dir() or (folder / f"{resource}.zip").is_file()


@functools.lru_cache(maxsize=4)
def stopword_set(language: str) -> frozenset[str]:
    from nltk.corpus import stopwords

    return frozenset(stopwords.words(language))


@functools.lru_cache(maxsize=1)
def lemmatizer():
    from nltk.stem import WordNetLemmatizer

    return WordNetLemmatizer()


def is_punctuation(token: str) -> bool:
    return all(unicodedata.category(ch)[0] in "PS" for ch in token)


def clean_title(title: str, settings: CleanParams) -> list[str]:
    """One headline → its cleaned tokens. Needs `use_nltk_data` to have run first."""
    from nltk.tokenize import word_tokenize

    text = title.lower() if settings.lowercase else title
    tokens: Iterable[str] = word_tokenize(text, preserve_line=True)  # no Punkt offline
    if settings.drop_punctuation:
        tokens = [t for t in tokens if not is_punctuation(t)]
    if settings.drop_stopwords:
        stops = stopword_set(settings.language)
        tokens = [t for t in tokens if t not in stops]
    if settings.lemmatize:
        lemma = lemmatizer().lemmatize
        tokens = [lemma(t) for t in tokens]
    return [t for t in tokens if len(t) >= settings.min_token_length]


def clean_titles(titles: Iterable[object], settings: CleanParams) -> list[list[str]]:
    """Many headlines at once; non-strings count as empty headlines."""
    use_nltk_data(project_path(settings.nltk_data))
    return [clean_title(t if isinstance(t, str) else "", settings) for t in titles]
