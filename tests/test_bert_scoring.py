"""The BERT pyfunc's fast path (the table tokenized once, equal-length batches through the
encoder alone, bfloat16 on request) against a plain computation of the same SavedModel:
its strings signature, one title at a time, on the tiny profile's model."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from fakenews.data.params import read_params
from fakenews.data.splits import load_splits
from fakenews.errors import PipelineError
from fakenews.precision import bfloat16_support, check_precision, cpu_flags

# bfloat16 keeps 8 bits of mantissa: a probability may move by about 1e-2 (0.018 at
# most on the full model's test split); the tiny model's must stay within this.
BFLOAT16_TOLERANCE = 0.03


@pytest.fixture(scope="module")
def bert_model(tiny_trained):
    """(model, its folder, validation + odd titles): the session's tiny BERT, loaded from its
    DVC output folder (an MLflow model), as evaluate loads it."""
    params = read_params(tiny_trained)
    folder = Path(params["paths"]["models_dir"]) / "bert"
    val = load_splits(params["paths"]["split"], params["paths"]["ingested"], ["id", "title"])["val"]
    titles = val["title"].tolist() + ["", "x " * 400, "日本語のニュース", "Senate passes budget"]
    return str(folder), folder, titles


def reference_probabilities(folder: Path, titles: list[str]) -> np.ndarray:
    """The SavedModel's serving signature, one title at a time: no batching at all."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    serve = tf.saved_model.load(str(folder / "artifacts" / "saved_model")).signatures[
        "serving_default"
    ]
    return np.array([serve(tf.constant([t]))["fake_probability"].numpy()[0] for t in titles])


def test_batched_float32_scoring_equals_scoring_each_title_alone(bert_model):
    import tensorflow as tf

    uri, folder, titles = bert_model
    model = mlflow.pyfunc.load_model(uri, model_config={"batch_tokens": 40})
    scored = model.predict(pd.DataFrame({"title": titles}))["fake_probability"].to_numpy()
    np.testing.assert_allclose(scored, reference_probabilities(folder, titles), rtol=0, atol=1e-5)

    scorer = model.unwrap_python_model().scorer
    _, lengths = scorer.encoder_inputs(titles)
    pieces = scorer.preprocessor.tokenize(tf.constant(titles)).merge_dims(1, -1).row_lengths()
    np.testing.assert_array_equal(lengths, np.minimum(pieces.numpy() + 2, scorer.seq_length))
    batches = scorer.batches(lengths)
    assert sorted(np.concatenate([rows for rows, _ in batches]).tolist()) == list(
        range(len(titles))
    )
    assert all((lengths[rows] == length).all() for rows, length in batches)  # no padding
    for length in set(lengths.tolist()):  # about 40 word pieces a call, at least one title
        sizes = [len(rows) for rows, size in batches if size == length]
        full = max(1, 40 // length)
        assert all(n == full for n in sizes[:-1]) and 1 <= sizes[-1] <= full


@pytest.mark.skipif(bfloat16_support() is None, reason="this CPU has no AVX512-BF16/AMX-BF16")
def test_bfloat16_scoring_stays_within_its_tolerance_of_float32(bert_model):
    uri, _, titles = bert_model
    frame = pd.DataFrame({"title": titles})
    float32 = mlflow.pyfunc.load_model(uri).predict(frame)["fake_probability"].to_numpy()
    bfloat16 = mlflow.pyfunc.load_model(uri, model_config={"inference_precision": "bfloat16"})
    lower = bfloat16.predict(frame)["fake_probability"].to_numpy()
    difference = np.abs(lower - float32)
    assert difference.max() <= BFLOAT16_TOLERANCE
    assert difference.max() > 1e-6  # the rewrite ran: bfloat16 does not round like float32
    # and a float32 model loaded beside it in the same process stays float32
    again = mlflow.pyfunc.load_model(uri).predict(frame)["fake_probability"].to_numpy()
    np.testing.assert_array_equal(again, float32)


@pytest.mark.skipif(bfloat16_support() is None, reason="this CPU has no AVX512-BF16/AMX-BF16")
def test_an_encoder_without_a_bfloat16_pass_gets_the_onednn_rewrite(bert_model):
    """An encoder module without `inference_bfloat16` (an online TF Hub one) is scored in
    bfloat16 through oneDNN's graph rewrite of `classify`, within the same tolerance."""
    uri, _, titles = bert_model
    frame = pd.DataFrame({"title": titles})
    float32 = mlflow.pyfunc.load_model(uri).predict(frame)["fake_probability"].to_numpy()
    model = mlflow.pyfunc.load_model(uri, model_config={"inference_precision": "bfloat16"})
    scorer = model.unwrap_python_model().scorer
    assert scorer.classify is scorer.saved_model.classify_bfloat16 and not scorer.rewrite
    scorer.classify, scorer.rewrite = scorer.saved_model.classify, True  # as without the pass
    rewritten = model.predict(frame)["fake_probability"].to_numpy()
    difference = np.abs(rewritten - float32)
    assert 1e-6 < difference.max() <= BFLOAT16_TOLERANCE


def test_bfloat16_is_refused_where_the_cpu_lacks_it(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse2", "avx2", "avx512f"}
    monkeypatch.setattr("fakenews.precision.cpu_flags", lambda: cpu_flags(cpuinfo))
    with pytest.raises(
        PipelineError, match="inference_precision: bfloat16 needs a CPU with AVX512-BF16"
    ):
        check_precision("bfloat16", "inference_precision")
    assert check_precision("float32", "inference_precision") == "float32"
    with pytest.raises(PipelineError, match="must be one of float32, mixed_bfloat16"):
        check_precision("float16", "train_bert.precision", ("float32", "mixed_bfloat16"))
