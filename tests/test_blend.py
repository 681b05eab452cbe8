"""The ensemble (fakenews.models.blend, stages/blend.py): fitted on validation alone, logged
as one pyfunc that calls its members, and scoring what its weights say, whether loaded in
process, from the registry in a clean process, or served by `mlflow models serve`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

from fakenews.data.params import read_params
from fakenews.errors import PipelineError
from fakenews.models.blend import Blend, fit_blend, simplex_grid
from stages import blend as blend_stage
from tests.support.commands import subprocess_env, write_params
from tests.support.params import section
from tests.support.serving import served_model

TITLES = [
    "Senate passes the annual budget bill",
    "Celebrity secretly married to alien, insiders say",
    "",
    "Ünïcödé 日本語 — «fake» news",
    "word " * 300,
]


def synthetic(rows: int = 400, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Three members: `good` knows the label, `weak` a little, `noise` nothing."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, rows)
    good = np.clip(labels * 0.5 + rng.random(rows) * 0.5, 0, 1)
    weak = np.clip(labels * 0.2 + rng.random(rows) * 0.8, 0, 1)
    return {"bert": good, "lstm": weak, "tfidf": rng.random(rows)}, labels


def test_the_weight_grid_covers_the_simplex():
    grid = simplex_grid(3, 0.05)
    assert len(grid) == 231 and len(set(grid)) == 231  # C(20 + 2, 2)
    assert all(min(w) >= 0 and abs(sum(w) - 1) < 1e-12 for w in grid)


def test_the_searched_weights_follow_what_each_member_knows():
    probabilities, labels = synthetic()
    fitted = fit_blend(probabilities, labels, section("blend"))
    assert fitted.method == "weighted_average" and sum(fitted.weights.values()) == pytest.approx(1)
    assert fitted.weights["bert"] > fitted.weights["lstm"] >= fitted.weights["tfidf"]
    scores = fitted.scores(probabilities)
    expected = sum(fitted.weights[m] * probabilities[m] for m in fitted.members)
    np.testing.assert_allclose(scores, expected)
    assert 0 < fitted.threshold < 1


def test_stacking_is_cross_fitted_and_given_weights_are_used_as_given():
    probabilities, labels = synthetic()
    stacked = fit_blend(probabilities, labels, section("blend", method="logistic_stacking"))
    assert stacked.weights["bert"] > abs(stacked.weights["tfidf"])
    assert stacked.scores(probabilities).min() > 0 and stacked.scores(probabilities).max() < 1
    given = fit_blend(
        probabilities, labels, section("blend", weights={"bert": 2, "lstm": 1, "tfidf": 1})
    )
    assert given.weights == {"bert": 0.5, "lstm": 0.25, "tfidf": 0.25}
    assert Blend.from_config(json.loads(json.dumps(given.as_config()))) == given


def test_bad_blend_settings_and_one_class_are_one_line_errors():
    with pytest.raises(PipelineError, match=r"blend.weights must give a weight to each"):
        section("blend", weights={"bert": 1})
    with pytest.raises(PipelineError, match="blend.members names a family twice"):
        section("blend", members=["bert", "bert"])
    with pytest.raises(PipelineError, match=r"blend.members\[1\]: input should be"):
        section("blend", members=["bert", "roberta"])
    probabilities, labels = synthetic()
    with pytest.raises(PipelineError, match="one class only"):
        fit_blend(probabilities, np.zeros_like(labels), section("blend"))


# ---- the stage, on the session's tiny models ----------------------------------------------


def ensemble_dir(params: dict) -> Path:
    return Path(params["paths"]["models_dir"]) / "ensemble"


def weighted_members(params: dict, titles: list[str]) -> np.ndarray:
    """What the ensemble should answer: its members' own logged models, weighted by
    metrics/blend.json."""
    blend = json.loads((Path(params["paths"]["metrics_dir"]) / "blend.json").read_text())
    models = Path(params["paths"]["models_dir"])
    frame = pd.DataFrame({"title": titles})
    return sum(
        weight * mlflow.pyfunc.load_model(str(models / member)).predict(frame)["fake_probability"]
        for member, weight in blend["weights"].items()
    ).to_numpy()


@pytest.mark.slow
def test_no_test_row_reaches_the_fitting(tiny_trained, tracking_uri, tmp_path):
    """Shuffling the test labels (or dropping the test rows' titles) changes nothing the
    blend stage fits: weights, threshold and validation figures are the same."""
    params = read_params(tiny_trained)
    assignment = pd.read_parquet(params["paths"]["split"])
    test = assignment["split"] == "test"
    rng = np.random.default_rng(0)
    shuffled = assignment.copy()
    shuffled.loc[test, "label"] = (
        1 - shuffled.loc[test, "label"].to_numpy()[rng.permutation(test.sum())]
    )
    assert (shuffled["label"] != assignment["label"]).any()
    ingested = pd.read_parquet(params["paths"]["ingested"])
    ingested.loc[ingested["id"].isin(assignment.loc[test, "id"]), "title"] = "scrambled"

    models = tmp_path / "models"
    for member in ("lstm", "bert", "tfidf"):
        shutil.copytree(Path(params["paths"]["models_dir"]) / member, models / member)
    changed = {
        **params,
        "paths": {
            **params["paths"],
            "models_dir": str(models),
            "metrics_dir": str(tmp_path / "metrics"),
            "split": str(tmp_path / "assignment.parquet"),
            "ingested": str(tmp_path / "headlines.parquet"),
        },
    }
    shuffled.to_parquet(changed["paths"]["split"], index=False)
    ingested.to_parquet(changed["paths"]["ingested"], index=False)
    blend_stage.main(["--params", str(write_params(tmp_path / "params.yaml", changed))])

    original = json.loads((Path(params["paths"]["metrics_dir"]) / "blend.json").read_text())
    again = json.loads((tmp_path / "metrics" / "blend.json").read_text())
    assert again == original


@pytest.mark.slow
def test_the_logged_ensemble_scores_its_weighted_members(tiny_trained):
    params = read_params(tiny_trained)
    record = json.loads((ensemble_dir(params) / "mlflow_run.json").read_text())
    assert set(record["members"]) == {"bert", "lstm", "tfidf"}
    out = mlflow.pyfunc.load_model(str(ensemble_dir(params))).predict(
        pd.DataFrame({"title": TITLES})
    )
    np.testing.assert_allclose(out["fake_probability"], weighted_members(params, TITLES), atol=1e-9)
    threshold = record["threshold"]
    assert out["predicted_label"].tolist() == [
        "fake" if p >= threshold else "real" for p in out["fake_probability"]
    ]


@pytest.fixture(scope="module")
def registered_ensemble(tiny_trained, tracking_server):
    """The tiny ensemble as version 1 of a registered model of this module's own."""
    from mlflow.tracking import MlflowClient

    params = read_params(tiny_trained)
    record = json.loads((ensemble_dir(params) / "mlflow_run.json").read_text())
    mlflow.set_tracking_uri(tracking_server)
    version = mlflow.register_model(record["model_uri"], "blend-test-ensemble").version
    yield f"models:/blend-test-ensemble/{version}", params
    MlflowClient(tracking_server).delete_registered_model("blend-test-ensemble")


@pytest.mark.slow
def test_the_registered_ensemble_from_a_clean_process_and_served(
    registered_ensemble, tracking_server
):
    uri, params = registered_ensemble
    expected = weighted_members(params, TITLES)
    env = {**subprocess_env(), "MLFLOW_TRACKING_URI": tracking_server}
    script = (
        "import json, sys, mlflow.pyfunc, pandas as pd\n"
        "titles = json.loads(sys.stdin.read())\n"
        f"out = mlflow.pyfunc.load_model({uri!r}).predict(pd.DataFrame({{'title': titles}}))\n"
        "print(json.dumps(out['fake_probability'].tolist()))\n"
    )
    clean = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(TITLES),
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert clean.returncode == 0, clean.stderr[-2000:]
    np.testing.assert_allclose(json.loads(clean.stdout.splitlines()[-1]), expected, atol=1e-9)

    with served_model(uri, env, timeout=300) as url:
        response = requests.post(
            f"{url}/invocations",
            timeout=120,
            json={"dataframe_records": [{"title": t} for t in TITLES]},
        )
    assert response.status_code == 200, response.text
    served = [p["fake_probability"] for p in response.json()["predictions"]]
    np.testing.assert_allclose(served, expected, atol=1e-6)


@pytest.mark.slow
def test_trace_follows_the_registered_ensemble_to_each_members_run(
    registered_ensemble, tracking_uri, capsys
):
    """`tools.trace models:/<name>/<version>` of an ensemble prints its own run, then each
    member's training run (the runs its members' mlflow_run.json name)."""
    from tools import trace

    uri, params = registered_ensemble
    trace.main([uri])
    out = capsys.readouterr().out
    ensemble_run = json.loads((ensemble_dir(params) / "mlflow_run.json").read_text())["run_id"]
    assert out.startswith(f"run      {ensemble_run}  (stage blend, FINISHED)")
    models_dir = Path(params["paths"]["models_dir"])
    for member, stage in (("bert", "train_bert"), ("lstm", "train_lstm"), ("tfidf", "train_tfidf")):
        member_run = json.loads((models_dir / member / "mlflow_run.json").read_text())["run_id"]
        assert f"member {member}:\nrun      {member_run}  (stage {stage}, FINISHED)" in out
