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
def lemmatizer() -> NounLemmatizer:
    return NounLemmatizer()


class NounLemmatizer:
    """`nltk.stem.WordNetLemmatizer().lemmatize(word)`, for its default part of speech (the
    noun, the only one cleaning asks for), without loading all of WordNet.

    NLTK's WordNet reader parses every index and exception file on first use: about 2 s of
    CPU in every process that cleans a headline (the clean stage, training, each served or
    scored LSTM, each Spark worker). A noun's lemma reads only index.noun and noun.exc, so
    this loads just those, from the same NLTK data folder, and runs NLTK's own `_morphy`
    on them. tests/test_clean.py proves the lemmas identical to NLTK's for every word in
    WordNet and every token of the corpus.
    """

    def __init__(self) -> None:
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader

        # What WordNetCorpusReader._morphy reads from its instance, for the noun only.
        self.MORPHOLOGICAL_SUBSTITUTIONS = WordNetCorpusReader.MORPHOLOGICAL_SUBSTITUTIONS
        self._nltk_morphy = WordNetCorpusReader._morphy
        try:  # unpacked, else zipped: where NLTK's own corpus loader looks
            wordnet = nltk.data.find("corpora/wordnet")
        except LookupError:
            wordnet = nltk.data.find("corpora/wordnet.zip/wordnet/")
        with wordnet.join("index.noun").open(encoding="utf8") as lines:
            nouns = (line.split(None, 1)[0] for line in lines if not line.startswith(" "))
            self._lemma_pos_offset_map = dict.fromkeys(nouns, _NOUN)
        with wordnet.join("noun.exc").open(encoding="utf8") as lines:
            self._exception_map = {"n": {t[0]: t[1:] for t in map(str.split, lines)}}

    def lemmatize(self, word: str) -> str:
        lemmas = self._nltk_morphy(self, word, "n")
        return min(lemmas, key=len) if lemmas else word


_NOUN = frozenset("n")


def is_punctuation(token: str) -> bool:
    return all(unicodedata.category(ch)[0] in "PS" for ch in token)


def clean_title(title: str, settings: CleanParams) -> list[str]:
    """One headline → its cleaned tokens, the reference way: NLTK on the whole string.
    Needs `use_nltk_data` to have run first. HeadlineCleaner gives the same tokens faster."""
    from nltk.tokenize import word_tokenize

    text = title.lower() if settings.lowercase else title
    tokens = word_tokenize(text, preserve_line=True)  # no Punkt offline
    return [kept for kept in map(token_cleaner(settings), tokens) if kept is not None]


@functools.lru_cache(maxsize=8)
def token_cleaner(settings: CleanParams):
    """What cleaning makes of one token, the same wherever it stands: None when it is
    dropped (punctuation, a stopword, too short), else its lemma. Memoised, since a corpus
    has far fewer distinct tokens than tokens."""
    stops = stopword_set(settings.language) if settings.drop_stopwords else frozenset()
    lemma = lemmatizer().lemmatize if settings.lemmatize else None

    @functools.lru_cache(maxsize=1 << 18)
    def clean(token: str) -> str | None:
        if settings.drop_punctuation and is_punctuation(token):
            return None
        if token in stops:
            return None
        token = lemma(token) if lemma else token
        return token if len(token) >= settings.min_token_length else None

    return clean


# Characters NLTK's final-period rule lets stand between a headline's last period and its
# end: a trailing run of words made only of these belongs to the last word's context.
_CLOSERS = frozenset("])}>\"'»”’")
_SENTINEL = "x"


class HeadlineCleaner:
    """clean_title's tokens without running NLTK's regexes on every headline.

    NLTK's Treebank rules look at a word's neighbours only through the single space
    around it, and at the string's ends. So each word is tokenized once, between sentinel
    words that stand in for its neighbours ("x w x"; at the start "w x"), and remembered;
    the last word (with any trailing words of closing quotes and brackets, which the
    final-period rule can reach across) is tokenized at the string's end ("x tail").
    A headline with any whitespace but single spaces goes the reference way, and so does
    any word whose sentinels do not come back intact. tests/test_clean.py proves the
    tokens identical to clean_title's on the whole corpus.

    What a headline costs once its words are known: one dictionary lookup per word (one
    dictionary per place a word can stand: first, inside, last). Each dictionary is
    emptied when it reaches `cache_size` words, so memory stays bounded on endless input.
    """

    def __init__(self, settings: CleanParams, cache_size: int = 1 << 18) -> None:
        from nltk.tokenize.destructive import NLTKWordTokenizer

        self.settings = settings
        self._nltk = NLTKWordTokenizer().tokenize
        self._clean = token_cleaner(settings)
        self._cache_size = cache_size
        # (neighbour before?, neighbour after?) -> {text: its cleaned tokens, or None}
        self._known: dict[tuple[bool, bool], dict[str, tuple[str, ...] | None]] = {
            place: {} for place in ((False, True), (True, True), (False, False), (True, False))
        }

    def _cleaned(self, tokens: Iterable[str]) -> list[str]:
        return [kept for kept in map(self._clean, tokens) if kept is not None]

    def _tokens_between(self, text: str, before: bool, after: bool) -> tuple[str, ...] | None:
        """The cleaned tokens of `text` with a neighbour word before and/or after it,
        remembered; None when the sentinels do not come back intact."""
        known = self._known[before, after]
        if text in known:
            return known[text]
        tokens = self._nltk(f"{_SENTINEL} " * before + text + f" {_SENTINEL}" * after)
        intact = (not before or (tokens and tokens[0] == _SENTINEL)) and (
            not after or (tokens and tokens[-1] == _SENTINEL)
        )
        cleaned = tuple(self._cleaned(tokens[before : len(tokens) - after])) if intact else None
        if len(known) >= self._cache_size:
            known.clear()
        known[text] = cleaned
        return cleaned

    def __call__(self, title: str) -> list[str]:
        text = title.lower() if self.settings.lowercase else title
        words = text.split(" ")
        if not text or len(text.split()) != len(words):  # other whitespace, or doubled
            return clean_title(title, self.settings)
        tail = len(words) - 1
        while tail > 0 and _CLOSERS.issuperset(words[tail]):
            tail -= 1
        tokens: list[str] = []
        if tail > 0:
            inside = self._known[True, True]
            for i, word in enumerate(words[:tail]):
                piece = inside.get(word) if i else self._known[False, True].get(word)
                if piece is None:  # not seen yet, or not cleanable in pieces
                    piece = self._tokens_between(word, i > 0, True)
                    if piece is None:
                        return clean_title(title, self.settings)
                tokens += piece
        piece = self._tokens_between(" ".join(words[tail:]), tail > 0, False)
        if piece is None:
            return clean_title(title, self.settings)
        return tokens + list(piece)


def clean_titles(titles: Iterable[object], settings: CleanParams) -> list[list[str]]:
    """Many headlines at once; non-strings count as empty headlines."""
    use_nltk_data(project_path(settings.nltk_data))
    cleaner = cleaner_for(settings)
    return [cleaner(t) if isinstance(t, str) else [] for t in titles]


@functools.lru_cache(maxsize=8)
def cleaner_for(settings: CleanParams) -> HeadlineCleaner:
    """One cleaner (and its memory of words seen) per settings, for the whole process."""
    return HeadlineCleaner(settings)
