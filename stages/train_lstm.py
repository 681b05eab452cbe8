"""train_lstm: the reference LSTM on cleaned tokens and pretrained word vectors.

    token ids → Embedding (pretrained, from embed) → Dropout → LSTM(50)
              → Dense(20, relu) → Dense(5, relu) → Dense(1, sigmoid)

Adam and binary cross-entropy; every size and setting is in params.yaml, among them a
Bidirectional LSTM and max-pooling its outputs over time instead of its last state. The vocabulary
(words seen `min_count` times) is fitted on the training split only, each word starting
from its pretrained vector; the decision threshold is chosen on validation. The run goes
to the MLflow tracking server with the model as a pyfunc that takes raw headlines
(NLTK cleaning, vocabulary, padding and threshold travel with it).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fakenews.cli import stage_arg_parser
from fakenews.data.params import load_params, project_path
from fakenews.data.splits import load_splits
from fakenews.errors import PipelineError, cli_errors

STAGE = "train_lstm"
COLUMNS = ["id", "title", "tokens"]


def build_model(embeddings: np.ndarray, max_length: int, params: dict[str, Any]):
    """The network, readable top to bottom."""
    import tensorflow as tf

    from fakenews.training import compile_binary

    layers = tf.keras.layers
    inputs = layers.Input(shape=(max_length,), dtype="int32", name="token_ids")
    x = layers.Embedding(
        embeddings.shape[0], embeddings.shape[1],
        embeddings_initializer=tf.keras.initializers.Constant(embeddings),
        trainable=bool(params["trainable_embeddings"]),
        mask_zero=bool(params.get("mask_padding", True)),  # the LSTM skips padding id 0
        name="word_vectors",
    )(inputs)
    # Spatial dropout drops whole word vectors, so the model cannot lean on a few words.
    spatial = float(params.get("spatial_dropout", 0.0))
    x = layers.SpatialDropout1D(spatial)(x) if spatial else layers.Dropout(params["dropout"])(x)
    x = recurrent_block(layers, params)(x)
    for units in params["dense_units"]:
        x = layers.Dense(units, activation="relu")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="fake_probability")(x)
    model = tf.keras.Model(inputs, outputs, name="lstm_headline_classifier")
    compile_binary(model, params["learning_rate"])
    return model


def recurrent_block(layers, params: dict[str, Any]):
    """LSTM(lstm_units), optionally Bidirectional; `pooling: last` keeps its final state,
    `max` takes the maximum of every step's output over time (the strongest word wins)."""
    pooling = params.get("pooling", "last")
    if pooling not in ("last", "max"):
        raise PipelineError(f"params.yaml: train_lstm.pooling must be last or max, not {pooling!r}")
    lstm = layers.LSTM(params["lstm_units"], dropout=params["dropout"],
                       return_sequences=pooling == "max")
    if params.get("bidirectional", False):
        lstm = layers.Bidirectional(lstm)

    def block(x):
        x = lstm(x)
        return layers.GlobalMaxPooling1D()(x) if pooling == "max" else x

    return block


def clean_params(all_params: dict[str, Any]) -> dict[str, Any]:
    """How the LSTM cleans headlines: the clean section with `clean_overrides` on top."""
    return {**all_params["clean"], **(all_params[STAGE].get("clean_overrides") or {})}


def lstm_tokens(parts: dict[str, pd.DataFrame], all_params: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Each split with the tokens the LSTM reads: the clean stage's, or, with
    `clean_overrides`, its titles cleaned again with those settings (as the logged model
    cleans the headlines it serves)."""
    if not all_params[STAGE].get("clean_overrides"):
        return parts
    from stages.clean import clean_titles

    settings = clean_params(all_params)
    return {name: part.assign(tokens=clean_titles(part["title"].tolist(), settings))
            for name, part in parts.items()}


def encoded(parts: dict[str, pd.DataFrame], words: list[str], vectors: np.ndarray,
            params: dict[str, Any]) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """The core of the inputs: the vocabulary fitted on train, its pretrained matrix, and
    every split's padded token ids."""
    from fakenews.vocabulary import corpus_vocabulary, encode_all, pretrained_matrix

    max_length, padding = int(params["max_length"]), params["padding"]
    if max_length < 1 or padding not in ("pre", "post"):
        raise PipelineError("params.yaml: train_lstm.max_length must be ≥ 1 and train_lstm.padding "
                            "pre or post")
    vocab = corpus_vocabulary(parts["train"]["tokens"], int(params["min_count"]))
    ids = {name: encode_all(part["tokens"], vocab, max_length, padding) for name, part in parts.items()}
    return vocab, pretrained_matrix(vocab, words, vectors), ids


def train(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
          embeddings: np.ndarray, params: dict[str, Any], callbacks: list = ()
          ) -> tuple[Any, dict[str, list[float]]]:
    """The core: a trained model and its per-epoch history."""
    from fakenews.training import early_stopping, set_seeds

    set_seeds(int(params["seed"]))
    model = build_model(embeddings, x_train.shape[1], params)
    stopping = early_stopping(params)
    history = model.fit(
        x_train, y_train, validation_data=(x_val, y_val),
        epochs=int(params["epochs"]), batch_size=int(params["batch_size"]),
        callbacks=[stopping, *callbacks], verbose=0, shuffle=True,
    )
    return model, history.history


def predict(model, ids: np.ndarray) -> np.ndarray:
    return model.predict(ids, verbose=0, batch_size=512).reshape(-1)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    args = stage_arg_parser(STAGE, "Train the LSTM and log it to MLflow.").parse_args(argv)
    all_params = load_params(args.params)
    params, paths = all_params[STAGE], all_params["paths"]
    import tensorflow as tf

    from fakenews.distribution import chief_only, discard_outputs, is_chief, replica_tags, strategy_for
    from fakenews.tracking.runs import start_run
    from fakenews.training import (
        binary_metrics,
        choose_threshold,
        epoch_logger,
        publish_model,
        write_training_outputs,
    )

    strategy, chief = strategy_for(params, STAGE), is_chief()  # before TensorFlow runs anything
    assignment, cleaned = project_path(paths["split"]), project_path(paths["cleaned"])
    embedded = project_path(paths["embedded_dir"])
    parts = load_splits(assignment, cleaned, COLUMNS)
    parts = lstm_tokens({name: parts[name] for name in ("train", "val")}, all_params)  # test unseen
    words = (embedded / "words.txt").read_text(encoding="utf-8").splitlines()
    vocab, embeddings, ids = encoded(parts, words, np.load(embedded / "vectors.npy"), params)
    labels = {name: part["label"].to_numpy() for name, part in parts.items()}
    model_dir = project_path(paths["models_dir"]) / "lstm"
    logged = {STAGE: params, "clean": all_params["clean"]}

    input_spec = tf.TensorSpec([None, int(params["max_length"])], tf.int32, name="token_ids")

    # Only the chief logs and publishes (fakenews.distribution); every worker trains.
    with chief_only(chief, start_run(STAGE, logged, input_paths=[assignment, cleaned, embedded],
                                     datasets={"train": assignment, "val": assignment},
                                     extra_tags=replica_tags(strategy))) as run, \
            tempfile.TemporaryDirectory() as work:
        with strategy.scope():
            model, history = train(ids["train"], labels["train"], ids["val"], labels["val"], embeddings,
                                   params, [epoch_logger(run)] if chief else [])
        val_probabilities = predict(model, ids["val"])
        threshold = choose_threshold(labels["val"], val_probabilities)
        val_metrics = binary_metrics(labels["val"], val_probabilities, threshold)
        if not chief:
            discard_outputs(model, input_spec)
            print(f"train_lstm: worker done (val accuracy {val_metrics['accuracy']:.3f}); "
                  "the chief logs and writes the outputs")
            return
        vocab_file = Path(work) / "vocab.txt"
        vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
        uri = publish_model(
            run, model, input_spec,
            {"vocab": str(vocab_file), "nltk_data": str(project_path(all_params["clean"]["nltk_data"]))},
            {"scorer": "cleaned_tokens", "threshold": threshold, "clean": clean_params(all_params),
             "encode": {k: params[k] for k in ("max_length", "padding")}},
            model_dir,
        )
        write_training_outputs(STAGE, history, {**val_metrics, "threshold": threshold},
                               project_path(paths["metrics_dir"]), run)
    print(f"train_lstm: {len(vocab)} words in the vocabulary (train split); val accuracy "
          f"{val_metrics['accuracy']:.3f} at threshold {threshold:.3f}, ROC-AUC "
          f"{val_metrics['roc_auc']:.3f}; model {uri}")


if __name__ == "__main__":
    main()
