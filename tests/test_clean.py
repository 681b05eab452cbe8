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
