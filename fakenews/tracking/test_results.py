"""evaluate's side of MLflow: the trained models scored through their logged pyfuncs, and
one `evaluate_<model>` run per model whose test figures also go to that model's LoggedModel,
with the test split as their dataset, so the experiment's Models tab and
`mlflow.search_logged_models(order_by=...)` rank the models by them.

What MLflow computes and what the project computes:
- `mlflow.models.evaluate` (its default classifier evaluator) gives accuracy_score,
  precision_score, recall_score, f1_score, log_loss, roc_auc, precision_recall_auc and the
  confusion counts, and draws the standard plots: ROC, precision-recall, lift, calibration
  and the confusion matrix. It logs them to the run and, through `model_id`, to the
  LoggedModel. These are the same numbers as fakenews.evaluation.binary_metrics, which
  metrics/evaluate.json and promotion keep using (tests/test_model_evaluation.py holds the
  two to each other), so they are not logged twice.
- The project's own code (fakenews.evaluation) logs only what MLflow does not compute:
  bootstrap intervals, the paired differences against `evaluate.paired_against`, the
  per-source metrics, the calibration figures (Brier score, ECE: MLflow plots the
  reliability curve but gives no number) and the threshold chosen on validation.

MLflow's evaluator takes probabilities only from a model with `predict_proba` (its
scikit-learn flavours), and the logged pyfuncs return a probability column instead. So the
test scores, computed once per model through its pyfunc exactly as served, are handed to
it as ScoresAtThreshold: a one-column scikit-learn classifier, fake-probability in and the
label at the model's threshold out. No model is scored twice.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fakenews.baselines import Predictions
from fakenews.data.io import read_json
from fakenews.data.schema import OUTPUT
from fakenews.data.sections import EvaluateParams
from fakenews.errors import PipelineError
from fakenews.scoring.models import logged_model_id
from fakenews.tracking import tags as tag

STAGE = "evaluate"
# The target column: whether the headline is fake. Booleans, so that MLflow reads the
# labels as classes and their sorted order (False, True) puts the positive class last,
# as scikit-learn's classes_ and log loss expect.
TARGET = "fake"
CLASSES = np.array([False, True])
# binary_metrics' names -> MLflow's evaluator's names for the same figures
MLFLOW_NAMES = {
    "accuracy": "accuracy_score",
    "precision": "precision_score",
    "recall": "recall_score",
    "f1": "f1_score",
    "log_loss": "log_loss",
    "roc_auc": "roc_auc",
    "pr_auc": "precision_recall_auc",
}
# binary_metrics scores probabilities clipped to this distance from 0 and 1; MLflow is
# handed the same ones, so that log loss agrees for a model that saturates (the majority class)
PROBABILITY_MARGIN = 1e-7


def logged_model_predictions(
    models_dir: Path, families: tuple[str, ...], titles: list[str]
) -> tuple[Predictions, dict[str, dict[str, Any]]]:
    """Each trained family's logged pyfunc on the titles, exactly as it would be served:
    (probabilities, threshold), and the run record its training stage wrote (run id, model
    URI, content hash) with the predictions as `scored`. Each runs with the code it was
    logged with (fakenews.scoring.models.load_model)."""
    from fakenews.scoring.models import ModelNotFound, load_model
    from fakenews.tracking.promotion import scored_by

    predictions, records = {}, {}
    for name in families:
        record = read_json(models_dir / name / "mlflow_run.json")
        try:
            model = load_model(record["model_uri"])
        except ModelNotFound:
            raise PipelineError(
                f"{models_dir / name}: its model {record['model_uri']} is not on this tracking "
                f"server (DVC may have restored it from a run that logged to another one); "
                f"train it again here: dvc repro -f -s <its training stage>, then dvc repro"
            ) from None
        records[name] = {**record, "scored": scored_by(model, titles)}
        predictions[name] = (records[name]["scored"].probabilities, float(record["threshold"]))
    return predictions, records


class ScoresAtThreshold:
    """A scikit-learn classifier over one column of fake-probabilities already computed:
    predict_proba returns them (columns in `classes_` order), predict whether fake at the
    threshold (>= as in fakenews.evaluation.binary_metrics)."""

    classes_ = CLASSES

    def __init__(self, threshold: float) -> None:
        self.threshold = float(threshold)

    def predict_proba(self, frame) -> np.ndarray:
        fake = np.asarray(frame, dtype=float)[:, 0]
        return np.column_stack([1.0 - fake, fake])

    def predict(self, frame) -> np.ndarray:
        return np.asarray(frame, dtype=float)[:, 0] >= self.threshold


def evaluation_data(labels: np.ndarray, probabilities: np.ndarray, split):
    """The test split as MLflow's evaluator reads it: each row's fake-probability (clipped as
    binary_metrics clips it) and its label, under the name and digest of `split`, the
    split's MLflow dataset (fakenews.tracking.runs.dataset_input)."""
    import mlflow.data

    clipped = np.clip(
        np.asarray(probabilities, dtype=float), PROBABILITY_MARGIN, 1 - PROBABILITY_MARGIN
    )
    frame = pd.DataFrame({OUTPUT: clipped, TARGET: np.asarray(labels) == 1})
    return mlflow.data.from_pandas(
        frame, source=split.source, targets=TARGET, name=split.name, digest=split.digest
    )


@contextlib.contextmanager
def _as_scikit_learn_model(threshold: float) -> Iterator[Any]:
    """ScoresAtThreshold saved and loaded back as an MLflow scikit-learn model, the form
    MLflow's evaluator asks for probabilities."""
    import mlflow.pyfunc
    import mlflow.sklearn

    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "scores"
        mlflow.sklearn.save_model(
            ScoresAtThreshold(threshold),
            str(path),
            pip_requirements=[],  # never served; spares MLflow inferring them in a subprocess
            skops_trusted_types=[f"{__name__}.{ScoresAtThreshold.__qualname__}"],
        )
        yield mlflow.pyfunc.load_model(str(path))


class _NoScoreMethod(logging.Filter):
    """MLflow's evaluator also tries sklearn's `score` and warns when a model has none;
    ScoresAtThreshold has none on purpose (it would be accuracy_score again)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "sklearn model score failed" not in record.getMessage()


def evaluate_in_mlflow(
    run, labels: np.ndarray, probabilities: np.ndarray, threshold: float, data, model_id: str | None
) -> dict[str, float]:
    """`mlflow.models.evaluate` of one model's test scores inside the active run: metrics and
    plots to the run, metrics also to LoggedModel `model_id` with `data` as their dataset.
    Returns MLflow's metrics."""
    import mlflow.models
    from sklearn.exceptions import UndefinedMetricWarning

    evaluator_log = logging.getLogger("mlflow.models.evaluation.default_evaluator")
    no_score = _NoScoreMethod()
    evaluator_log.addFilter(no_score)
    try:
        with _as_scikit_learn_model(threshold) as model, warnings.catch_warnings():
            # a model that predicts no fake: precision is 0, as binary_metrics has it
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            result = run.call(
                mlflow.models.evaluate,
                model,
                data,
                model_type="classifier",
                model_id=model_id,
                evaluator_config={
                    "log_model_explainability": False,
                    "label_list": CLASSES.tolist(),
                    "pos_label": True,
                },
            )
    finally:
        evaluator_log.removeFilter(no_score)
    return {key: float(value) for key, value in result.metrics.items()}


def own_figures(scores: dict[str, Any], evaluated_by_mlflow: bool) -> dict[str, Any]:
    """What the project logs beside MLflow's evaluation: everything but the figures MLflow
    computed itself (all of it when MLflow could not evaluate)."""
    skip = MLFLOW_NAMES if evaluated_by_mlflow else {}
    return {key: value for key, value in scores.items() if key not in skip}


def log_test_results(
    results: dict[str, dict[str, Any]],
    predictions: Predictions,
    labels: np.ndarray,
    records: dict[str, dict[str, Any]],
    params: EvaluateParams,
    inputs: list[Path],
    assignment: Path,
) -> None:
    """One `evaluate_<model>` run per model: MLflow's evaluation of its test scores, then
    the project's own figures (module docstring); a trained model's go to its LoggedModel
    too, all with the test split as their dataset."""
    import mlflow

    from fakenews.tracking.lineage import flatten, mlflow_key
    from fakenews.tracking.runs import dataset_input, start_run

    split = dataset_input(assignment, "test")
    both_classes = len(np.unique(labels)) == 2  # MLflow's ROC-AUC needs both
    for name, scores in results.items():
        record = records.get(name, {})
        model_id = logged_model_id(record["model_uri"]) if record else None
        link = {tag.TRAINING_RUN: record["run_id"]} if record else {}
        with start_run(
            STAGE,
            {STAGE: params.model_dump(), "model": name},
            inputs,
            run_name=f"evaluate_{name}",
            extra_tags={"model": name, **link},
            datasets={"test": assignment},
        ) as run:
            probabilities, threshold = predictions[name]
            data = evaluation_data(labels, probabilities, split)
            if both_classes:
                evaluate_in_mlflow(run, labels, probabilities, threshold, data, model_id)
            own = flatten(own_figures(scores, both_classes))
            run.call(
                mlflow.log_metrics,
                {mlflow_key(key): float(value) for key, value in own.items()},
                model_id=model_id,
                dataset=data,
            )
