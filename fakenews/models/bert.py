"""The BERT family: raw headlines through TF Hub layers, a fine-tuned encoder, a sigmoid.

    raw title → hub.KerasLayer(preprocess) → hub.KerasLayer(encoder, trainable=True)
              → pooled tokens → Dropout(0.2) → Dense(10, relu) → Dense(1, sigmoid)

Pooling is `train_bert.pooling`: `mean` (the default, the masked mean of the token
vectors, as all-MiniLM-L6-v2 was trained) or `pooled_output` (the [CLS] pooler of the
TF Hub BERT interface). Both handles are params: the offline modules that embed builds
by default, or the public TF Hub BERT handles online.

Training batches hold titles of similar length and every batch is cut to its longest
title, which halves the cost of short headlines without changing any output.
`precision: mixed_bfloat16` trains with bfloat16 matmuls and float32 weights
(fakenews.precision).

Encoder, pooling and head are one `EncoderClassifier`, which the Keras model calls on the
packed word pieces and which the serving SavedModel exports on its own (`classify`, and
`classify_bfloat16` where the encoder has a bfloat16 inference pass), so a scorer can
tokenize a whole table once and run only numbers through the encoder.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fakenews.data.params import resolve_handle
from fakenews.data.sections import TrainBertParams
from fakenews.errors import PipelineError


def build_model(params: TrainBertParams, steps_per_epoch: int):
    """The network, readable top to bottom; steps_per_epoch shapes the learning rate."""
    import tensorflow as tf
    import tensorflow_hub as hub
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

    from fakenews.models.optimizer import compile_binary, learning_rate

    layers = tf.keras.layers
    try:
        preprocessor = hub.load(resolve_handle(params.preprocess_handle))
        encoder = hub.KerasLayer(
            resolve_handle(params.encoder_handle), trainable=True, name="bert_encoder"
        )
    except Exception as err:  # hub raises many types; all mean a handle is unusable
        raise PipelineError(
            f"cannot load the BERT hub modules ({params.preprocess_handle}, "
            f"{params.encoder_handle}): {err}"
        ) from None
    text = layers.Input(shape=(), dtype=tf.string, name="title")
    tokens = hub.KerasLayer(preprocessor.tokenize, name="tokenize")(text)
    encoder_inputs = hub.KerasLayer(
        preprocessor.bert_pack_inputs,
        arguments={"seq_length": params.seq_length},
        name="pack_inputs",
    )([tokens])
    encoder_inputs = layers.Lambda(trim_to_longest, name="trim_to_longest")(encoder_inputs)
    head = [layers.Dropout(params.dropout)]
    head += [layers.Dense(units, activation="relu") for units in params.dense_units]
    head.append(layers.Dense(1, activation="sigmoid", name="fake_probability"))
    classifier = EncoderClassifier(encoder, head, params.pooling)
    model = tf.keras.Model(text, classifier(encoder_inputs), name="bert_headline_classifier")
    # The tokenize/pack layers wrap functions of `preprocessor`; tracking it here lets a
    # SavedModel of the model carry the vocabulary table those functions use.
    model.bert_preprocessor = preprocessor
    model.encoder_classifier = classifier  # exported beside the strings signature
    compile_binary(model, learning_rate(params, steps_per_epoch))
    return model


ENCODER_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")


class EncoderClassifier:
    """Packed word pieces → fake-probability [batch, 1]: the encoder, the pooling
    (`mean`: the masked mean of the token vectors, as all-MiniLM-L6-v2 was trained;
    `pooled_output`: the [CLS] pooler) and the dense head."""

    def __init__(self, encoder, head: list, pooling: str) -> None:
        self.encoder, self.head, self.pooling = encoder, head, pooling

    @property
    def has_bfloat16(self) -> bool:
        """Whether the encoder module has a bfloat16 inference pass (fakenews.hub.encoder)."""
        return hasattr(self.encoder.resolved_object, "inference_bfloat16")

    def __call__(self, encoder_inputs: dict, training=None, bfloat16: bool = False):
        import tensorflow as tf

        if bfloat16:  # float32 outputs, bfloat16 matmuls inside
            outputs = self.encoder.resolved_object.inference_bfloat16(encoder_inputs)
        else:
            outputs = self.encoder(encoder_inputs, training=training)
        if self.pooling == "mean":
            mask = tf.cast(encoder_inputs["input_mask"], tf.float32)[:, :, None]
            x = tf.reduce_sum(outputs["sequence_output"] * mask, 1) / tf.reduce_sum(mask, 1)
        else:
            x = outputs["pooled_output"]
        for layer in self.head:
            x = layer(x, training=training)
        return x

    @staticmethod
    def input_spec() -> dict:
        import tensorflow as tf

        return {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in ENCODER_INPUTS}


def trim_to_longest(encoder_inputs: dict[str, Any]) -> dict[str, Any]:
    """Cut the padding columns no title in the batch uses.

    seq_length stays the cap, but a batch of short headlines (the median is 17 word
    pieces) no longer pays for 32 positions. The result is unchanged: padded positions
    are masked out of attention and of the mean pooling.
    """
    import tensorflow as tf

    longest = tf.reduce_max(tf.reduce_sum(encoder_inputs["input_mask"], axis=1))
    return {name: tensor[:, :longest] for name, tensor in encoder_inputs.items()}


def train(
    train: pd.DataFrame, val: pd.DataFrame, params: TrainBertParams, callbacks: list = ()
) -> tuple[Any, dict[str, list[float]]]:
    """A fine-tuned model and its per-epoch history."""
    from fakenews.precision import TRAINING_PRECISIONS, bfloat16_compute, check_precision
    from fakenews.training import early_stopping, set_seeds

    precision = check_precision(
        params.precision, "params.yaml: train_bert.precision", TRAINING_PRECISIONS
    )
    seed, batch_size, group = params.seed, params.batch_size, params.length_group_batches
    set_seeds(seed)
    model = build_model(params, steps_per_epoch=-(-len(train) // batch_size))
    preprocessor = model.bert_preprocessor
    train_batches = length_grouped_batches(
        preprocessor, train, batch_size, group, seed, shuffle=True
    )
    # One group spanning the whole split: validation batches simply run shortest first.
    val_batches = length_grouped_batches(
        preprocessor, val, batch_size, len(val), seed, shuffle=False
    )
    # mixed_bfloat16: bfloat16 matmuls, float32 weights and updates (fakenews.precision)
    with bfloat16_compute(precision == "mixed_bfloat16"):
        history = model.fit(
            train_batches,
            validation_data=val_batches,
            epochs=params.epochs,
            callbacks=[early_stopping(params), *callbacks],
            verbose=0,
            shuffle=False,
        )
    return model, history.history


def length_grouped_batches(
    preprocessor, frame: pd.DataFrame, batch_size: int, group_batches: int, seed: int, shuffle: bool
):
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
            sorted_groups = [
                chunk[np.argsort(lengths[chunk], kind="stable")]
                for chunk in np.split(order, range(group, len(order), group))
            ]
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


def input_spec():
    """The serving signature's input: a batch of raw titles."""
    import tensorflow as tf

    return tf.TensorSpec([None], tf.string, name="title")
