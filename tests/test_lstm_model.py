"""The LSTM's network: the reference shape by default, the searched choices as params."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fakenews.data.params import load_params
from fakenews.data.params import params_from as load_params_from
from fakenews.errors import PipelineError
from fakenews.models import lstm
from tests.support.commands import PROJECT_ROOT
from tests.support.params import section

DEFAULTS = load_params(PROJECT_ROOT / "params.yaml")

PARAMS = dict(
    trainable_embeddings=True,
    mask_padding=True,
    spatial_dropout=0.1,
    lstm_units=4,
    dense_units=[3, 2],
    dropout=0.1,
    learning_rate=0.01,
    bidirectional=False,
    pooling="last",
)


def lstm_params(**values):
    return section("train_lstm", **{**PARAMS, **values})


def layer_kinds(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_the_default_is_the_reference_shape():
    model = lstm.build_model(np.ones((6, 5), np.float32), 7, lstm_params())
    assert layer_kinds(model) == [
        "InputLayer",
        "Embedding",
        "SpatialDropout1D",
        "LSTM",
        "Dense",
        "Dense",
        "Dense",
    ]
    # by position: Keras names layers per process (lstm, lstm_1, ...), so a name depends on
    # which tests ran earlier in the same worker
    assert model.layers[3].units == 4 and model.output_shape == (None, 1)


def test_bidirectional_and_max_pooling_over_time_are_params():
    model = lstm.build_model(
        np.ones((6, 5), np.float32), 7, lstm_params(bidirectional=True, pooling="max")
    )
    assert layer_kinds(model)[3:5] == ["Bidirectional", "GlobalMaxPooling1D"]
    assert model.layers[3].output_shape == (None, 7, 8)  # every step, both directions
    ids = np.array([[0, 0, 0, 2, 3, 4, 5]] * 4, np.int32)
    assert model.predict(ids, verbose=0).shape == (4, 1)
    with pytest.raises(PipelineError, match="pooling: input should be 'last' or 'max'"):
        lstm_params(pooling="mean")


def test_clean_overrides_give_the_lstm_its_own_tokens_and_the_served_model_the_same_rules(
    shared_data,
):
    parts = {
        "train": pd.DataFrame(
            {
                "title": ["The senators were voting on taxes"],
                "tokens": [["senator", "voting", "tax"]],
            }
        )
    }
    clean = {**DEFAULTS.clean.model_dump(), "nltk_data": str(shared_data / "nltk_data")}
    params = load_params_from({"clean": clean, "train_lstm": {"clean_overrides": {}}})
    # the clean stage's tokens as they are
    assert lstm.tokens_for(parts, params.lstm_cleaning(), params.clean) is parts
    overrides = {"drop_stopwords": False, "lemmatize": False}
    params = load_params_from({"clean": clean, "train_lstm": {"clean_overrides": overrides}})
    tokens = lstm.tokens_for(parts, params.lstm_cleaning(), params.clean)["train"]["tokens"][0]
    assert tokens == ["the", "senators", "were", "voting", "on", "taxes"]
    assert params.lstm_cleaning().model_dump() == {**clean, **overrides}


def test_the_default_shape_trains_and_serves_with_padding_masked(tmp_path):
    """The pipeline's default LSTM (Bidirectional, padding masked), fitted and exported as
    train_lstm exports it. The tiny profile trains a lighter shape, so this is where the
    default one goes through a SavedModel."""
    import tensorflow as tf

    from fakenews.models.export import save_serving_model
    from fakenews.training import set_seeds

    params = DEFAULTS.train_lstm.model_copy(update={"lstm_units": 4, "dense_units": [3]})
    assert params.bidirectional and params.mask_padding
    set_seeds(0)
    rng = np.random.default_rng(0)
    model = lstm.build_model(rng.normal(size=(9, 5)).astype("float32"), 6, params)
    ids = np.array(
        [[0, 0, 1, 2, 3, 4], [0, 0, 0, 0, 5, 6], [0, 7, 8, 1, 2, 3], [1, 2, 3, 4, 5, 6]], np.int32
    )
    model.fit(ids, np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    before = model.predict(ids, verbose=0)[:, 0]

    vectors = model.get_layer("word_vectors")
    weights = vectors.get_weights()[0]
    weights[0] = rng.normal(size=weights.shape[1]) * 10  # what padding id 0 looks up
    vectors.set_weights([weights])
    np.testing.assert_allclose(model.predict(ids, verbose=0)[:, 0], before, rtol=0, atol=1e-6)

    assert lstm.length_invariant(params)
    save_serving_model(model, tmp_path / "saved", lstm.input_spec(params))
    serve = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
    np.testing.assert_allclose(
        serve(tf.constant(ids))["fake_probability"].numpy(), before, rtol=0, atol=1e-6
    )
    # Masked padding is only carried through: rows cut to the batch's longest, or to
    # themselves, score as they do at full width (what the served LSTM's batches rely on).
    short = ids[:2, 2:]
    np.testing.assert_allclose(
        serve(tf.constant(short))["fake_probability"].numpy(), before[:2], rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(
        serve(tf.constant(ids[1:2, 4:]))["fake_probability"].numpy(), before[1:2], atol=1e-6
    )


def test_only_a_masked_last_state_model_is_length_invariant():
    assert lstm.length_invariant(lstm_params())
    for changed in ({"mask_padding": False}, {"pooling": "max"}):
        params = lstm_params(**changed)
        assert not lstm.length_invariant(params)
        assert lstm.input_spec(params).shape.as_list() == [None, params.max_length]
        model = lstm.build_model(np.ones((6, 5), np.float32), params.max_length, params)
        assert model.input_shape == (None, params.max_length)
