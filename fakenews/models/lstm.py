"""The LSTM family: cleaned tokens → word ids → pretrained vectors → (Bi)LSTM → sigmoid.

    token ids → Embedding (pretrained, from embed) → SpatialDropout → LSTM(50)
              → Dense(20, relu) → Dense(5, relu) → Dense(1, sigmoid)

Adam and binary cross-entropy; every size and setting is a param (TrainLstmParams), among
them a Bidirectional LSTM and max-pooling its outputs over time instead of its last state.
The vocabulary (words seen `min_count` times) is fitted on the training split only, each
word starting from its pretrained vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fakenews.data.sections import CleanParams, TrainLstmParams
from fakenews.vocabulary import corpus_vocabulary, encode_all, pretrained_matrix


@dataclass(frozen=True)
class LstmInputs:
    vocab: list[str]  # PAD, OOV, then the training split's words
    embeddings: np.ndarray  # [len(vocab), dim] pretrained vectors, zero where none
    ids: dict[str, np.ndarray]  # split name → [rows, max_length] padded word ids


def tokens_for(
    parts: dict[str, pd.DataFrame], cleaning: CleanParams, clean_stage: CleanParams
) -> dict[str, pd.DataFrame]:
    """Each split with the tokens the LSTM reads: the clean stage's when `cleaning` is its
    setting, else its titles cleaned again with `cleaning` (as the logged model cleans the
    headlines it serves)."""
    if cleaning == clean_stage:
        return parts
    from fakenews.text import clean_titles

    return {
        name: part.assign(tokens=clean_titles(part["title"].tolist(), cleaning))
        for name, part in parts.items()
    }


def encode_inputs(
    parts: dict[str, pd.DataFrame], words: list[str], vectors: np.ndarray, params: TrainLstmParams
) -> LstmInputs:
    """The vocabulary fitted on train, its pretrained matrix, and every split's ids."""
    vocab = corpus_vocabulary(parts["train"]["tokens"], params.min_count)
    ids = {
        name: encode_all(part["tokens"], vocab, params.max_length, params.padding)
        for name, part in parts.items()
    }
    return LstmInputs(vocab, pretrained_matrix(vocab, words, vectors), ids)


def build_model(embeddings: np.ndarray, max_length: int, params: TrainLstmParams):
    """The network, readable top to bottom."""
    import tensorflow as tf

    from fakenews.models.optimizer import compile_binary

    layers = tf.keras.layers
    # Where padding cannot change the output, any length goes in, so a scorer can cut a
    # batch of short headlines to its longest one.
    length = None if length_invariant(params) else max_length
    inputs = layers.Input(shape=(length,), dtype="int32", name="token_ids")
    x = layers.Embedding(
        embeddings.shape[0],
        embeddings.shape[1],
        embeddings_initializer=tf.keras.initializers.Constant(embeddings),
        trainable=params.trainable_embeddings,
        mask_zero=params.mask_padding,  # the LSTM skips padding id 0
        name="word_vectors",
    )(inputs)
    # Spatial dropout drops whole word vectors, so the model cannot lean on a few words.
    if params.spatial_dropout:
        x = layers.SpatialDropout1D(params.spatial_dropout)(x)
    else:
        x = layers.Dropout(params.dropout)(x)
    x = recurrent_block(layers, params)(x)
    for units in params.dense_units:
        x = layers.Dense(units, activation="relu")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="fake_probability")(x)
    model = tf.keras.Model(inputs, outputs, name="lstm_headline_classifier")
    compile_binary(model, params.learning_rate)
    return model


def length_invariant(params: TrainLstmParams) -> bool:
    """Whether padding leaves a headline's output unchanged: masked padding carries the
    LSTM's state through untouched, and `pooling: last` reads only that state (max
    pooling would also see the padded steps' outputs)."""
    return params.mask_padding and params.pooling == "last"


def recurrent_block(layers, params: TrainLstmParams):
    """LSTM(lstm_units), optionally Bidirectional; `pooling: last` keeps its final state,
    `max` takes the maximum of every step's output over time (the strongest word wins)."""
    lstm = layers.LSTM(
        params.lstm_units, dropout=params.dropout, return_sequences=params.pooling == "max"
    )
    if params.bidirectional:
        lstm = layers.Bidirectional(lstm)

    def block(x):
        x = lstm(x)
        return layers.GlobalMaxPooling1D()(x) if params.pooling == "max" else x

    return block


def train(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    embeddings: np.ndarray,
    params: TrainLstmParams,
    callbacks: list = (),
) -> tuple[Any, dict[str, list[float]]]:
    """A trained model and its per-epoch history."""
    from fakenews.training import early_stopping, set_seeds

    set_seeds(params.seed)
    model = build_model(embeddings, x_train.shape[1], params)
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=params.epochs,
        batch_size=params.batch_size,
        callbacks=[early_stopping(params), *callbacks],
        verbose=0,
        shuffle=True,
    )
    return model, history.history


def predict(model, ids: np.ndarray) -> np.ndarray:
    return model.predict(ids, verbose=0, batch_size=512).reshape(-1)


def input_spec(params: TrainLstmParams):
    """The serving signature's input: [batch, max_length] word ids, or [batch, any
    length] for a length-invariant model."""
    import tensorflow as tf

    length = None if length_invariant(params) else params.max_length
    return tf.TensorSpec([None, length], tf.int32, name="token_ids")
