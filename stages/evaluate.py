"""evaluate: every model on the one held-out test split, then registry promotion.

Scores the LSTM and BERT (through their logged pyfunc models, exactly as they would be
served, each at the decision threshold it chose on validation) beside two references
fitted here: TF-IDF + logistic regression (word and character n-grams, fitted on train,
C and threshold chosen on validation; and the weaker one it replaced) and the majority
class. Writes DVC metrics (bootstrap 95 % intervals, calibration, and the same per
source) and plots, logs one MLflow evaluation run per model linked to its training run,
and hands the deep models to the registry (fakenews.tracking.promotion). Under
`dvc exp run` nothing is registered unless `evaluate.register_experiments` is true: an
experiment must not move production aliases.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fakenews.cli import stage_arg_parser
from fakenews.data.io import atomic_path, read_json, write_json
from fakenews.data.params import load_params, project_path
from fakenews.data.splits import load_splits
from fakenews.errors import PipelineError, cli_errors
from fakenews.evaluation import curve_tables, model_report, per_source
from fakenews.training import choose_threshold

STAGE = "evaluate"
DEEP_MODELS = ("lstm", "bert")


def reference_predictions(train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame,
                          params: dict[str, Any]) -> dict[str, tuple[np.ndarray, float]]:
    """Every TF-IDF + logistic regression reference of `params["references"]` and the
    majority class, fitted on train only: {name: (test probabilities, threshold)}."""
    predictions = {}
    for name, spec in params["references"].items():
        model, threshold = tfidf_reference(train, val, spec)
        predictions[name] = (model.predict_proba(reference_text(test, spec))[:, 1], threshold)
    majority_rate = float(train["label"].mean() >= 0.5)
    predictions["majority"] = (np.full(len(test), majority_rate), 0.5)
    return predictions


def reference_text(frame: pd.DataFrame, spec: dict[str, Any]) -> pd.Series:
    """The text a reference reads: the lowercased headline or the cleaned tokens."""
    if spec["text"] == "title":
        return frame["title"].str.lower()
    if spec["text"] == "tokens":
        return frame["tokens"].map(" ".join)
    raise PipelineError(f"params.yaml: evaluate.references text must be title or tokens, "
                        f"not {spec['text']!r}")


def tfidf_reference(train: pd.DataFrame, val: pd.DataFrame, spec: dict[str, Any]):
    """Word n-grams (plus character n-grams within words when `char_ngram_range` is set),
    sublinear TF-IDF, logistic regression: each C of `logreg_c` is fitted on train and the
    one with the best validation ROC-AUC kept, with the threshold it chooses on validation."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline, make_union

    features = [TfidfVectorizer(ngram_range=tuple(spec["word_ngram_range"]), sublinear_tf=True)]
    if spec.get("char_ngram_range"):
        features.append(TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(spec["char_ngram_range"]),
                                        min_df=int(spec.get("char_min_df", 1)), sublinear_tf=True))
    x_train, x_val = reference_text(train, spec), reference_text(val, spec)
    y_val = val["label"].to_numpy()
    best = None
    for c in spec["logreg_c"]:
        model = make_pipeline(make_union(*features), LogisticRegression(C=float(c), max_iter=3000))
        probabilities = model.fit(x_train, train["label"]).predict_proba(x_val)[:, 1]
        score = roc_auc_score(y_val, probabilities) if len(np.unique(y_val)) == 2 else 0.0
        if best is None or score > best[0]:
            best = (score, model, probabilities)
    _, model, probabilities = best
    return model, choose_threshold(y_val, probabilities)


def evaluate(test: pd.DataFrame, predictions: dict[str, tuple[np.ndarray, float]],
             params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The core: every model's report on the same rows, overall and per source."""
    labels, sources = test["label"].to_numpy(), test["source"].to_numpy()
    return {name: {**model_report(labels, probs, threshold, params),
                   "by_source": per_source(labels, probs, threshold, sources, params)}
            for name, (probs, threshold) in predictions.items()}


def deep_model_predictions(models_dir: Path, titles: list[str]) -> tuple[dict, dict]:
    """Each trained model's logged pyfunc on the titles: (probabilities, threshold) and the
    run record (run id, model URI, content hash) written by its training stage."""
    import mlflow.pyfunc

    from fakenews.tracking.promotion import scored_by

    predictions, records = {}, {}
    for name in DEEP_MODELS:
        record = read_json(models_dir / name / "mlflow_run.json")
        model = mlflow.pyfunc.load_model(record["model_uri"])
        records[name] = {**record, "scored": scored_by(model, titles)}
        predictions[name] = (records[name]["scored"].probabilities, float(record["threshold"]))
    return predictions, records


def is_experiment() -> bool:
    """Under `dvc exp run` (DVC names the experiment in DVC_EXP_NAME)."""
    return bool(os.environ.get("DVC_EXP_NAME"))


@cli_errors
def main(argv: list[str] | None = None) -> None:
    args = stage_arg_parser(STAGE, "Score every model on the test split; promote the best.").parse_args(argv)
    all_params = load_params(args.params)
    params, paths = all_params[STAGE], all_params["paths"]
    from fakenews.tracking.lineage import path_hash
    from fakenews.tracking.promotion import register_and_promote
    from fakenews.tracking.runs import connect, start_run

    assignment = project_path(paths["split"])
    parts = load_splits(assignment, project_path(paths["cleaned"]), ["id", "title", "source", "tokens"])
    train, val, test = parts["train"], parts["val"], parts["test"]
    connect()
    predictions, records = deep_model_predictions(project_path(paths["models_dir"]), test["title"].tolist())
    predictions.update(reference_predictions(train, val, test, params))
    results = evaluate(test, predictions, params)

    metrics_dir = project_path(paths["metrics_dir"])
    write_json(results, metrics_dir / "evaluate.json")
    thresholds = {name: threshold for name, (_, threshold) in predictions.items()}
    probabilities = {name: probs for name, (probs, _) in predictions.items()}
    with atomic_path(metrics_dir / "evaluate_plots") as tmp:
        tmp.mkdir()
        for file_name, table in curve_tables(test["label"].to_numpy(), probabilities, thresholds).items():
            table.to_csv(tmp / file_name, index=False)

    inputs = [assignment, project_path(paths["cleaned"])]
    for name, scores in results.items():
        link = {"training_run_id": records[name]["run_id"]} if name in records else {}
        with start_run(STAGE, {STAGE: params, "model": name}, inputs, run_name=f"evaluate_{name}",
                       extra_tags={"model": name, **link}, datasets={"test": assignment}) as run:
            run.log_metrics({"test": {k: v for k, v in scores.items() if k != "by_source"},
                             "test_by_source": scores["by_source"]})
    if is_experiment() and not params.get("register_experiments", False):
        report = {"decision": None, "reason": f"experiment {os.environ['DVC_EXP_NAME']}: nothing "
                  "registered and no alias moved (evaluate.register_experiments is false); apply "
                  "and commit it, then `dvc repro`, to put its model forward"}
    else:
        candidates = {name: {**records[name], "metrics": {k: v for k, v in results[name].items()
                                                          if isinstance(v, float)}}
                      for name in DEEP_MODELS}
        report = register_and_promote(candidates, test["label"].to_numpy(), test["title"].tolist(),
                                      path_hash(assignment), path_hash(project_path(paths["ingested"])),
                                      params)
    write_json(report, metrics_dir / "promotion.json")
    summary = pd.DataFrame({n: {k: r[k] for k in ("accuracy", "roc_auc", "f1", "brier")}
                            for n, r in results.items()}).T
    print(summary.round(4).to_string())
    print(f"evaluate: {report['reason']}")


if __name__ == "__main__":
    main()
