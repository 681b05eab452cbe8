"""The session's tiny `dvc repro` on a real server: each trained model's LoggedModel holds its
test figures, tied to the test split as their dataset, so MLflow ranks the models by them.

`mlflow.search_logged_models` ordered by test accuracy returns the four trained models
(named by family) in the order of metrics/evaluate.json; every figure on the model is the
number evaluate.json holds, logged by that model's `evaluate_<family>` run, which records
the model as its input and holds MLflow's standard plots.
"""

from __future__ import annotations

import json

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from fakenews.tracking.lineage import path_hash
from fakenews.tracking.test_results import MLFLOW_NAMES
from tests.support.tiny import TINY_REPRO_EXPERIMENT

pytestmark = pytest.mark.slow

FAMILIES = ("lstm", "bert", "tfidf", "ensemble")
PLOTS = {
    "roc_curve_plot.png",
    "precision_recall_curve_plot.png",
    "calibration_curve_plot.png",
    "confusion_matrix.png",
}


@pytest.fixture(scope="module")
def repro(tiny_repro, tracking_server):
    outputs = tiny_repro.outputs
    model_ids = {
        json.loads((outputs / "models" / family / "mlflow_run.json").read_text())[
            "model_uri"
        ].removeprefix("models:/"): family
        for family in FAMILIES
    }
    split = outputs / "data/split/assignment.parquet"
    return {
        "client": MlflowClient(tracking_server),
        "experiment": MlflowClient(tracking_server).get_experiment_by_name(TINY_REPRO_EXPERIMENT),
        "results": json.loads((outputs / "metrics/evaluate.json").read_text()),
        "model_ids": model_ids,
        "dataset": ("assignment-test", path_hash(split)[:32]),
    }


def test_search_logged_models_ranks_the_trained_models_by_test_accuracy(repro, tracking_uri):
    name, digest = repro["dataset"]
    ranked = mlflow.search_logged_models(
        experiment_ids=[repro["experiment"].experiment_id],
        order_by=[
            {
                "field_name": "metrics.accuracy_score",
                "ascending": False,
                "dataset_name": name,
                "dataset_digest": digest,
            }
        ],
        output_format="list",
    )
    # other tests' experiments add models to this experiment; the repro's four keep their order
    ours = [model for model in ranked if model.model_id in repro["model_ids"]]
    assert sorted(model.name for model in ours) == sorted(FAMILIES)
    assert all(model.name == repro["model_ids"][model.model_id] for model in ours)
    accuracies = [repro["results"][model.name]["accuracy"] for model in ours]
    assert accuracies == sorted(accuracies, reverse=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_model_holds_its_test_figures_from_its_evaluation_run(repro, family):
    client, results = repro["client"], repro["results"][family]
    (model_id,) = [mid for mid, fam in repro["model_ids"].items() if fam == family]
    model = client.get_logged_model(model_id)
    test = [m for m in model.metrics if m.dataset_name is not None]
    assert {(m.dataset_name, m.dataset_digest) for m in test} == {repro["dataset"]}
    latest = {m.key: m.value for m in sorted(test, key=lambda m: m.timestamp)}
    # MLflow's evaluator's figures, the same numbers as evaluate.json's
    assert {ours: latest[theirs] for ours, theirs in MLFLOW_NAMES.items()} == pytest.approx(
        {ours: results[ours] for ours in MLFLOW_NAMES}, abs=1e-12
    )
    # the project's own: intervals, calibration, threshold, per source
    for key in ("accuracy_ci_low", "roc_auc_ci_high", "brier", "ece", "threshold"):
        assert latest[key] == pytest.approx(results[key], abs=1e-12), key
    for source, figures in results["by_source"].items():
        assert latest[f"by_source.{source}.roc_auc"] == pytest.approx(
            figures["roc_auc"], nan_ok=True
        )
        assert latest[f"by_source.{source}.rows"] == figures["rows"]

    runs = {m.run_id for m in test}
    for run_id in runs:
        run = client.get_run(run_id)
        assert run.info.run_name == f"evaluate_{family}" and run.data.tags["model"] == family
        assert model_id in {i.model_id for i in run.inputs.model_inputs}
        assert PLOTS <= {a.path for a in client.list_artifacts(run_id)}
