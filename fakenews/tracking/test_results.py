"""evaluate's side of MLflow: the trained models scored through their logged pyfuncs, and
one evaluation run per model with its test metrics, linked to its training run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fakenews.baselines import Predictions
from fakenews.data.io import read_json
from fakenews.data.sections import EvaluateParams
from fakenews.errors import PipelineError
from fakenews.tracking import tags as tag

STAGE = "evaluate"


def logged_model_predictions(
    models_dir: Path, families: tuple[str, ...], titles: list[str]
) -> tuple[Predictions, dict[str, dict[str, Any]]]:
    """Each trained family's logged pyfunc on the titles, exactly as it would be served:
    (probabilities, threshold), and the run record its training stage wrote (run id, model
    URI, content hash) with the predictions as `scored`. Each runs with the code it was
    logged with (fakenews.scoring.models.load_model)."""
    from fakenews.scoring.models import ModelNotFound, load_model
    from fakenews.tracking.promotion import scored_by

    predictions, records = {}, {}
    for name in families:
        record = read_json(models_dir / name / "mlflow_run.json")
        try:
            model = load_model(record["model_uri"])
        except ModelNotFound:
            raise PipelineError(
                f"{models_dir / name}: its model {record['model_uri']} is not on this tracking "
                f"server (DVC may have restored it from a run that logged to another one); "
                f"train it again here: dvc repro -f -s <its training stage>, then dvc repro"
            ) from None
        records[name] = {**record, "scored": scored_by(model, titles)}
        predictions[name] = (records[name]["scored"].probabilities, float(record["threshold"]))
    return predictions, records


def log_test_results(
    results: dict[str, dict[str, Any]],
    records: dict[str, dict[str, Any]],
    params: EvaluateParams,
    inputs: list[Path],
    assignment: Path,
) -> None:
    """One `evaluate_<model>` run per model: its test metrics, overall and per source."""
    from fakenews.tracking.runs import start_run

    for name, scores in results.items():
        link = {tag.TRAINING_RUN: records[name]["run_id"]} if name in records else {}
        with start_run(
            STAGE,
            {STAGE: params.model_dump(), "model": name},
            inputs,
            run_name=f"evaluate_{name}",
            extra_tags={"model": name, **link},
            datasets={"test": assignment},
        ) as run:
            run.log_metrics(
                {
                    "test": {k: v for k, v in scores.items() if k != "by_source"},
                    "test_by_source": scores["by_source"],
                }
            )
