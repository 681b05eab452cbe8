"""Publishing a trained model: log it to its MLflow run as a pyfunc named after its family,
tag it with its content hash (fakenews.tracking.logged_code), and keep the logged model as
the stage's DVC output."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fakenews.data.io import atomic_path, write_json
from fakenews.tracking import tags as tag


def publish_model(
    run,
    family: str,
    artifacts: dict[str, str],
    config: dict[str, Any],
    model_dir: Path,
    record: dict[str, Any] | None = None,
) -> str:
    """Log the pyfunc model (artifacts and config, as fakenews.tracking.scorers reads them)
    to the run and keep a copy of it as the DVC output; returns the model URI.

    The output folder is the MLflow model itself (loadable with no tracking server) plus
    mlflow_run.json with the run id, model URI, content hash and threshold that evaluate
    (and `record`'s extra keys) need; it appears only once the model is logged. The hash is
    of the model as logged, downloaded back: its weights and every other artifact, its
    config, its code and its signature.
    """
    import mlflow.artifacts

    from fakenews.tracking.logged_code import content_hash
    from fakenews.tracking.pyfunc import log_headline_model

    with tempfile.TemporaryDirectory() as work:
        info = log_headline_model(run, artifacts, config, Path(work), name=family)
    with atomic_path(model_dir) as tmp:
        run.call(mlflow.artifacts.download_artifacts, info.model_uri, dst_path=str(tmp))
        content = content_hash(tmp)
        run.call(mlflow.set_tag, tag.CONTENT_HASH, content)
        write_json(
            {
                "run_id": run.run_id,
                "model_uri": info.model_uri,
                "content_hash": content,
                "family": family,
                "threshold": config.get("threshold", 0.5),
                **(record or {}),
            },
            tmp / "mlflow_run.json",
        )
    return info.model_uri


def publish_keras(
    run,
    family: str,
    model,
    input_spec,
    artifacts: dict[str, str],
    config: dict[str, Any],
    model_dir: Path,
) -> str:
    """publish_model for a Keras model: its serving SavedModel (fakenews.models.export)
    beside `artifacts` (the hash leaves out its graph file, whose function names carry
    process-wide counters)."""
    from fakenews.models.export import save_serving_model

    with tempfile.TemporaryDirectory() as work:
        saved = Path(work) / "saved_model"
        save_serving_model(model, saved, input_spec)
        return publish_model(
            run, family, {"saved_model": str(saved), **artifacts}, config, model_dir
        )
