"""train_tfidf: the TF-IDF + logistic regression family (fakenews.models.tfidf), fitted on
the training split with C and its decision threshold chosen on validation, and logged to
MLflow as a pyfunc that takes raw headlines, like the deep families. It is the bar the deep
models must clear, and a member of the ensemble."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from fakenews.cli import stage_arg_parser
from fakenews.data.io import write_json
from fakenews.data.params import load_params, project_path
from fakenews.data.sections import TrainTfidfParams
from fakenews.data.splits import load_splits
from fakenews.errors import cli_errors
from fakenews.evaluation import binary_metrics
from fakenews.models import tfidf

STAGE = "train_tfidf"
COLUMNS = ["id", "title"]


def train_tfidf(
    parts: dict[str, pd.DataFrame], params: TrainTfidfParams
) -> tuple[Any, dict[str, float], float]:
    """The core: the fitted pipeline, its validation metrics (threshold among them) and the
    C it chose, from the train and val splits; test stays unseen until evaluate."""
    model, threshold, c = tfidf.fit(parts["train"], parts["val"], params)
    val = parts["val"]
    probabilities = model.predict_proba(tfidf.model_text(val, params))[:, 1]
    metrics = binary_metrics(val["label"].to_numpy(), probabilities, threshold)
    return model, {**metrics, "threshold": threshold}, c


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = stage_arg_parser(STAGE, "Fit the TF-IDF family and log it to MLflow.")
    all_params = load_params(parser.parse_args(argv).params)
    params, paths = all_params.train_tfidf, all_params.paths
    from fakenews.tracking.publishing import publish_model
    from fakenews.tracking.runs import start_run

    assignment, ingested = project_path(paths.split), project_path(paths.ingested)
    splits = load_splits(assignment, ingested, COLUMNS)
    parts = {name: splits[name] for name in ("train", "val")}
    model, metrics, c = train_tfidf(parts, params)
    config: dict[str, Any] = {
        "scorer": "tfidf",
        "text": params.text,
        "threshold": metrics["threshold"],
    }
    with (
        start_run(
            STAGE,
            {STAGE: params.model_dump()},
            input_paths=[assignment, ingested],
            datasets={"train": assignment, "val": assignment},
        ) as run,
        tempfile.TemporaryDirectory() as work,
    ):
        pipeline = Path(work) / "pipeline.skops"
        tfidf.save(model, pipeline)
        artifacts = {"pipeline": str(pipeline)}
        run.log_metrics({"val": metrics, "logreg_c": c})
        uri = publish_model(
            run,
            "tfidf",
            artifacts,
            config,
            project_path(paths.models_dir) / "tfidf",
        )
    write_json({"val": metrics, "logreg_c": c}, project_path(paths.metrics_dir) / f"{STAGE}.json")
    print(
        f"{STAGE}: C = {c:g}; val accuracy {metrics['accuracy']:.3f} at "
        f"threshold {metrics['threshold']:.3f}, ROC-AUC {metrics['roc_auc']:.3f}; model {uri}"
    )


if __name__ == "__main__":
    main()
