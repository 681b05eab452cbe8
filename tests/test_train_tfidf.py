"""train_tfidf on the tiny profile against a real tracking server: a trained family like the
deep ones, whose logged model serves what its training measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from fakenews.data.params import read_params
from tests.support.serving import assert_serves_as_trained

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tiny_trained, tracking_server):
    params = read_params(tiny_trained)
    record = json.loads((Path(params["paths"]["models_dir"]) / "tfidf/mlflow_run.json").read_text())
    return params, MlflowClient(tracking_server).get_run(record["run_id"]), record


def test_the_run_records_its_choice_of_c_and_its_validation_figures(trained):
    params, run, record = trained
    assert run.info.status == "FINISHED" and run.data.tags["dvc.stage"] == "train_tfidf"
    summary = json.loads((Path(params["paths"]["metrics_dir"]) / "train_tfidf.json").read_text())
    assert summary["logreg_c"] in params["train_tfidf"]["logreg_c"]
    assert run.data.metrics["logreg_c"] == summary["logreg_c"]
    assert run.data.metrics["val.threshold"] == pytest.approx(record["threshold"])
    assert (
        record["family"] == "tfidf"
        and run.data.tags["model.content_hash"] == record["content_hash"]
    )


def test_the_logged_model_reproduces_the_validation_metrics_its_training_logged(
    trained, tracking_uri
):
    assert_serves_as_trained(*trained)
