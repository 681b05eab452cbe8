"""evaluate and promotion against a real tracking server and registry."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from fakenews.data.params import load_params
from fakenews.tracking import registry
from stages import evaluate


def test_metrics_and_bootstrap_intervals_bracket_the_point_estimate():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    good = np.clip(labels * 0.6 + rng.random(400) * 0.4, 0, 1)
    results = evaluate.evaluate(labels, {"good": good, "coin": rng.random(400)},
                                {"bootstrap_resamples": 200, "seed": 1})
    for scores in results.values():
        assert scores["accuracy_ci_low"] <= scores["accuracy"] <= scores["accuracy_ci_high"]
        assert scores["roc_auc_ci_low"] <= scores["roc_auc"] <= scores["roc_auc_ci_high"]
    assert results["good"]["roc_auc"] > 0.9 > 0.6 > results["coin"]["roc_auc"]


def test_references_train_on_train_only():
    train = pd.DataFrame({"tokens": [["alien", "shock"], ["senate", "vote"]] * 20, "label": [1, 0] * 20})
    test = pd.DataFrame({"tokens": [["alien"], ["senate"]], "label": [1, 0]})
    preds = evaluate.reference_predictions(train, test, {"tfidf_ngram_range": [1, 1], "logreg_c": 1.0})
    assert preds["tfidf_logreg"][0] > 0.5 > preds["tfidf_logreg"][1]
    assert set(preds["majority"]) == {1.0}  # ties go to fake


@pytest.mark.slow
def test_evaluate_stage_writes_metrics_plots_runs_and_a_champion(tiny_trained, tracking_uri):
    evaluate.main(["--params", str(tiny_trained)])
    params = load_params(tiny_trained)
    metrics_dir = Path(params["paths"]["metrics_dir"])
    results = json.loads((metrics_dir / "evaluate.json").read_text())
    assert set(results) == {"lstm", "bert", "tfidf_logreg", "majority"}
    plots = {p.name for p in (metrics_dir / "evaluate_plots").iterdir()}
    assert {"roc_bert.csv", "pr_lstm.csv", "confusion_majority.csv"} <= plots
    decision = json.loads((metrics_dir / "promotion.json").read_text())["decision"]
    assert decision["promoted"] and decision["reason"] == "no champion yet"

    client = MlflowClient(tracking_uri)
    name = params["evaluate"]["registered_model"]
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.tags["promotion.promoted"] == "True"
    assert champion.tags["family"] in ("lstm", "bert") and "test.roc_auc" in champion.tags
    runs = client.search_runs([client.get_experiment_by_name("fake-news").experiment_id],
                              "tags.dvc.stage = 'evaluate'")
    linked = {r.data.tags["model"]: r.data.tags.get("training_run_id") for r in runs}
    assert set(linked) == {"lstm", "bert", "tfidf_logreg", "majority"}
    assert linked["lstm"] and linked["bert"] and linked["majority"] is None


@pytest.mark.slow
def test_promotion_rules_on_a_real_registry(tiny_trained, tracking_uri):
    """worse challenger stays out, better one takes over, rollback restores, force records why."""
    import mlflow

    params = load_params(tiny_trained)
    record = json.loads((Path(params["paths"]["models_dir"]) / "lstm/mlflow_run.json").read_text())
    client = MlflowClient(tracking_uri)
    name = "promotion-rules"
    v1, v2, v3 = (mlflow.register_model(record["model_uri"], name).version for _ in range(3))
    scores = {v1: 0.80, v2: 0.75, v3: 0.90}
    score_of = lambda v: scores[v]  # noqa: E731  (the scores stand for test-split metrics)

    first = registry.decide(client, name, v1, "roc_auc", 0.0, score_of)
    registry.apply(client, first)
    assert first.promoted and registry.alias_version(client, name, "champion") == v1

    worse = registry.decide(client, name, v2, "roc_auc", 0.01, score_of)
    registry.apply(client, worse)
    assert not worse.promoted and "does not beat" in worse.reason
    assert registry.alias_version(client, name, "champion") == v1
    assert registry.alias_version(client, name, "challenger") == v2
    assert client.get_model_version(name, v2).tags["promotion.promoted"] == "False"

    better = registry.decide(client, name, v3, "roc_auc", 0.01, score_of)
    registry.apply(client, better)
    assert better.promoted and registry.alias_version(client, name, "champion") == v3

    again = registry.decide(client, name, v3, "roc_auc", 0.01, score_of)
    assert not again.promoted and again.reason == "already champion"  # idempotent

    registry.rollback(client, name)
    assert registry.alias_version(client, name, "champion") == v1

    registry.force(client, name, v2, "hotfix for a known v1 bias")
    assert registry.alias_version(client, name, "champion") == v2
    assert client.get_model_version(name, v2).tags["promotion.reason"] == "forced: hotfix for a known v1 bias"
