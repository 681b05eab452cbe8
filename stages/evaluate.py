"""evaluate: every model on the one held-out test split, then registry promotion.

Scores the trained families (LSTM, BERT, TF-IDF) and their ensemble through their logged
pyfunc models, exactly as they would be served, each at the decision threshold it chose on
validation, beside the references (fakenews.baselines) fitted here on train. Writes DVC
metrics (bootstrap 95 % intervals, calibration, the same per source, and each trained
model's paired difference against `evaluate.paired_against`) and plots; logs one MLflow
evaluation run per model, through `mlflow.models.evaluate` for the figures and plots MLflow
computes and the project's own code only for the rest, with each trained model's test
figures on its LoggedModel (fakenews.tracking.test_results says which is which); and hands
the trained models to the registry (fakenews.tracking.promotion).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fakenews.baselines import Predictions, reference_predictions
from fakenews.cli import stage_arg_parser
from fakenews.data.io import atomic_path, write_json
from fakenews.data.params import load_params, project_path
from fakenews.data.sections import EvaluateParams
from fakenews.data.splits import load_splits
from fakenews.errors import cli_errors
from fakenews.evaluation import curve_tables, model_report, paired_difference, per_source

STAGE = "evaluate"
TRAINED = ("lstm", "bert", "tfidf", "ensemble")  # logged models, registered when new
COLUMNS = ["id", "title", "source", "tokens"]


def evaluate(
    test: pd.DataFrame, predictions: Predictions, params: EvaluateParams
) -> dict[str, dict[str, Any]]:
    """The core: every model's report on the same rows, overall and per source."""
    labels, sources = test["label"].to_numpy(), test["source"].to_numpy()
    draws = (params.bootstrap_resamples, params.seed)
    results = {
        name: {
            **model_report(labels, probs, threshold, *draws),
            "by_source": per_source(labels, probs, threshold, sources, *draws),
        }
        for name, (probs, threshold) in predictions.items()
    }
    against = params.paired_against
    for name in TRAINED:
        if name != against and name in predictions and against in predictions:
            results[name][f"paired_vs_{against}"] = paired_difference(
                labels, predictions[name], predictions[against], *draws
            )
    return results


def write_plots(labels: np.ndarray, predictions: Predictions, folder) -> None:
    """ROC, precision-recall, confusion and reliability tables for `dvc plots`, whole or not
    at all."""
    thresholds = {name: threshold for name, (_, threshold) in predictions.items()}
    probabilities = {name: probs for name, (probs, _) in predictions.items()}
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        for file_name, table in curve_tables(labels, probabilities, thresholds).items():
            table.to_csv(tmp / file_name, index=False)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = stage_arg_parser(STAGE, "Score every model on the test split; promote the best.")
    all_params = load_params(parser.parse_args(argv).params)
    params, paths = all_params.evaluate, all_params.paths
    from fakenews.tracking.connection import connect
    from fakenews.tracking.lineage import path_hash
    from fakenews.tracking.promotion import HeldOut, promote_unless_experiment
    from fakenews.tracking.test_results import log_test_results, logged_model_predictions

    assignment, cleaned = project_path(paths.split), project_path(paths.cleaned)
    parts = load_splits(assignment, cleaned, COLUMNS)
    train, val, test = parts["train"], parts["val"], parts["test"]
    titles, labels = test["title"].tolist(), test["label"].to_numpy()
    connect()
    predictions, records = logged_model_predictions(project_path(paths.models_dir), TRAINED, titles)
    predictions.update(reference_predictions(train, val, test, params.references))
    results = evaluate(test, predictions, params)

    metrics_dir = project_path(paths.metrics_dir)
    write_json(results, metrics_dir / "evaluate.json")
    write_plots(labels, predictions, metrics_dir / "evaluate_plots")
    log_test_results(
        results, predictions, labels, records, params, [assignment, cleaned], assignment
    )
    candidates = {
        name: {
            **records[name],
            "metrics": {k: v for k, v in results[name].items() if isinstance(v, float)},
        }
        for name in TRAINED
    }
    held_out = HeldOut(
        labels, titles, path_hash(assignment), path_hash(project_path(paths.ingested))
    )
    report = promote_unless_experiment(candidates, held_out, params)
    write_json(report, metrics_dir / "promotion.json")
    summary = pd.DataFrame(
        {n: {k: r[k] for k in ("accuracy", "roc_auc", "f1", "brier")} for n, r in results.items()}
    ).T
    print(summary.round(4).to_string())
    print(f"evaluate: {report['reason']}")


if __name__ == "__main__":
    main()
