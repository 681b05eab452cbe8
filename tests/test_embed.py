"""embed: vocabulary, padding, coverage, and the word-vector module through tensorflow_hub."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fakenews.data.params import load_params
from fakenews.errors import PipelineError
from fakenews.hub.wordvec import build_wordvec_module, whole_words
from fakenews.vocabulary import corpus_vocabulary, encode, pretrained_matrix
from stages import embed as embed_stage


def test_vocabulary_is_frequency_ordered_after_pad_and_oov():
    vocab = corpus_vocabulary([["b", "a", "b"], ["c", "b", "a"]])
    assert vocab == ["<pad>", "<oov>", "b", "a", "c"]
    assert corpus_vocabulary([["b", "a", "b"]], min_count=2) == ["<pad>", "<oov>", "b"]


@pytest.mark.parametrize("padding,expected", [("pre", [0, 0, 2, 3]), ("post", [2, 3, 0, 0])])
def test_encode_pads_like_keras(padding, expected):
    index = {"<pad>": 0, "<oov>": 1, "x": 2, "y": 3}
    assert encode(["x", "y"], index, 4, padding) == expected
    # truncation keeps the end for pre padding and the start for post, as pad_sequences
    long = encode(["x", "y", "zz", "x", "y"], index, 3, padding)
    assert long == ([1, 2, 3] if padding == "pre" else [2, 3, 1])


def test_pretrained_matrix_rows_follow_the_vocabulary():
    matrix = pretrained_matrix(["<pad>", "<oov>", "dog", "zebra"], ["cat", "dog"],
                               np.array([[1.0, 0.0], [0.0, 2.0]], np.float32))
    np.testing.assert_array_equal(matrix, [[0, 0], [0, 0], [0, 2], [0, 0]])


def test_whole_words_skip_pieces_and_specials():
    assert whole_words(["[PAD]", "the", "##ing", "[unused0]", "cat"]) == [1, 4]


@pytest.fixture(scope="module")
def small_module(tmp_path_factory) -> Path:
    words = ["cat", "dog", "car"]
    vectors = np.array([[1, 0, 0], [0, 2, 0], [0, 0, 3]], np.float32)
    path = tmp_path_factory.mktemp("wv") / "wordvec"
    build_wordvec_module(words, vectors, path)
    return path


def test_module_has_the_wiki_words_interface(small_module):
    lookup = embed_stage.hub_vector_lookup(str(small_module))
    out = lookup(["cat", "unknown", "cat dog"])
    np.testing.assert_allclose(out[0], [1, 0, 0])
    np.testing.assert_allclose(out[1], [0, 0, 0])
    # several words: the sqrt-n combiner, as Wiki-words-250
    np.testing.assert_allclose(out[2], np.array([1, 2, 0]) / np.sqrt(2), rtol=1e-6)


def test_embed_core_looks_up_every_corpus_word_and_reports_coverage(small_module):
    frame = pd.DataFrame({"id": ["a", "b"], "tokens": [["cat", "dog", "zebra"], ["dog"]]})
    words, vectors, report = embed_stage.embed(frame, embed_stage.hub_vector_lookup(str(small_module)))
    assert words == ["cat", "dog", "zebra"]
    np.testing.assert_allclose(vectors[words.index("cat")], [1, 0, 0])
    assert not vectors[words.index("zebra")].any()
    assert report["token_coverage"] == pytest.approx(3 / 4, abs=1e-4)
    assert report["type_coverage"] == pytest.approx(2 / 3, abs=1e-4)


def test_a_bad_handle_is_explained(tmp_path):
    with pytest.raises(PipelineError, match="word-vector module"):
        embed_stage.hub_vector_lookup(str(tmp_path / "no-module"))


@pytest.mark.slow
def test_stage_outputs_on_real_weights(tiny_pipeline):
    paths = load_params(tiny_pipeline)["paths"]
    embedded = Path(paths["embedded_dir"])
    words = (embedded / "words.txt").read_text().splitlines()
    vectors = np.load(embedded / "vectors.npy")
    assert vectors.shape == (len(words), 384) and words == sorted(set(words))
    report = json.loads(Path(paths["embed_metrics"]).read_text())
    assert 0.6 < report["token_coverage"] <= 1.0 and report["words"] == len(words)
    for module in ("wordvec", "bert_preprocess", "bert_encoder"):
        assert (Path(paths["hub_dir"]) / module / "saved_model.pb").is_file()
