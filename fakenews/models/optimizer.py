"""What both families compile with: Adam, binary cross-entropy, accuracy and ROC-AUC, and
BERT's optional linear warm-up and decay of the learning rate."""

from __future__ import annotations

from fakenews.data.sections import TrainBertParams


def learning_rate(params: TrainBertParams, steps_per_epoch: int):
    """`learning_rate`, held constant or, with `lr_schedule: linear`, warmed up linearly
    over the first `warmup_fraction` of all steps and then decayed linearly to zero (the
    BERT fine-tuning recipe)."""
    import tensorflow as tf

    peak = params.learning_rate
    if params.lr_schedule == "constant":
        return peak
    total = max(1, params.epochs * steps_per_epoch)
    warmup = int(params.warmup_fraction * total)

    class WarmupLinearDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            rising = peak * (step + 1) / max(1, warmup)
            falling = peak * tf.maximum(0.0, (total - step) / max(1, total - warmup))
            return tf.where(step < warmup, rising, falling)

        def get_config(self):
            return {"peak": peak, "total_steps": total, "warmup_steps": warmup}

    return WarmupLinearDecay()


def compile_binary(model, learning_rate) -> None:
    """Adam (learning_rate: a number or a Keras schedule) and binary cross-entropy,
    tracking accuracy and ROC-AUC every epoch."""
    import tensorflow as tf

    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy", tf.keras.metrics.AUC(name="auc")],
    )
