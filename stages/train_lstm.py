"""train_lstm: the reference LSTM on cleaned tokens and pretrained word vectors.

    token ids → Embedding (pretrained, from embed) → Dropout → LSTM(50)
              → Dense(20, relu) → Dense(5, relu) → Dense(1, sigmoid)

Adam and binary cross-entropy; every size and setting is in params.yaml. The run goes
to the MLflow tracking server with the model as a pyfunc that takes raw headlines
(NLTK cleaning, vocabulary and padding travel with it).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fakenews.cli import stage_arg_parser
from fakenews.data.params import load_params, project_path
from fakenews.data.schema import read_table
from fakenews.errors import cli_errors

STAGE = "train_lstm"
COLUMNS = ["id", "label", "token_ids"]


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
    x = layers.LSTM(params["lstm_units"], dropout=params["dropout"])(x)
    for units in params["dense_units"]:
        x = layers.Dense(units, activation="relu")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="fake_probability")(x)
    model = tf.keras.Model(inputs, outputs, name="lstm_headline_classifier")
    compile_binary(model, params["learning_rate"])
    return model


def as_arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return np.stack(frame["token_ids"].to_numpy()).astype(np.int32), frame["label"].to_numpy()


def train(train: pd.DataFrame, val: pd.DataFrame, embeddings: np.ndarray,
          params: dict[str, Any], callbacks: list = ()) -> tuple[Any, dict[str, list[float]]]:
    """The core: a trained model and its per-epoch history."""
    from fakenews.training import early_stopping, set_seeds

    set_seeds(int(params["seed"]))
    x_train, y_train = as_arrays(train)
    x_val, y_val = as_arrays(val)
    model = build_model(embeddings, x_train.shape[1], params)
    stopping = early_stopping(params)
    history = model.fit(
        x_train, y_train, validation_data=(x_val, y_val),
        epochs=int(params["epochs"]), batch_size=int(params["batch_size"]),
        callbacks=[stopping, *callbacks], verbose=0, shuffle=True,
    )
    return model, history.history


def sequence_length(frame: pd.DataFrame) -> int:
    """Token ids per headline, as padded by embed."""
    return len(frame["token_ids"].iloc[0])


def predict(model, frame: pd.DataFrame) -> np.ndarray:
    return model.predict(as_arrays(frame)[0], verbose=0, batch_size=512).reshape(-1)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    args = stage_arg_parser(STAGE, "Train the LSTM and log it to MLflow.").parse_args(argv)
    all_params = load_params(args.params)
    params, paths = all_params[STAGE], all_params["paths"]
    import tensorflow as tf

    from fakenews.tracking.runs import start_run
    from fakenews.training import (
        binary_metrics,
        epoch_logger,
        publish_model,
        write_training_outputs,
    )

    split_dir, embedded = project_path(paths["split_dir"]), project_path(paths["embedded_dir"])
    train_frame = read_table(split_dir / "train.parquet", COLUMNS)
    val_frame = read_table(split_dir / "val.parquet", COLUMNS)
    embeddings = np.load(embedded / "embeddings.npy")
    model_dir = project_path(paths["models_dir"]) / "lstm"
    logged = {STAGE: params, "embed": all_params["embed"], "clean": all_params["clean"]}

    with start_run(STAGE, logged, input_paths=[split_dir, embedded]) as run:
        model, history = train(train_frame, val_frame, embeddings, params, [epoch_logger(run)])
        val_metrics = binary_metrics(val_frame["label"], predict(model, val_frame))
        uri = publish_model(
            run, model, tf.TensorSpec([None, sequence_length(train_frame)], tf.int32, name="token_ids"),
            {"vocab": str(embedded / "vocab.txt"),
             "nltk_data": str(project_path(all_params["clean"]["nltk_data"]))},
            {"scorer": "cleaned_tokens", "clean": all_params["clean"], "embed": all_params["embed"]},
            model_dir,
        )
        write_training_outputs(STAGE, history, val_metrics, project_path(paths["metrics_dir"]), run)
    print(f"train_lstm: val accuracy {val_metrics['accuracy']:.3f}, "
          f"ROC-AUC {val_metrics['roc_auc']:.3f}; model {uri}")


if __name__ == "__main__":
    main()
