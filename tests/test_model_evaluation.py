"""MLflow's evaluation of a model's test scores gives the project's own numbers.

`evaluate` logs the figures `mlflow.models.evaluate` computes (fakenews.tracking.test_results)
and writes metrics/evaluate.json from fakenews.evaluation.binary_metrics; promotion reads the
latter. Here both run on the same scores, on a real MLflow store (SQLite in a temporary
folder), including the awkward cases: tied scores, scores on the threshold, a model that
saturates at 0 and 1, and one that never says fake.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pytest

from fakenews.evaluation import binary_metrics
from fakenews.tracking.runs import StageRun
from fakenews.tracking.test_results import (
    MLFLOW_NAMES,
    ScoresAtThreshold,
    evaluate_in_mlflow,
    evaluation_data,
    own_figures,
)

PLOTS = {
    "roc_curve_plot",
    "precision_recall_curve_plot",
    "calibration_curve_plot",
    "confusion_matrix",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A real MLflow tracking store in a temporary folder; the previous URI restored after."""
    folder = tmp_path_factory.mktemp("mlflow-store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("scores", artifact_location=(folder / "art").as_uri())
    yield uri, experiment
    mlflow.set_tracking_uri(previous)


class Split:
    """What evaluation_data takes from the split's MLflow dataset."""

    name, digest = "assignment-test", "0123456789abcdef0123456789abcdef"
    source = None


def scores(case: str) -> tuple[np.ndarray, np.ndarray, float]:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 300)
    if case == "ties":  # scores on a coarse grid, some exactly at the threshold
        return labels, np.round(np.clip(labels * 0.3 + rng.random(300) * 0.7, 0, 1), 1), 0.6
    if case == "saturated":  # the majority class: 1.0 for every row
        return labels, np.ones(300), 0.5
    return labels, rng.random(300) * 0.4, 0.5  # never says fake: precision 0


@pytest.mark.parametrize("case", ["ties", "saturated", "never-fake"])
def test_mlflow_evaluate_gives_binary_metrics_numbers_and_the_plots(store, case):
    uri, experiment = store
    labels, probabilities, threshold = scores(case)
    model = mlflow.initialize_logged_model(name="scores", experiment_id=experiment)
    with mlflow.start_run(experiment_id=experiment) as active:
        got = evaluate_in_mlflow(
            StageRun(uri),
            labels,
            probabilities,
            threshold,
            evaluation_data(labels, probabilities, Split),
            model.model_id,
        )
    ours = binary_metrics(labels, probabilities, threshold)
    assert {name: got[MLFLOW_NAMES[name]] for name in ours} == pytest.approx(ours, abs=1e-12)
    assert got["example_count"] == 300

    logged = mlflow.get_logged_model(model.model_id).metrics
    assert {m.key: m.value for m in logged} == pytest.approx(got, abs=1e-12)
    assert {(m.dataset_name, m.dataset_digest, m.run_id) for m in logged} == {
        (Split.name, Split.digest, active.info.run_id)
    }
    plots = {
        a.path.removesuffix(".png")
        for a in mlflow.artifacts.list_artifacts(run_id=active.info.run_id)
    }
    assert PLOTS <= plots


def test_scores_at_threshold_is_the_threshold_rule_of_binary_metrics():
    frame = np.array([[0.2], [0.5], [0.5000001], [0.9]])
    model = ScoresAtThreshold(0.5)
    assert model.predict(frame).tolist() == [False, True, True, True]  # >= as binary_metrics
    assert model.predict_proba(frame)[:, 1].tolist() == frame[:, 0].tolist()
    assert model.classes_.tolist() == [False, True]  # predict_proba's columns, in order


def test_only_what_mlflow_does_not_compute_is_logged_beside_it():
    figures = {**dict.fromkeys(MLFLOW_NAMES, 0.5), "brier": 0.2, "by_source": {"a": {"rows": 3}}}
    assert own_figures(figures, evaluated_by_mlflow=True) == {
        "brier": 0.2,
        "by_source": {"a": {"rows": 3}},
    }
    assert own_figures(figures, evaluated_by_mlflow=False) == figures
