"""evaluate, its measures, and promotion against a real tracking server and registry."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from fakenews import baselines
from fakenews.data.params import read_params
from fakenews.data.splits import load_splits
from fakenews.errors import PipelineError
from fakenews.evaluation import bootstrap_ci, calibration, choose_threshold, model_report
from fakenews.models import tfidf
from fakenews.tracking import journal, registry
from fakenews.tracking import tags as tag
from fakenews.tracking.promotion import HeldOut, register_and_promote, scored_by
from fakenews.tracking.registry import Scored
from stages import evaluate
from tests.support.params import section

PARAMS = section("evaluate", bootstrap_resamples=200, seed=1)


def test_intervals_bracket_the_point_estimate_overall_and_per_source():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    good = np.clip(labels * 0.6 + rng.random(400) * 0.4, 0, 1)
    test = pd.DataFrame(
        {"label": labels, "source": np.where(np.arange(400) < 300, "gossipcop", "politifact")}
    )
    results = evaluate.evaluate(test, {"good": (good, 0.5), "coin": (rng.random(400), 0.5)}, PARAMS)
    for scores in [
        r for result in results.values() for r in (result, *result["by_source"].values())
    ]:
        assert scores["accuracy_ci_low"] <= scores["accuracy"] <= scores["accuracy_ci_high"]
        assert scores["roc_auc_ci_low"] <= scores["roc_auc"] <= scores["roc_auc_ci_high"]
    assert {s: r["rows"] for s, r in results["good"]["by_source"].items()} == {
        "gossipcop": 300,
        "politifact": 100,
    }
    assert results["good"]["roc_auc"] > 0.9 > 0.6 > results["coin"]["roc_auc"]


@pytest.mark.parametrize("rows", [3, 40, 500])
def test_intervals_are_those_of_scoring_each_resample_with_sklearn(rows):
    """The vectorised bootstrap against the plain loop: the same rows drawn, sklearn's
    accuracy and ROC-AUC per resample (ties in the scores, and tiny draws of one class)."""
    from sklearn import metrics as skm

    rng = np.random.default_rng(rows)
    labels, scores = rng.integers(0, 2, rows), np.round(rng.random(rows), 1)
    draws = np.random.default_rng(5)
    accuracies, aucs = [], []
    for _ in range(300):
        idx = draws.integers(0, rows, rows)
        accuracies.append(skm.accuracy_score(labels[idx], scores[idx] >= 0.5))
        if len(set(labels[idx])) == 2:
            aucs.append(skm.roc_auc_score(labels[idx], scores[idx]))
    expected = {
        "accuracy_ci_low": np.percentile(accuracies, 2.5),
        "accuracy_ci_high": np.percentile(accuracies, 97.5),
        "roc_auc_ci_low": np.percentile(aucs, 2.5),
        "roc_auc_ci_high": np.percentile(aucs, 97.5),
    }
    assert bootstrap_ci(labels, scores, 0.5, 300, seed=5) == pytest.approx(expected, abs=1e-12)


def test_calibration_tells_a_calibrated_model_from_an_overconfident_one():
    rng = np.random.default_rng(3)
    probabilities = rng.random(20000)
    labels = (rng.random(20000) < probabilities).astype(int)  # fake with exactly that chance
    calibrated = calibration(labels, probabilities)
    overconfident = calibration(labels, np.where(probabilities >= 0.5, 0.99, 0.01))
    assert calibrated["ece"] < 0.02 < 0.2 < overconfident["ece"]
    assert calibrated["brier"] == pytest.approx(np.mean((probabilities - labels) ** 2))
    report = model_report(labels, probabilities, 0.5, PARAMS.bootstrap_resamples, PARAMS.seed)
    assert report["threshold"] == 0.5 and report["ece"] == calibrated["ece"]


def test_threshold_is_chosen_for_accuracy_and_stays_at_half_when_nothing_separates():
    labels = np.array([0, 0, 0, 1, 1, 1])
    shifted = np.array([0.60, 0.62, 0.64, 0.80, 0.82, 0.84])  # every score above 0.5
    threshold = choose_threshold(labels, shifted)
    assert 0.64 < threshold < 0.80 and ((shifted >= threshold) == labels).all()
    assert choose_threshold(labels, np.full(6, 0.7)) == 0.5


UNIGRAM = {
    "text": "tokens",
    "word_ngram_range": [1, 1],
    "char_ngram_range": None,
    "logreg_c": [1.0],
}


def test_references_fit_on_train_and_choose_their_threshold_on_validation():
    train = pd.DataFrame(
        {"tokens": [["alien", "shock"], ["senate", "vote"]] * 20, "label": [1, 0] * 20}
    )
    val = pd.DataFrame({"tokens": [["alien"], ["senate"], ["alien", "vote"]], "label": [1, 0, 1]})
    test = pd.DataFrame({"tokens": [["alien"], ["senate"]], "label": [1, 0]})
    references = section("evaluate", references={"tfidf_unigram": UNIGRAM}).references
    preds = baselines.reference_predictions(train, val, test, references)
    probabilities, threshold = preds["tfidf_unigram"]
    assert probabilities[0] > threshold > probabilities[1]
    assert threshold == choose_threshold(
        val["label"].to_numpy(),
        baselines.reference_predictions(train, val, val, references)["tfidf_unigram"][0],
    )
    assert set(preds["majority"][0]) == {1.0}  # ties go to fake


def test_the_word_and_character_reference_chooses_c_on_validation():
    rng = np.random.default_rng(0)
    words = np.array(["alien", "shock", "senate", "vote", "tax", "star", "rumour", "court"])

    def frame(rows: int) -> pd.DataFrame:
        label = rng.integers(0, 2, rows)
        # a weak, noisy signal: the first word leans towards the label 70 % of the time
        first = np.where(rng.random(rows) < 0.7, label, 1 - label)
        titles = [
            f"{words[f * 4 + rng.integers(0, 4)]} {' '.join(rng.choice(words, 3))}" for f in first
        ]
        return pd.DataFrame({"title": titles, "label": label})

    train, val = frame(300), frame(200)
    spec = {
        "text": "title",
        "word_ngram_range": [1, 2],
        "char_ngram_range": [2, 4],
        "char_min_df": 2,
        "logreg_c": [0.0001, 1.0],
    }
    references = section("evaluate", references={"ref": spec}).references
    model, _, c = tfidf.fit(train, val, references["ref"])
    assert c == 1.0
    assert model[-1].C == 1.0  # C = 0.0001 predicts almost the base rate: worse on validation
    assert len(model[0].transformer_list) == 2  # words and characters
    with pytest.raises(
        PipelineError, match="text: input should be 'title' or 'tokens', got 'body'"
    ):
        section("evaluate", references={"ref": dict(spec, text="body")})


def test_a_pipeline_file_holding_other_types_is_refused(tmp_path):
    """skops loads only the types a TF-IDF pipeline holds: a file that smuggles in another
    (here a callable from the standard library) is refused before anything runs."""
    import skops.io as sio

    target = tmp_path / "pipeline.skops"
    sio.dump({"payload": print}, target)
    with pytest.raises(PipelineError, match="refusing to load types"):
        tfidf.load(target)


def test_the_promotion_rule():
    decide = lambda champion, ci: registry.decide("m", "5", "roc_auc", 0.0, 0.9, champion, ci, 100)  # noqa: E731
    assert decide(None, None).promoted
    assert decide({"version": "4", "score": 0.8}, (0.01, 0.2)).promoted
    tie = decide({"version": "4", "score": 0.9}, (0.0, 0.0))
    assert not tie.promoted and "[+0.0000, +0.0000] does not beat the margin 0.0" in tie.reason
    assert not decide({"version": "4", "score": 0.8}, (-0.01, 0.2)).promoted  # noise
    other = decide({"version": "4", "why_not_comparable": "tested on another split"}, None)
    assert not other.promoted and "only `promote --force --reason`" in other.reason
    # one label in every resample: no interval, and the reason says so instead of "nan"
    blind = decide({"version": "4", "score": 0.8}, (float("nan"), float("nan")))
    assert not blind.promoted and "no bootstrap resample of the 100 test rows held both" in (
        blind.reason
    )


@pytest.mark.slow
def test_evaluate_stage_writes_metrics_plots_runs_and_a_champion(tiny_trained, tracking_uri):
    evaluate.main(["--params", str(tiny_trained)])
    params = read_params(tiny_trained)
    metrics_dir = Path(params["paths"]["metrics_dir"])
    results = json.loads((metrics_dir / "evaluate.json").read_text())
    assert set(results) == {"lstm", "bert", "tfidf", "ensemble", "tfidf_unigram", "majority"}
    test = load_splits(params["paths"]["split"], params["paths"]["cleaned"], ["id", "source"])[
        "test"
    ]
    assert {s: r["rows"] for s, r in results["bert"]["by_source"].items()} == test[
        "source"
    ].value_counts().to_dict()
    train_lstm = json.loads((metrics_dir / "train_lstm.json").read_text())
    assert results["lstm"]["threshold"] == train_lstm["val"]["threshold"]  # chosen on validation
    plots = {p.name for p in (metrics_dir / "evaluate_plots").iterdir()}
    assert {
        "roc_bert.csv",
        "pr_lstm.csv",
        "confusion_majority.csv",
        "calibration_bert.csv",
    } <= plots
    promotion = json.loads((metrics_dir / "promotion.json").read_text())
    assert (
        promotion["decision"]["promoted"] and promotion["decision"]["reason"] == "no champion yet"
    )

    client = MlflowClient(tracking_uri)
    name = params["evaluate"]["registered_model"]
    champion = client.get_model_version_by_alias(name, "champion")
    best = max(("lstm", "bert", "tfidf", "ensemble"), key=lambda family: results[family]["roc_auc"])
    assert champion.tags["family"] == best and champion.version == promotion["decision"]["version"]
    assert champion.tags[tag.SPLIT_HASH] and champion.tags["promotion.promoted"] == "True"
    runs = client.search_runs(
        [client.get_experiment_by_name("fake-news").experiment_id], "tags.dvc.stage = 'evaluate'"
    )
    linked = {r.data.tags["model"]: r.data.tags.get("training_run_id") for r in runs}
    assert set(linked) == {"lstm", "bert", "tfidf", "ensemble", "tfidf_unigram", "majority"}
    assert linked["lstm"] and linked["bert"] and linked["majority"] is None
    # the ensemble's paired difference against BERT, and its version names its members'
    paired = results["ensemble"]["paired_vs_bert"]
    for metric in ("accuracy", "roc_auc"):
        low, high = (paired[f"{metric}_difference_ci_{end}"] for end in ("low", "high"))
        assert low <= paired[f"{metric}_difference"] <= high
    versions = promotion["versions"]
    ensemble = client.get_model_version(name, versions["ensemble"])
    assert {m: ensemble.tags[f"member.{m}.version"] for m in ("bert", "lstm", "tfidf")} == {
        m: versions[m] for m in ("bert", "lstm", "tfidf")
    }
    assert {d.dataset.name for r in runs for d in r.inputs.dataset_inputs} == {"assignment-test"}


@pytest.mark.slow
def test_registration_and_promotion_on_a_real_registry(tiny_trained, tracking_uri):
    """New content registers once; a clear win promotes with its interval recorded, a tie
    and a champion from another split do not; rollback restores; force records why."""
    params = read_params(tiny_trained)
    record = json.loads((Path(params["paths"]["models_dir"]) / "lstm/mlflow_run.json").read_text())
    headlines = pd.read_parquet(params["paths"]["ingested"])
    titles, labels = headlines["title"].tolist(), headlines["label"].to_numpy()
    client = MlflowClient(tracking_uri)
    rules = section(
        "evaluate",
        registered_model="promotion-rules",
        promotion_metric="roc_auc",
        min_margin=0.0,
        bootstrap_resamples=200,
        seed=0,
    )
    model_scores = scored_by(mlflow.pyfunc.load_model(record["model_uri"]), titles)

    def promote(content_hash: str, scored: Scored, split_hash: str = "split-A") -> dict:
        candidate = {**record, "content_hash": content_hash, "metrics": {}, "scored": scored}
        test = HeldOut(labels, titles, split_hash, "data-1")
        return register_and_promote({"lstm": candidate}, test, rules)

    first = promote("weights-1", model_scores)
    assert first["decision"]["promoted"] and first["new_versions"] == ["1"]
    again = promote("weights-1", model_scores)  # the same content: nothing to register
    assert (
        again["decision"] is None
        and again["new_versions"] == []
        and again["versions"] == {"lstm": "1"}
    )
    assert registry.alias_version(client, "promotion-rules", "champion") == "1"

    tie = promote("weights-2", model_scores)["decision"]
    assert not tie["promoted"] and tie["difference_ci_low"] == tie["difference_ci_high"] == 0.0
    assert registry.alias_version(client, "promotion-rules", "champion") == "1"
    assert registry.alias_version(client, "promotion-rules", "challenger") == "2"

    perfect = Scored(labels.astype(float), labels)
    win = promote("weights-3", perfect)["decision"]
    assert win["promoted"] and win["difference_ci_low"] > 0 and win["rows_compared"] == len(labels)
    tags = client.get_model_version("promotion-rules", "3").tags
    assert float(tags["promotion.difference_ci_low"]) == win["difference_ci_low"]
    assert registry.alias_version(client, "promotion-rules", "champion") == "3"

    elsewhere = promote("weights-4", perfect, split_hash="split-B")["decision"]
    assert not elsewhere["promoted"] and "tested on split split-A" in elsewhere["reason"]

    journal.rollback(client, "promotion-rules")
    assert registry.alias_version(client, "promotion-rules", "champion") == "1"
    journal.force(client, "promotion-rules", "2", "hotfix for a known v1 bias")
    assert registry.alias_version(client, "promotion-rules", "champion") == "2"
    assert (
        client.get_model_version("promotion-rules", "2").tags["promotion.reason"]
        == "forced: hotfix for a known v1 bias"
    )
