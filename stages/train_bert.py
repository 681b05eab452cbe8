"""train_bert: fine-tune a BERT encoder on raw headlines through TF Hub layers.

    raw title → hub.KerasLayer(preprocess) → hub.KerasLayer(encoder, trainable=True)
              → pooled tokens → Dropout(0.2) → Dense(10, relu) → Dense(1, sigmoid)

Pooling is `train_bert.pooling`: `mean` (the default, the masked mean of the token
vectors, as all-MiniLM-L6-v2 was trained) or `pooled_output` (the [CLS] pooler of the
TF Hub BERT interface). The decision threshold is chosen on validation.

Both handles are params: the offline modules that embed builds by default, or the
public TF Hub BERT handles online. Training batches hold titles of similar length and
every batch is cut to its longest title, which halves the cost of short headlines
without changing any output. The model is logged to MLflow as a pyfunc that
takes raw headlines; tokenizer and encoder travel inside its SavedModel.

`precision: mixed_bfloat16` trains with bfloat16 matmuls and float32 weights
(fakenews.precision); `inference_precision` is the logged model's default for scoring.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fakenews.cli import stage_arg_parser
from fakenews.data.params import load_params, project_path, resolve_handle
from fakenews.data.splits import load_splits
from fakenews.errors import PipelineError, cli_errors

STAGE = "train_bert"
COLUMNS = ["id", "title"]


def build_model(params: dict[str, Any], steps_per_epoch: int):
    """The network, readable top to bottom; steps_per_epoch shapes the learning rate."""
    import tensorflow as tf
    import tensorflow_hub as hub
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

    from fakenews.training import compile_binary, learning_rate

    layers = tf.keras.layers
    if params["pooling"] not in ("mean", "pooled_output"):
        raise PipelineError(f"params.yaml: train_bert.pooling must be mean or pooled_output, "
                            f"not {params['pooling']!r}")
    try:
        preprocessor = hub.load(resolve_handle(params["preprocess_handle"]))
        encoder = hub.KerasLayer(resolve_handle(params["encoder_handle"]), trainable=True,
                                 name="bert_encoder")
    except Exception as err:  # hub raises many types; all mean a handle is unusable
        raise PipelineError(f"cannot load the BERT hub modules ({params['preprocess_handle']}, "
                            f"{params['encoder_handle']}): {err}") from None
    text = layers.Input(shape=(), dtype=tf.string, name="title")
    tokens = hub.KerasLayer(preprocessor.tokenize, name="tokenize")(text)
    encoder_inputs = hub.KerasLayer(
        preprocessor.bert_pack_inputs, arguments={"seq_length": int(params["seq_length"])},
        name="pack_inputs",
    )([tokens])
    encoder_inputs = layers.Lambda(trim_to_longest, name="trim_to_longest")(encoder_inputs)
    outputs = encoder(encoder_inputs)
    if params["pooling"] == "mean":  # masked mean of the token vectors, as sentence-transformers
        mask = tf.cast(encoder_inputs["input_mask"], tf.float32)[:, :, None]
        pooled = tf.reduce_sum(outputs["sequence_output"] * mask, 1) / tf.reduce_sum(mask, 1)
    else:
        pooled = outputs["pooled_output"]
    x = layers.Dropout(params["dropout"])(pooled)
    for units in params["dense_units"]:
        x = layers.Dense(units, activation="relu")(x)
    probability = layers.Dense(1, activation="sigmoid", name="fake_probability")(x)
    model = tf.keras.Model(text, probability, name="bert_headline_classifier")
    # The tokenize/pack layers wrap functions of `preprocessor`; tracking it here lets a
    # SavedModel of the model carry the vocabulary table those functions use.
    model.bert_preprocessor = preprocessor
    compile_binary(model, learning_rate(params, steps_per_epoch))
    return model


def trim_to_longest(encoder_inputs: dict[str, Any]) -> dict[str, Any]:
    """Cut the padding columns no title in the batch uses.

    seq_length stays the cap, but a batch of short headlines (the median is 17 word
    pieces) no longer pays for 32 positions. The result is unchanged: padded positions
    are masked out of attention and of the mean pooling.
    """
    import tensorflow as tf

    longest = tf.reduce_max(tf.reduce_sum(encoder_inputs["input_mask"], axis=1))
    return {name: tensor[:, :longest] for name, tensor in encoder_inputs.items()}


def train(train: pd.DataFrame, val: pd.DataFrame, params: dict[str, Any],
          callbacks: list = ()) -> tuple[Any, dict[str, list[float]]]:
    """The core: a fine-tuned model and its per-epoch history."""
    from fakenews.precision import TRAINING_PRECISIONS, bfloat16_compute, check_precision
    from fakenews.training import early_stopping, set_seeds

    precision = check_precision(params.get("precision", "float32"), "params.yaml: train_bert.precision",
                                TRAINING_PRECISIONS)
    seed = int(params["seed"])
    set_seeds(seed)
    batch_size, group = int(params["batch_size"]), int(params["length_group_batches"])
    model = build_model(params, steps_per_epoch=-(-len(train) // batch_size))
    preprocessor = model.bert_preprocessor
    train_batches = length_grouped_batches(preprocessor, train, batch_size, group, seed, shuffle=True)
    # One group spanning the whole split: validation batches simply run shortest first.
    val_batches = length_grouped_batches(preprocessor, val, batch_size, len(val), seed, shuffle=False)
    # mixed_bfloat16: bfloat16 matmuls, float32 weights and updates (fakenews.precision)
    with bfloat16_compute(precision == "mixed_bfloat16"):
        history = model.fit(
            train_batches, validation_data=val_batches, epochs=int(params["epochs"]),
            callbacks=[early_stopping(params), *callbacks], verbose=0, shuffle=False,
        )
    return model, history.history


def length_grouped_batches(preprocessor, frame: pd.DataFrame, batch_size: int, group_batches: int,
                           seed: int, shuffle: bool):
    """(titles, labels) batches of similar length, as a Keras Sequence.

    Each epoch shuffles the titles, sorts each run of `group_batches` batches by word-piece
    count, cuts it into batches and shuffles the batches. A batch of short titles then
    runs through a short encoder (see trim_to_longest). group_batches 1 gives plain
    random batches.
    """
    import tensorflow as tf

    titles = frame["title"].tolist()
    labels = frame["label"].to_numpy()
    tokens = preprocessor.tokenize(tf.constant(titles))
    lengths = (tokens.merge_dims(1, -1) if tokens.shape.rank > 2 else tokens).row_lengths().numpy()
    rng = np.random.default_rng(seed)
    group = batch_size * max(1, group_batches)

    class LengthGroupedBatches(tf.keras.utils.Sequence):
        def __init__(self):
            super().__init__()
            self.on_epoch_end()

        def on_epoch_end(self):
            order = rng.permutation(len(titles)) if shuffle else np.arange(len(titles))
            sorted_groups = [chunk[np.argsort(lengths[chunk], kind="stable")]
                             for chunk in np.split(order, range(group, len(order), group))]
            rows = np.concatenate(sorted_groups)
            self.batches = np.split(rows, range(batch_size, len(rows), batch_size))
            if shuffle:
                rng.shuffle(self.batches)

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, index):
            rows = self.batches[index]
            return tf.constant([titles[r] for r in rows]), labels[rows]

    return LengthGroupedBatches()


def predict(model, titles: list[str]) -> np.ndarray:
    import tensorflow as tf

    return model.predict(tf.constant(titles), verbose=0, batch_size=128).reshape(-1)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    args = stage_arg_parser(STAGE, "Fine-tune BERT and log it to MLflow.").parse_args(argv)
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
    assignment, ingested = project_path(paths["split"]), project_path(paths["ingested"])
    parts = load_splits(assignment, ingested, COLUMNS)
    train_frame, val_frame = parts["train"], parts["val"]  # test stays unseen until evaluate
    hub_inputs = [project_path(params[k]) for k in ("preprocess_handle", "encoder_handle")
                  if "://" not in params[k]]
    model_dir = project_path(paths["models_dir"]) / "bert"

    input_spec = tf.TensorSpec([None], tf.string, name="title")

    # Only the chief logs and publishes (fakenews.distribution); every worker trains.
    with chief_only(chief, start_run(STAGE, {STAGE: params}, input_paths=[assignment, ingested, *hub_inputs],
                                     datasets={"train": assignment, "val": assignment},
                                     extra_tags=replica_tags(strategy))) as run:
        with strategy.scope():
            model, history = train(train_frame, val_frame, params, [epoch_logger(run)] if chief else [])
        val_probabilities = predict(model, val_frame["title"].tolist())
        threshold = choose_threshold(val_frame["label"].to_numpy(), val_probabilities)
        val_metrics = binary_metrics(val_frame["label"], val_probabilities, threshold)
        if not chief:
            discard_outputs(model, input_spec)
            print(f"train_bert: worker done (val accuracy {val_metrics['accuracy']:.3f}); "
                  "the chief logs and writes the outputs")
            return
        uri = publish_model(run, model, input_spec, {},
                            {"scorer": "saved_model", "threshold": threshold,
                             "batch_size": int(params["scoring_batch_size"]),
                             "inference_precision": params["inference_precision"]},
                            model_dir)
        write_training_outputs(STAGE, history, {**val_metrics, "threshold": threshold},
                               project_path(paths["metrics_dir"]), run)
    print(f"train_bert: val accuracy {val_metrics['accuracy']:.3f} at threshold {threshold:.3f}, "
          f"ROC-AUC {val_metrics['roc_auc']:.3f}; model {uri}")


if __name__ == "__main__":
    main()
