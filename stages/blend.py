"""blend: the ensemble of the trained families (fakenews.models.blend), fitted on the
validation split alone, and logged to MLflow as one pyfunc that scores raw headlines end
to end by calling its members' own logged models, which travel inside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fakenews.cli import stage_arg_parser
from fakenews.data.io import read_json, write_json
from fakenews.data.params import load_params, project_path
from fakenews.data.schema import OUTPUT, TITLE
from fakenews.data.sections import BlendParams
from fakenews.data.splits import load_splits
from fakenews.errors import PipelineError, cli_errors
from fakenews.evaluation import binary_metrics
from fakenews.models.blend import Blend, fit_blend

STAGE = "blend"
COLUMNS = ["id", "title"]


def blend(
    labels: np.ndarray, probabilities: dict[str, np.ndarray], params: BlendParams
) -> tuple[Blend, dict[str, float]]:
    """The core: the ensemble fitted on the validation rows' labels and member
    probabilities, and its validation metrics at the threshold it chose."""
    fitted = fit_blend(probabilities, labels, params)
    metrics = binary_metrics(labels, fitted.scores(probabilities), fitted.threshold)
    return fitted, {**metrics, "threshold": fitted.threshold}


def member_records(models_dir: Path, members: list[str]) -> dict[str, dict[str, Any]]:
    """Each member's training output: its folder and the record its stage wrote."""
    records = {}
    for member in members:
        folder = models_dir / member
        if not (folder / "mlflow_run.json").is_file():
            raise PipelineError(
                f"{folder}: no trained {member} model (mlflow_run.json); run its "
                "training stage first (dvc repro)"
            )
        records[member] = {**read_json(folder / "mlflow_run.json"), "folder": str(folder)}
    return records


def validation_probabilities(
    records: dict[str, dict[str, Any]], titles: list[str]
) -> dict[str, np.ndarray]:
    """Every member's probabilities on the validation titles, through its logged model
    loaded from its folder, exactly as the ensemble will call it."""
    import mlflow.pyfunc

    frame = pd.DataFrame({TITLE: titles})
    return {
        member: mlflow.pyfunc.load_model(record["folder"])
        .predict(frame)[OUTPUT]
        .to_numpy(dtype=float)
        for member, record in records.items()
    }


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = stage_arg_parser(STAGE, "Fit the ensemble on validation and log it to MLflow.")
    all_params = load_params(parser.parse_args(argv).params)
    params, paths = all_params.blend, all_params.paths
    from fakenews.tracking import tags as tag
    from fakenews.tracking.publishing import publish_model
    from fakenews.tracking.runs import start_run

    assignment, ingested = project_path(paths.split), project_path(paths.ingested)
    val = load_splits(assignment, ingested, COLUMNS)["val"]  # test stays unseen until evaluate
    models_dir = project_path(paths.models_dir)
    records = member_records(models_dir, list(params.members))
    labels = val["label"].to_numpy()
    probabilities = validation_probabilities(records, val[TITLE].tolist())
    fitted, metrics = blend(labels, probabilities, params)

    members = {
        m: {k: r[k] for k in ("run_id", "model_uri", "content_hash")} for m, r in records.items()
    }
    config = {
        "scorer": "ensemble",
        "blend": fitted.as_config(),
        "threshold": fitted.threshold,
        "members": {m: r["content_hash"] for m, r in members.items()},
    }
    member_tags = {
        f"{tag.MEMBER_PREFIX}{m}.{key}": r[key]
        for m, r in members.items()
        for key in ("run_id", "content_hash")
    }
    inputs = [assignment, ingested, *(Path(r["folder"]) for r in records.values())]
    with start_run(
        STAGE,
        {STAGE: params.model_dump()},
        input_paths=inputs,
        datasets={"val": assignment},
        extra_tags=member_tags,
    ) as run:
        run.log_metrics({"val": metrics, "weight": fitted.weights})
        uri = publish_model(
            run,
            "ensemble",
            {f"member_{m}": r["folder"] for m, r in records.items()},
            config,
            models_dir / "ensemble",
            {"members": members},
        )
    members_val = {
        m: binary_metrics(labels, p, float(records[m]["threshold"]))
        for m, p in probabilities.items()
    }
    write_json(
        {
            "method": fitted.method,
            "weights": fitted.weights,
            "intercept": fitted.intercept,
            "val": metrics,
            "members_val": members_val,
        },
        project_path(paths.metrics_dir) / f"{STAGE}.json",
    )
    weights = ", ".join(f"{m} {w:.2f}" for m, w in fitted.weights.items())
    print(
        f"{STAGE}: {fitted.method} ({weights}); val accuracy {metrics['accuracy']:.3f} at "
        f"threshold {fitted.threshold:.3f}, ROC-AUC {metrics['roc_auc']:.3f}; model {uri}"
    )


if __name__ == "__main__":
    main()
