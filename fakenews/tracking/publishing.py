"""Publishing a trained model: log it to its MLflow run as a pyfunc, tag it with its content
hash, and keep the logged model as the training stage's DVC output."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from fakenews.data.io import atomic_path, write_json
from fakenews.models.export import save_serving_model
from fakenews.tracking import tags as tag


def publish_model(
    run, model, input_spec, artifacts: dict[str, str], config: dict[str, Any], model_dir: Path
) -> str:
    """Log the pyfunc model to the run and keep a copy of it as the DVC output.

    The output folder is the MLflow model itself (loadable with no tracking server) plus
    mlflow_run.json with the run id and model URI that evaluate needs; it appears only
    once the model is logged. Returns the model URI.
    """
    import mlflow.artifacts

    from fakenews.tracking.pyfunc import log_headline_model

    with tempfile.TemporaryDirectory() as work:
        saved = Path(work) / "saved_model"
        save_serving_model(model, saved, input_spec)
        all_artifacts = {"saved_model": str(saved), **artifacts}
        content = content_hash(saved, artifacts, config)
        run.call(mlflow.set_tag, tag.CONTENT_HASH, content)
        info = log_headline_model(run, all_artifacts, config, Path(work))
        with atomic_path(model_dir) as tmp:
            run.call(mlflow.artifacts.download_artifacts, info.model_uri, dst_path=str(tmp))
            write_json(
                {
                    "run_id": run.run_id,
                    "model_uri": info.model_uri,
                    "content_hash": content,
                    "threshold": config.get("threshold", 0.5),
                },
                tmp / "mlflow_run.json",
            )
    return info.model_uri


def content_hash(saved_model: Path, artifacts: dict[str, str], config: dict[str, Any]) -> str:
    """What makes two models the same: the weights (the SavedModel's variables), the
    config and every other artifact, but not the graph file, whose function names carry
    process-wide counters, nor any run id or timestamp."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    files = sorted((saved_model / "variables").glob("*"))
    files += [Path(path) for _, path in sorted(artifacts.items()) if Path(path).is_file()]
    for file in files:
        digest.update(file.name.encode())
        with open(file, "rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()
