"""Which model scores: the registry champion, any model URI, or a local folder; loading it."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from fakenews.data.io import read_json
from fakenews.data.params import DEFAULT_PARAMS, load_params
from fakenews.errors import PipelineError

SERVER_SCHEMES = ("models", "runs", "mlflow-artifacts")  # resolved through the tracking server
REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/\d+)$")


def default_model_uri(params_path: Path | str = DEFAULT_PARAMS) -> str:
    """The registry champion: models:/<evaluate.registered_model>@champion."""
    from fakenews.tracking.registry import CHAMPION

    return f"models:/{load_params(params_path).evaluate.registered_model}@{CHAMPION}"


def loadable_uri(model: str) -> str:
    """A URI mlflow can load: URIs pass through; a local folder must be a model or a
    training output."""
    scheme = urlparse(model).scheme
    if scheme not in ("", "file"):
        return model
    folder = Path(urlparse(model).path if scheme == "file" else model).expanduser()
    if (folder / "MLmodel").is_file():
        return str(folder)
    if (folder / "mlflow_run.json").is_file():  # written by the training stages (publish_model)
        return read_json(folder / "mlflow_run.json")["model_uri"]
    what = (
        "is neither an MLflow model folder (no MLmodel file) nor"
        if folder.exists()
        else "not found; not"
    )
    raise PipelineError(
        f"{folder}: {what} a training output with mlflow_run.json; "
        "give a models:/ or runs:/ URI, or a folder from `mlflow artifacts download`"
    )


@contextlib.contextmanager
def model_errors(uri: str) -> Iterator[None]:
    """A model that cannot be reached or loaded inside the block becomes one PipelineError
    naming the URI (and, for the registry, how to see its aliases)."""
    from mlflow.exceptions import MlflowException

    from fakenews.tracking.connection import connect

    if urlparse(uri).scheme in SERVER_SCHEMES:
        try:
            connect()
        except PipelineError as err:
            raise PipelineError(f"cannot load the model {uri}: {err}") from None
    try:
        yield
    except (MlflowException, OSError) as err:
        message = getattr(err, "message", None) or str(err)
        raise PipelineError(
            f"cannot load the model {uri}: {message.rstrip('.')}{_registry_hint(uri)}"
        ) from None


def load_model(model: str):
    """The pyfunc model at `model`; PipelineError naming the URI when it cannot be loaded."""
    uri = loadable_uri(model)
    import mlflow.pyfunc

    with model_errors(uri):
        return mlflow.pyfunc.load_model(uri)


def download_model(model: str, target: Path) -> Path:
    """The model's files in a local folder (under `target`), with the errors of load_model:
    the Spark engine checks the model this way before it starts Spark."""
    uri = loadable_uri(model)
    if Path(uri).is_dir():
        return Path(uri)
    import mlflow.artifacts

    with model_errors(uri):
        return Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(target)))


def _registry_hint(uri: str) -> str:
    match = REGISTERED.match(uri)
    if not match:
        return ""
    return (
        f"; see its aliases with `python -m tools.promote --model "
        f"{match['name']} show`, or train and evaluate one with `dvc repro`"
    )


def describe(uri: str) -> str:
    """`uri`, with the version an alias points at, so the log says which model scored."""
    match = REGISTERED.match(uri)
    if not (match and match["alias"]):
        return uri
    from mlflow.tracking import MlflowClient

    from fakenews.tracking.registry import alias_version

    version = alias_version(MlflowClient(), match["name"], match["alias"])
    return f"{uri} (version {version})" if version else uri
