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
LOGGED_MODEL = re.compile(r"models:/m-[0-9a-f]+")


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


class ModelNotFound(PipelineError):
    """The tracking server has no such model (or version, or alias)."""


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
        missing = getattr(err, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"
        raise (ModelNotFound if missing else PipelineError)(
            f"cannot load the model {uri}: {message.rstrip('.')}{_registry_hint(uri)}"
        ) from None


def load_model(model: str):
    """The pyfunc model at `model`, run with the code it was logged with: in this process
    when that is this checkout's `fakenews`, else in a process of its own
    (fakenews.scoring.isolated), so it answers as it does when served. PipelineError
    naming the URI when it cannot be loaded."""
    uri = loadable_uri(model)
    import mlflow.pyfunc

    with model_errors(uri):
        local = Path(uri) if Path(uri).is_dir() else _downloaded(uri)
        differ = other_code(local)
        if not differ:
            return mlflow.pyfunc.load_model(str(local))
    from fakenews.scoring.isolated import IsolatedModel

    return IsolatedModel(local, f"its logged code differs from this checkout's: {differ}")


def other_code(model_dir: Path) -> str | None:
    """Which files of `fakenews` the model logged differently from this checkout, as
    'fakenews/a.py, fakenews/b.py and 3 more'; None when they agree or it logged none."""
    from fakenews.tracking.logged_code import PACKAGE, differing_code

    if not (model_dir / "code" / PACKAGE).is_dir():
        return None
    files = differing_code(model_dir)
    if not files:
        return None
    return ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")


def require_checkout_code(model_dir: Path, uri: str) -> None:
    """Refuse a model whose logged code differs from this checkout's where it would run
    with this checkout's (the Spark engine's workers import the project's `fakenews`)."""
    differ = other_code(model_dir)
    if differ:
        raise PipelineError(
            f"the model {uri} was logged with other code than this checkout's ({differ}); "
            "the Spark engine's workers would run this checkout's instead: score it with "
            "--engine in-process (which runs it with its own code), or from a checkout of "
            "the commit that trained it"
        )


# LoggedModels this process has downloaded, by (tracking URI, model id). A LoggedModel's
# files do not change once logged, so a process that loads one again (a promoter comparing
# with the same champion round after round, a test module) reads its copy: a load fetches
# each of the model's files in a request of its own, some 90 for the LSTM.
_DOWNLOADS: dict[tuple[str, str], Path] = {}


def _downloaded(uri: str) -> Path:
    """The model's files in a temporary folder that lives as long as this process (a
    loaded model reads some of them, the LSTM's NLTK data, after loading). A registry URI
    is resolved to its LoggedModel first, so an alias that moves meanwhile cannot mix two
    versions, and a LoggedModel is downloaded once per process."""
    import mlflow

    model_id = _resolved_model_id(uri)
    if model_id is None:
        return _download(uri)
    key = (mlflow.get_tracking_uri(), model_id)
    if key not in _DOWNLOADS or not _DOWNLOADS[key].is_dir():
        _DOWNLOADS[key] = _download(f"models:/{model_id}")
    return _DOWNLOADS[key]


def logged_model_id(uri: str) -> str | None:
    """The LoggedModel a `models:/m-...` URI names; None for any other URI."""
    return uri.removeprefix("models:/") if LOGGED_MODEL.fullmatch(uri) else None


def _resolved_model_id(uri: str) -> str | None:
    """The LoggedModel `uri` names, directly or as a registered version or alias that
    points at one (asked of the registry); None for other URIs."""
    match = REGISTERED.match(uri)
    if not match:
        return logged_model_id(uri)
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    if match["alias"]:
        version = client.get_model_version_by_alias(match["name"], match["alias"])
    else:
        version = client.get_model_version(match["name"], uri.rsplit("/", 1)[1])
    # The server may leave model_id empty; the version's source then names the LoggedModel.
    return version.model_id or logged_model_id(version.source or "")


def _download(uri: str) -> Path:
    import atexit
    import shutil
    import tempfile

    import mlflow.artifacts

    folder = tempfile.mkdtemp(prefix="fakenews-model-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return Path(mlflow.artifacts.download_artifacts(uri, dst_path=folder))


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


def pin(uri: str) -> tuple[str, str]:
    """(the URI to load, what to call it): an alias is resolved once, here, so the model
    that scores is the version the summary names even if a promotion moves the alias
    meanwhile: models:/m@champion -> (models:/m/7, "models:/m@champion (version 7)")."""
    match = REGISTERED.match(uri)
    if not (match and match["alias"]):
        return uri, uri
    from mlflow.tracking import MlflowClient

    with model_errors(uri):
        version = MlflowClient().get_model_version_by_alias(match["name"], match["alias"]).version
    return f"models:/{match['name']}/{version}", f"{uri} (version {version})"
