"""evaluate: every model on the one held-out test split, then registry promotion.

Scores the LSTM and BERT (through their logged pyfunc models, exactly as they would be
served) beside two references trained here on the train split: TF-IDF + logistic
regression on the cleaned tokens, and the majority class. Writes DVC metrics (with
bootstrap 95 % intervals) and plots, logs one MLflow evaluation run per model linked
to its training run, registers the deep models and moves the registry aliases.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from fakenews.cli import stage_arg_parser
from fakenews.data.io import atomic_path, read_json, write_json
from fakenews.data.params import load_params, project_path
from fakenews.data.schema import read_table
from fakenews.errors import cli_errors
from fakenews.training import binary_metrics

STAGE = "evaluate"
COLUMNS = ["id", "title", "label", "tokens"]
DEEP_MODELS = ("lstm", "bert")


def reference_predictions(train: pd.DataFrame, test: pd.DataFrame, params: dict[str, Any]
                          ) -> dict[str, np.ndarray]:
    """TF-IDF + logistic regression and the majority class, fitted on train only."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    joined = lambda frame: frame["tokens"].map(" ".join)  # noqa: E731
    tfidf = make_pipeline(
        TfidfVectorizer(ngram_range=tuple(params["tfidf_ngram_range"]), sublinear_tf=True),
        LogisticRegression(C=float(params["logreg_c"]), max_iter=2000),
    ).fit(joined(train), train["label"])
    majority_rate = float(train["label"].mean() >= 0.5)
    return {
        "tfidf_logreg": tfidf.predict_proba(joined(test))[:, 1],
        "majority": np.full(len(test), majority_rate),
    }


def bootstrap_ci(labels: np.ndarray, probabilities: np.ndarray, resamples: int, seed: int
                 ) -> dict[str, float]:
    """95 % percentile intervals of accuracy and ROC-AUC over test-set resamples."""
    rng = np.random.default_rng(seed)
    labels, probabilities = np.asarray(labels), np.asarray(probabilities)
    accuracies, aucs = [], []
    for _ in range(resamples):
        idx = rng.integers(0, len(labels), len(labels))
        y, p = labels[idx], probabilities[idx]
        accuracies.append(skm.accuracy_score(y, p >= 0.5))
        if len(np.unique(y)) == 2:
            aucs.append(skm.roc_auc_score(y, p))
    low, high = (lambda v: float(np.percentile(v, 2.5)) if v else float("nan"),
                 lambda v: float(np.percentile(v, 97.5)) if v else float("nan"))
    return {"accuracy_ci_low": low(accuracies), "accuracy_ci_high": high(accuracies),
            "roc_auc_ci_low": low(aucs), "roc_auc_ci_high": high(aucs)}


def evaluate(labels: np.ndarray, predictions: dict[str, np.ndarray], params: dict[str, Any]
             ) -> dict[str, dict[str, float]]:
    """The core: metrics and intervals for every model on the same labels."""
    return {
        name: {**binary_metrics(labels, probs),
               **bootstrap_ci(labels, probs, int(params["bootstrap_resamples"]), int(params["seed"]))}
        for name, probs in predictions.items()
    }


def curve_tables(labels: np.ndarray, predictions: dict[str, np.ndarray]) -> dict[str, pd.DataFrame]:
    """ROC, precision-recall and confusion tables per model, the shape `dvc plots` reads."""
    tables = {}
    for name, probs in predictions.items():
        fpr, tpr, _ = skm.roc_curve(labels, probs)
        precision, recall, _ = skm.precision_recall_curve(labels, probs)
        tables[f"roc_{name}.csv"] = pd.DataFrame({"fpr": fpr, "tpr": tpr})
        tables[f"pr_{name}.csv"] = pd.DataFrame({"recall": recall, "precision": precision})
        tables[f"confusion_{name}.csv"] = pd.DataFrame({
            "actual": np.where(labels == 1, "fake", "real"),
            "predicted": np.where(np.asarray(probs) >= 0.5, "fake", "real"),
        })
    return tables


def deep_model_predictions(models_dir: Path, titles: list[str]) -> tuple[dict, dict]:
    """Fake-probabilities from each trained model's logged pyfunc, and its run record."""
    import mlflow.pyfunc

    predictions, runs = {}, {}
    for name in DEEP_MODELS:
        record = read_json(models_dir / name / "mlflow_run.json")
        model = mlflow.pyfunc.load_model(record["model_uri"])
        predictions[name] = model.predict(pd.DataFrame({"title": titles}))["fake_probability"].to_numpy()
        runs[name] = record
    return predictions, runs


@cli_errors
def main(argv: list[str] | None = None) -> None:
    args = stage_arg_parser(STAGE, "Score every model on the test split; promote the best.").parse_args(argv)
    all_params = load_params(args.params)
    params, paths = all_params[STAGE], all_params["paths"]
    from fakenews.tracking.lineage import path_hash
    from fakenews.tracking.registry import register_and_promote
    from fakenews.tracking.runs import connect, start_run

    split_dir = project_path(paths["split_dir"])
    train = read_table(split_dir / "train.parquet", COLUMNS)
    test = read_table(split_dir / "test.parquet", COLUMNS)
    labels = test["label"].to_numpy()
    connect()
    predictions, runs = deep_model_predictions(project_path(paths["models_dir"]), test["title"].tolist())
    predictions.update(reference_predictions(train, test, params))
    results = evaluate(labels, predictions, params)

    metrics_dir = project_path(paths["metrics_dir"])
    write_json(results, metrics_dir / "evaluate.json")
    with atomic_path(metrics_dir / "evaluate_plots") as tmp:
        tmp.mkdir()
        for file_name, table in curve_tables(labels, predictions).items():
            table.to_csv(tmp / file_name, index=False)

    test_hash = path_hash(split_dir / "test.parquet")
    for name, scores in results.items():
        link = {"training_run_id": runs[name]["run_id"]} if name in runs else {}
        with start_run(STAGE, {STAGE: params, "model": name}, [split_dir / "test.parquet"],
                       run_name=f"evaluate_{name}", extra_tags={"model": name, **link}) as run:
            run.log_metrics({"test": scores})
    decisions = register_and_promote(runs, results, test, test_hash, params)
    write_json(decisions, metrics_dir / "promotion.json")
    print(pd.DataFrame(results).T[["accuracy", "roc_auc", "f1", "log_loss"]].round(4).to_string())
    print(f"evaluate: {decisions['decision']['reason']}")


if __name__ == "__main__":
    main()
