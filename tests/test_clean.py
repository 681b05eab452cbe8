"""clean: the reference NLTK preprocessing on the offline corpora."""

from __future__ import annotations

import pandas as pd
import pytest

from fakenews.data.params import load_params
from fakenews.errors import PipelineError
from fakenews.text import clean_titles
from stages import clean as clean_stage
from tests.support.commands import PROJECT_ROOT

DEFAULTS = load_params(PROJECT_ROOT / "params.yaml").clean


def changed(settings, **changes):
    return settings.model_copy(update=changes)


@pytest.fixture()
def params(nltk_dir):
    return changed(DEFAULTS, nltk_data=str(nltk_dir))


def test_reference_steps(params):
    tokens = clean_titles(["The Stories of Wolves: They're Running, Again!"], params)[0]
    # lowercased, stopwords ("the", "of", "they", "again") and punctuation gone, lemmatised
    assert tokens == ["story", "wolf", "'re", "running"]


def test_each_step_can_be_switched_off(params):
    title = ["The Wolves!"]
    assert clean_titles(title, changed(params, lemmatize=False)) == [["wolves"]]
    assert clean_titles(title, changed(params, drop_stopwords=False)) == [["the", "wolf"]]
    assert clean_titles(title, changed(params, drop_punctuation=False)) == [["wolf", "!"]]
    assert clean_titles(title, changed(params, lowercase=False, drop_stopwords=False)) == [
        ["The", "Wolves"]
    ]


def test_odd_input_gives_empty_or_sane_tokens(params):
    out = clean_titles(["", "   ", None, "¿Qué pasó? Café—crème", "!!! ..."], params)
    assert out[0] == out[1] == out[2] == out[4] == []
    assert "café—crème" in out[3] or "café" in out[3]


def test_clean_keeps_raw_title_beside_tokens(params):
    frame = pd.DataFrame({"id": ["a"], "title": ["Dogs Bark"], "label": [0], "source": ["s"]})
    out = clean_stage.clean(frame, params)
    assert out.loc[0, "title"] == "Dogs Bark"
    assert list(out.loc[0, "tokens"]) == ["dog", "bark"]


def test_missing_nltk_data_says_what_to_install(tmp_path):
    with pytest.raises(PipelineError) as err:
        clean_titles(["x"], changed(DEFAULTS, nltk_data=str(tmp_path / "nowhere")))
    message = str(err.value)
    assert "nowhere" in message and "stopwords" in message and "wordnet" in message
    assert "nltk.downloader" in message


def corpus_titles(shared_data) -> list[str]:
    """Every raw FakeNewsNet title as the CSVs hold it (odd spacing and quoting included),
    and the headlines whose tokens hang on NLTK's rules at a string's ends and between words."""
    titles = []
    for path in sorted((shared_data / "fakenewsnet").glob("*.csv")):
        titles += pd.read_csv(path, dtype=str, keep_default_na=False)["title"].tolist()
    return titles + [
        'He said. " )',
        "Wait ...",
        "“Quoted” and ‘single’",
        "can't won't gonna cannot",
        "'s x",
        "'' start",
        '"start',
        "end,",
        "a -- b",
        "x x x",
        "x",
        "'x' y '",
        "ends.  ",
        "tab\there",
        "two\nlines",
        "(paren) [b] {c} <d>",
        "3,000 people: 5:30",
        "U.S. says",
        "'twas",
        "d'ye gimme",
        "",
        " ",
        "“»”",
        "»",
    ]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"lemmatize": False},
        {
            "lowercase": False,
            "drop_stopwords": False,
            "drop_punctuation": False,
            "min_token_length": 3,
        },
    ],
    ids=["reference", "no-lemmas", "raw-tokens"],
)
def test_the_fast_cleaner_gives_the_reference_tokens_on_the_whole_corpus(
    params, shared_data, changes
):
    """HeadlineCleaner tokenizes each word once, in context, and remembers it; on every
    title of the corpus its tokens are NLTK's on the whole string, token for token."""
    from fakenews.text import HeadlineCleaner, clean_title

    settings = changed(params, **changes)
    titles = corpus_titles(shared_data)
    cleaner = HeadlineCleaner(settings)
    fast = [cleaner(t) for t in titles]
    assert fast == [clean_title(t, settings) for t in titles]
    assert fast == [cleaner(t) for t in titles]  # the same again, from its memory


def test_noun_lemmas_are_nltks_for_every_wordnet_word_and_corpus_token(params, shared_data):
    """NounLemmatizer reads two of WordNet's files where NLTK reads them all; its lemma of
    every word WordNet knows (in any part of speech, as lemma, exception or its target)
    and of every token of the corpus is WordNetLemmatizer's."""
    from nltk.corpus import wordnet
    from nltk.stem import WordNetLemmatizer
    from nltk.tokenize import word_tokenize

    from fakenews.text import NounLemmatizer, use_nltk_data

    use_nltk_data(params.nltk_data)
    ours, theirs = NounLemmatizer(), WordNetLemmatizer()
    words = set(wordnet._lemma_pos_offset_map)  # after theirs loaded all of WordNet
    for exceptions in wordnet._exception_map.values():
        for form, lemmas in exceptions.items():
            words.update([form, *lemmas])
    assert len(words) > 150_000, "WordNet did not load whole"
    for title in corpus_titles(shared_data):
        words.update(word_tokenize(title.lower(), preserve_line=True))
    words.update(["", "us", "aardwolves", "Churches", "xyzzies"])
    differ = {w: (ours.lemmatize(w), theirs.lemmatize(w)) for w in words}
    assert {w: pair for w, pair in differ.items() if pair[0] != pair[1]} == {}
