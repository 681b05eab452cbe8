"""What both training stages share: seeds, metrics, the epoch logger and their outputs."""
from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from fakenews.data.io import atomic_path, write_csv, write_json
from fakenews.errors import PipelineError


def set_seeds(seed: int) -> None:
    """Same code, data and params give the same model on CPU."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def learning_rate(params: dict[str, Any], steps_per_epoch: int):
    """`learning_rate`, held constant or, with `lr_schedule: linear`, warmed up linearly
    over the first `warmup_fraction` of all steps and then decayed linearly to zero (the
    BERT fine-tuning recipe)."""
    import tensorflow as tf

    peak = float(params["learning_rate"])
    schedule = params.get("lr_schedule", "constant")
    if schedule == "constant":
        return peak
    if schedule != "linear":
        raise PipelineError(f"params.yaml: lr_schedule must be constant or linear, not {schedule!r}")
    fraction = float(params.get("warmup_fraction", 0.0))
    if not 0.0 <= fraction < 1.0:
        raise PipelineError(f"params.yaml: warmup_fraction must be at least 0 and below 1, not {fraction}")
    total = max(1, int(params["epochs"]) * steps_per_epoch)
    warmup = int(fraction * total)

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

    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate), loss="binary_crossentropy",
                  metrics=["accuracy", tf.keras.metrics.AUC(name="auc")])


def early_stopping(params: dict[str, Any]):
    """Stop when `early_stopping_monitor` (default val_loss) has not improved for
    `early_stopping_patience` epochs; keep the best epoch's weights."""
    import tensorflow as tf

    monitor = params.get("early_stopping_monitor", "val_loss")
    if monitor not in ("val_loss", "val_accuracy", "val_auc"):
        raise PipelineError(f"params.yaml: early_stopping_monitor must be val_loss, val_accuracy "
                            f"or val_auc, not {monitor!r}")
    return tf.keras.callbacks.EarlyStopping(
        monitor=monitor, mode="min" if monitor == "val_loss" else "max",
        patience=int(params["early_stopping_patience"]), restore_best_weights=True,
    )


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5
                   ) -> dict[str, float]:
    """Accuracy, precision, recall, F1, ROC-AUC, PR-AUC and log loss of fake-probabilities."""
    labels = np.asarray(labels).astype(int)
    probabilities = np.clip(np.asarray(probabilities, dtype=float), 1e-7, 1 - 1e-7)
    predicted = (probabilities >= threshold).astype(int)
    both_classes = len(np.unique(labels)) == 2
    return {
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, probabilities)) if both_classes else float("nan"),
        "pr_auc": float(skm.average_precision_score(labels, probabilities)) if both_classes else float("nan"),
        "log_loss": float(skm.log_loss(labels, probabilities, labels=[0, 1])),
    }


def choose_threshold(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The decision threshold with the best validation accuracy; among equals, the one
    nearest 0.5 (so a model that separates nothing keeps 0.5). Candidates are midpoints
    between neighbouring distinct probabilities, so the choice does not sit on a score."""
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    distinct = np.unique(probabilities)
    candidates = np.concatenate([[0.5], (distinct[:-1] + distinct[1:]) / 2])
    accuracy = [(float(((probabilities >= c) == labels).mean()), -abs(c - 0.5)) for c in candidates]
    return float(candidates[max(range(len(candidates)), key=accuracy.__getitem__)])


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
            print(f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4f}" for k, v in values.items()),
                  flush=True)

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
    for ax, metric in zip(axes, ("loss", "accuracy", "auc")):
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


def write_training_outputs(stage: str, history: dict[str, list[float]],
                           val_metrics: dict[str, float], metrics_dir: Path, run) -> None:
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


def save_serving_model(model, target: Path, input_spec) -> None:
    """A SavedModel with one signature: `input_spec` → {"fake_probability": [batch]}.

    It saves a plain module holding the weights and the one serving function, not the
    Keras model: Keras would trace every layer's call for its own object graph, which
    costs more than the training of a tiny model and is never loaded back.
    """
    import tensorflow as tf

    module = tf.Module(name="headline_classifier")
    module.weights = list(model.variables)
    # BERT's tokenize/pack layers call functions of this hub object; it owns the vocab table.
    module.preprocessor = getattr(model, "bert_preprocessor", None)

    @tf.function(input_signature=[input_spec])
    def serve(inputs):
        return {"fake_probability": model(inputs, training=False)[:, 0]}

    module.serve = serve
    with atomic_path(target) as tmp:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": serve})


def publish_model(run, model, input_spec, artifacts: dict[str, str], config: dict[str, Any],
                  model_dir: Path) -> str:
    """Log the pyfunc model to the run and keep a copy of it as the DVC output.

    The output folder is the MLflow model itself (loadable with no tracking server) plus
    mlflow_run.json with the run id and model URI that evaluate needs; it appears only
    once the model is logged. Returns the model URI.
    """
    import mlflow.artifacts

    from fakenews.tracking.lineage import CONTENT_HASH_TAG
    from fakenews.tracking.pyfunc import log_headline_model

    with tempfile.TemporaryDirectory() as work:
        saved = Path(work) / "saved_model"
        save_serving_model(model, saved, input_spec)
        all_artifacts = {"saved_model": str(saved), **artifacts}
        content = content_hash(saved, artifacts, config)
        run.call(mlflow.set_tag, CONTENT_HASH_TAG, content)
        info = log_headline_model(run, all_artifacts, config, Path(work))
        with atomic_path(model_dir) as tmp:
            run.call(mlflow.artifacts.download_artifacts, info.model_uri, dst_path=str(tmp))
            write_json({"run_id": run.run_id, "model_uri": info.model_uri, "content_hash": content,
                        "threshold": config.get("threshold", 0.5)}, tmp / "mlflow_run.json")
    return info.model_uri


def content_hash(saved_model: Path, artifacts: dict[str, str], config: dict[str, Any]) -> str:
    """What makes two models the same: the weights (the SavedModel's variables), the
    config and every other artifact, but not the graph file, whose function names carry
    process-wide counters, nor any run id or timestamp."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    files = sorted((saved_model / "variables").glob("*"))
    files += [Path(path) for _, path in sorted(artifacts.items()) if Path(path).is_file()]
    for file in files:
        digest.update(file.name.encode())
        with open(file, "rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()
