"""NLTK from a configured offline folder, with an actionable error when it is missing."""
from __future__ import annotations

import functools
from pathlib import Path

from fakenews.errors import PipelineError

REQUIRED = {"stopwords": "corpora/stopwords", "wordnet": "corpora/wordnet"}


def use_nltk_data(folder: Path | str) -> None:
    """Point NLTK at `folder` (first on its search path) and check the corpora are there."""
    import nltk

    folder = str(Path(folder).resolve())
    if folder not in nltk.data.path:
        nltk.data.path.insert(0, folder)
    missing = [name for name, resource in REQUIRED.items() if not _found(Path(folder), resource)]
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
