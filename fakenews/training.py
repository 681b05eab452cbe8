"""The training loop both families share: seeds, early stopping, the epoch logger, and how
a training stage ends: the threshold and metrics on validation, then (on the chief) the
published model, metrics/<stage>.json and its training curves."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from fakenews.data.io import atomic_path, write_csv, write_json
from fakenews.data.sections import TrainingParams
from fakenews.evaluation import binary_metrics, choose_threshold


def set_seeds(seed: int) -> None:
    """Same code, data and params give the same model on CPU."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def early_stopping(params: TrainingParams):
    """Stop when `early_stopping_monitor` has not improved for `early_stopping_patience`
    epochs; keep the best epoch's weights."""
    import tensorflow as tf

    monitor = params.early_stopping_monitor
    return tf.keras.callbacks.EarlyStopping(
        monitor=monitor,
        mode="min" if monitor == "val_loss" else "max",
        patience=params.early_stopping_patience,
        restore_best_weights=True,
    )


def epoch_logger(run):
    """A Keras callback sending each epoch's metrics (and its duration) to the MLflow run."""
    import tensorflow as tf

    class EpochLogger(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            values = {k: float(v) for k, v in (logs or {}).items()}
            values["epoch_seconds"] = time.perf_counter() - self.started
            run.log_epoch(epoch, values)
            print(
                f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4f}" for k, v in values.items()),
                flush=True,
            )

    return EpochLogger()


def history_frame(history: dict[str, list[float]]) -> pd.DataFrame:
    """Keras History.history as one row per epoch, the form `dvc plots` reads."""
    frame = pd.DataFrame(history)
    frame.insert(0, "epoch", range(1, len(frame) + 1))
    return frame


def plot_history(frame: pd.DataFrame, target: Path, title: str) -> None:
    """Loss, accuracy and ROC-AUC curves, train and validation, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, metric in zip(axes, ("loss", "accuracy", "auc"), strict=False):
        for column, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if column in frame:
                ax.plot(frame["epoch"], frame[column], marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_training_outputs(
    stage: str,
    history: dict[str, list[float]],
    val_metrics: dict[str, float],
    metrics_dir: Path,
    run,
) -> None:
    """metrics/<stage>.json, the DVC plot CSV, the curve PNG; the last two also to MLflow."""
    frame = history_frame(history)
    curve_csv = metrics_dir / f"{stage}_history.csv"
    curve_png = metrics_dir / f"{stage}_curve.png"
    write_csv(frame, curve_csv)
    plot_history(frame, curve_png, stage)
    write_json({"val": val_metrics, "epochs": len(frame)}, metrics_dir / f"{stage}.json")
    run.log_metrics({"val": val_metrics, "epochs_trained": len(frame)})
    run.log_artifact(curve_csv, "training")
    run.log_artifact(curve_png, "training")


def conclude(
    stage: str,
    run,
    model,
    input_spec,
    history: dict[str, list[float]],
    val_labels: np.ndarray,
    val_probabilities: np.ndarray,
    publish: Callable[[float], str],
    metrics_dir: Path,
) -> dict[str, float]:
    """The end of a training stage: the decision threshold and the metrics on validation,
    then, on the chief (`run` is its MLflow run; None on the other workers), the model
    published by `publish(threshold)` and the stage's metrics and curves. Other workers
    take part in saving (it may run collective ops) and write nothing."""
    from fakenews.distribution import discard_outputs

    threshold = choose_threshold(val_labels, val_probabilities)
    metrics = {**binary_metrics(val_labels, val_probabilities, threshold), "threshold": threshold}
    if run is None:
        discard_outputs(model, input_spec)
        print(
            f"{stage}: worker done (val accuracy {metrics['accuracy']:.3f}); "
            "the chief logs and writes the outputs"
        )
        return metrics
    uri = publish(threshold)
    write_training_outputs(stage, history, metrics, metrics_dir, run)
    print(
        f"{stage}: val accuracy {metrics['accuracy']:.3f} at threshold {threshold:.3f}, "
        f"ROC-AUC {metrics['roc_auc']:.3f}; model {uri}"
    )
    return metrics
