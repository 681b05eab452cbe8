"""BERT training throughput for bench.throughput: train_bert's model and batches on a slice
of the training split, each epoch timed beside the matmul bound, and one step broken
into forward, backward and the optimiser."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bench.hardware import Interleaved, MatmulBound, encoder_flops, timed
from fakenews.data.sections import TrainBertParams


def training_throughput(
    params: TrainBertParams, train: pd.DataFrame, bounds: dict, config: dict, rows: int, rounds: int
) -> dict[str, Any]:
    """train_bert's model and batches on the first `rows` training headlines, one epoch a round."""
    from fakenews.models.bert import build_model, length_grouped_batches
    from fakenews.precision import bfloat16_compute
    from fakenews.training import set_seeds

    set_seeds(params.seed)
    train = train.head(rows)
    batch_size = params.batch_size
    model = build_model(params, steps_per_epoch=-(-len(train) // batch_size))
    batches = length_grouped_batches(
        model.bert_preprocessor,
        train,
        batch_size,
        params.length_group_batches,
        params.seed,
        shuffle=True,
    )
    lengths = word_pieces_of(model.bert_preprocessor, train["title"].tolist(), params.seq_length)
    padded = sum(len(b) * lengths[b].max() for b in batches.batches)
    flops = 3 * float(encoder_flops(lengths, config).mean())  # forward + backward (2x)
    precisions = ["float32", "mixed_bfloat16"] if "bfloat16" in bounds else ["float32"]

    def epoch(precision: str):
        with bfloat16_compute(precision == "mixed_bfloat16"):
            model.fit(batches, epochs=1, verbose=0, shuffle=False)

    figures = Interleaved(bounds, flops).measure(
        {p: (lambda p=p: epoch(p)) for p in precisions}, len(train), rounds
    )
    figures["rows"], figures["batch_size"] = len(train), batch_size
    figures["padding_overhead"] = round(padded / lengths.sum() - 1, 3)
    figures["step_breakdown_ms"] = step_breakdown(
        model, batches, bounds["float32"], config, lengths
    )
    return figures


def word_pieces_of(preprocessor, titles: list[str], cap: int) -> np.ndarray:
    import tensorflow as tf

    pieces = preprocessor.tokenize(tf.constant(titles))
    return np.minimum(pieces.merge_dims(1, -1).row_lengths().numpy() + 2, cap)


def step_breakdown(
    model, batches, bound: MatmulBound, config: dict, lengths: np.ndarray, repeats: int = 5
) -> dict[str, float]:
    """Milliseconds per float32 step on the median-length batch: forward, + backward, full
    Keras step (+ Adam and metrics), against the matmul-only time of the same FLOPs."""
    import tensorflow as tf

    median = sorted(range(len(batches)), key=lambda i: lengths[batches.batches[i]].max())[
        len(batches) // 2
    ]
    titles, labels = batches[median]
    labels = tf.constant(labels, tf.float32)[:, None]
    rows = batches.batches[median]
    loss_fn = tf.keras.losses.BinaryCrossentropy()

    @tf.function(autograph=False)
    def forward(training: bool):
        return model(titles, training=training)

    @tf.function(autograph=False)
    def forward_backward():
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(titles, training=True))
        return tape.gradient(loss, model.trainable_variables)

    steps = {
        "forward_inference": lambda: forward(False).numpy(),
        "forward_training": lambda: forward(True).numpy(),
        "forward_backward": lambda: next(iter(forward_backward())).numpy(),
        "keras_train_step": lambda: model.train_on_batch(titles, labels),
    }
    out = {}
    for name, step in steps.items():
        step()
        out[name] = round(1000 * min(timed(step)[0] for _ in range(repeats)), 1)
    gflops = bound()[0]
    padded_forward = float(encoder_flops(np.full(len(rows), lengths[rows].max()), config).sum())
    out["matmul_only_forward"] = round(1000 * padded_forward / (gflops * 1e9), 1)
    out["matmul_only_train_step"] = round(3 * out["matmul_only_forward"], 1)
    out["rows"], out["word_pieces"] = len(rows), int(lengths[rows].max())
    return out
