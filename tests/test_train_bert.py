"""train_bert on the tiny profile: hub modules built from the real weights, a real server."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from fakenews.data.params import read_params
from tests.support.serving import assert_serves_as_trained

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bert_run(tiny_trained, tracking_server):
    params = read_params(tiny_trained)
    record = json.loads((Path(params["paths"]["models_dir"]) / "bert/mlflow_run.json").read_text())
    return params, MlflowClient(tracking_server).get_run(record["run_id"]), record


def test_run_is_logged_like_train_lstm(bert_run, tracking_server):
    params, run, _ = bert_run
    assert run.info.status == "FINISHED" and run.info.run_name == "train_bert"
    assert run.data.params["train_bert.seq_length"] == "16"
    assert run.data.params["train_bert.pooling"] == params["train_bert"]["pooling"]
    for key in ("val.accuracy", "val.roc_auc", "loss", "val_loss", "epoch_seconds"):
        assert key in run.data.metrics, key
    tags = run.data.tags
    assert tags["dvc.stage"] == "train_bert" and len(tags["git.commit"]) == 40
    assert any(k.startswith("dvc.dep.") and k.endswith("bert_encoder") for k in tags)
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {
        "assignment-train",
        "assignment-val",
    }
    curve = pd.read_csv(Path(params["paths"]["metrics_dir"]) / "train_bert_history.csv")
    assert list(curve["epoch"]) == [1]


def test_logged_model_scores_raw_headlines(bert_run, tracking_uri):
    _, _, record = bert_run
    model = mlflow.pyfunc.load_model(record["model_uri"])
    titles = [
        "Kim Kardashian reveals secret twin",
        "Senate passes budget",
        "",
        "x" * 5000,
        "日本語のニュース",
    ]
    scored = model.predict(pd.DataFrame({"title": titles}))
    out = scored["fake_probability"]
    assert len(out) == 5
    assert scored["predicted_label"].tolist() == [
        "fake" if p >= record["threshold"] else "real" for p in out
    ]
    # the same headline gives the same probability, whatever batch it is in
    alone = model.predict(pd.DataFrame({"title": titles[:1]}))["fake_probability"][0]
    assert alone == pytest.approx(out[0], abs=1e-5)


def test_the_logged_model_reproduces_the_validation_metrics_its_training_logged(
    bert_run, tracking_uri
):
    assert_serves_as_trained(*bert_run)
