"""train_lstm on the tiny profile against a real tracking server, read back from it."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from fakenews.data.params import read_params
from fakenews.processes import free_port
from fakenews.tracking.lineage import git_output, path_hash
from stages import train_lstm
from tests.support.serving import assert_serves_as_trained

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tiny_trained, tracking_server):
    """The session's tiny training run; returns (params, run, run record)."""
    params = read_params(tiny_trained)
    run_info = json.loads(
        (Path(params["paths"]["models_dir"]) / "lstm/mlflow_run.json").read_text()
    )
    run = MlflowClient(tracking_server).get_run(run_info["run_id"])
    return params, run, run_info


def test_run_holds_params_metrics_and_tags(trained, tracking_server):
    params, run, _ = trained
    assert run.info.status == "FINISHED" and run.info.run_name == "train_lstm"
    assert run.data.params["train_lstm.lstm_units"] == "8"
    assert run.data.params["train_lstm.max_length"] == "12"
    for key in (
        "val.accuracy",
        "val.roc_auc",
        "loss",
        "val_loss",
        "accuracy",
        "mlflow_logging_seconds",
    ):
        assert key in run.data.metrics, key
    history = MlflowClient(tracking_server).get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == [0]  # one epoch in the tiny profile
    tags = run.data.tags
    assert tags["git.commit"] == git_output("rev-parse", "HEAD")
    assert tags["dvc.stage"] == "train_lstm"
    assignment = Path(params["paths"]["split"])
    assert tags[f"dvc.dep.{assignment}"] == path_hash(assignment)
    # the exact command line that ran the stage: here the test process (either xdist worker's,
    # which are the same), as typed
    assert tags["command"] == shlex.join(sys.orig_argv)
    datasets = {(d.dataset.name, d.dataset.digest) for d in run.inputs.dataset_inputs}
    assert datasets == {
        (f"assignment-{split}", path_hash(assignment)) for split in ("train", "val")
    }


def test_outputs_for_dvc(trained, tracking_uri):
    params, run, _ = trained
    metrics_dir = Path(params["paths"]["metrics_dir"])
    summary = json.loads((metrics_dir / "train_lstm.json").read_text())
    assert summary["epochs"] == 1
    assert summary["val"]["accuracy"] == pytest.approx(run.data.metrics["val.accuracy"])
    curve = pd.read_csv(metrics_dir / "train_lstm_history.csv")
    assert list(curve["epoch"]) == [1] and {"loss", "val_loss"} <= set(curve.columns)
    artifacts = {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "training")}
    assert {"training/train_lstm_curve.png", "training/train_lstm_history.csv"} <= artifacts


def test_logged_model_predicts_on_raw_headlines(trained, tracking_uri):
    _, _, run_info = trained
    model = mlflow.pyfunc.load_model(run_info["model_uri"])
    titles = [
        "Brad Pitt and Angelina Jolie SECRETLY back together!",
        "Senate passes budget",
        "   ",
        "Ünïcödé ✓",
    ]
    out = model.predict(pd.DataFrame({"title": titles}))
    assert list(out.columns) == ["fake_probability", "predicted_label"] and len(out) == 4
    threshold = run_info["threshold"]
    assert out["predicted_label"].tolist() == [
        "fake" if p >= threshold else "real" for p in out["fake_probability"]
    ]
    alone = [model.predict(pd.DataFrame({"title": [t]}))["fake_probability"][0] for t in titles]
    np.testing.assert_allclose(alone, out["fake_probability"], atol=1e-6)  # batch-independent
    assert model.metadata.signature.inputs.input_names() == ["title"]


def test_the_logged_model_reproduces_the_validation_metrics_its_training_logged(
    trained, tracking_uri
):
    params, run, run_info = trained
    assert_serves_as_trained(params, run, run_info)


def test_server_down_fails_clearly_and_logs_nowhere(tiny_pipeline, tmp_path, monkeypatch, capsys):
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        train_lstm.main(["--params", str(tiny_pipeline)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert uri in err and "make server" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no ./mlruns fallback
