"""The one place that sets up MLflow for the pipeline stages.

    with start_run("train", params, input_paths=["data/processed/train.parquet"]) as run:
        for epoch in ...:
            run.log_epoch(epoch, {"loss": loss, "val_accuracy": acc})
        run.log_metrics({"test": {"f1": f1}})
        run.log_artifact("models/classifier")

The tracking server must be running (`make server`, or `python -m stages.lib.server start`);
stages never fall back to a local ./mlruns folder. MLFLOW_TRACKING_URI and
MLFLOW_EXPERIMENT_NAME override the `tracking:` section of params.yaml.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar
from urllib.parse import urlparse

# No telemetry (read when mlflow is first imported), and fail within seconds rather than
# minutes of retries when the server goes away. Values already in the environment win.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")

import mlflow  # noqa: E402
import requests  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.utils.validation import (  # noqa: E402
    MAX_ENTITY_KEY_LENGTH,
    MAX_PARAM_VAL_LENGTH,
    MAX_TAG_VAL_LENGTH,
)

from stages.lib.errors import PipelineError  # noqa: E402
from stages.lib.params import PROJECT_ROOT, project_path  # noqa: E402
from stages.lib.server import server_config, server_healthy, tracking_settings  # noqa: E402

T = TypeVar("T")


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else the server configured in params.yaml."""
    return os.environ.get("MLFLOW_TRACKING_URI") or server_config().uri


def experiment_name() -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or str(tracking_settings()["experiment"])


def require_server(uri: str, timeout: float = 5.0) -> None:
    """Raise PipelineError unless the tracking server at an http(s) URI answers /health."""
    if urlparse(uri).scheme in ("http", "https") and not server_healthy(uri, timeout):
        raise PipelineError(
            f"no MLflow tracking server answers at {uri} ({uri.rstrip('/')}/health). "
            "Start it with `make server` (or `python -m stages.lib.server start`), "
            "or point MLFLOW_TRACKING_URI at a running server."
        )


def connect() -> str:
    """Check the server answers and point every mlflow client call at it; returns the URI.

    mlflow.set_tracking_uri is process-global and wins over the environment, so callers
    that load models or use the registry call this first rather than trusting leftovers.
    """
    uri = tracking_uri()
    require_server(uri)
    mlflow.set_tracking_uri(uri)
    return uri


def _server_lost(err: BaseException, uri: str) -> PipelineError | None:
    """A PipelineError when `err` is a failed request to a server that no longer answers."""
    if isinstance(err, (MlflowException, requests.RequestException, OSError)):
        try:
            require_server(uri, timeout=2.0)
        except PipelineError as lost:
            return PipelineError(f"lost the connection while logging to MLflow: {lost}")
    return None


# ---- what a run records -------------------------------------------------------------------


def _key(name: str) -> str:
    """A valid MLflow param/metric/tag key: allowed characters only, within the length limit."""
    return re.sub(r"[^/\w.\- :]", "_", name)[:MAX_ENTITY_KEY_LENGTH]


def _truncate(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}"""
    flat: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{key}."))
        else:
            flat[key] = value
    return flat


def _param_values(params: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in flatten(params).items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        out[_key(key)] = _truncate(text, MAX_PARAM_VAL_LENGTH)
    return out


def git_output(*args: str) -> str | None:
    """Output of a read-only git command in the project, or None when it fails."""
    try:
        result = subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=15,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},  # `git status` must not write the index
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def path_hash(path: Path) -> str:
    """The md5 DVC records for a path: of the file's bytes, or DVC's `<md5>.dir` of a folder."""
    if path.is_file():
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "md5").hexdigest()
    entries = [
        {"md5": path_hash(file), "relpath": file.relative_to(path).as_posix()}
        for file in path.rglob("*")
        if file.is_file()
    ]
    entries.sort(key=lambda entry: entry["relpath"])
    listing = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(listing).hexdigest() + ".dir"


def _dep_tag(value: str | Path) -> tuple[str, str]:
    """("dvc.dep.<path as dvc.yaml spells it>", hash): relative to the project when possible."""
    path = project_path(value).resolve()
    name = str(path) if Path(value).is_absolute() else Path(os.path.normpath(value)).as_posix()
    with contextlib.suppress(ValueError):
        name = path.relative_to(PROJECT_ROOT).as_posix()
    return _key(f"dvc.dep.{name}"), path_hash(path) if path.exists() else "missing"


def run_tags(stage: str, input_paths: Sequence[str | Path]) -> dict[str, str]:
    """Tags tying a run to its code (git), its DVC stage and inputs, and its command line."""
    # dvc.lock is rewritten by `dvc repro` after every stage, so it does not count as a change.
    status = git_output("status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock")
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    tags = {
        "git.commit": git_output("rev-parse", "HEAD") or "unknown",
        "git.dirty": "unknown" if status is None else str(bool(status)).lower(),
        "git.branch": git_output("symbolic-ref", "--short", "-q", "HEAD") or "detached",
        "dvc.stage": stage,
        "command": shlex.join(sys.orig_argv),  # as typed: `python -m stages.train ...`
        "mlflow.source.name": (
            script.relative_to(PROJECT_ROOT).as_posix()
            if script and script.is_relative_to(PROJECT_ROOT)
            else f"stages.{stage}"
        ),
        # set by `dvc exp run` for each experiment; the baseline groups one sweep
        "dvc.exp.name": os.environ.get("DVC_EXP_NAME"),
        "dvc.exp.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV"),
    }
    tags.update(_dep_tag(path) for path in input_paths)
    return {key: _truncate(value, MAX_TAG_VAL_LENGTH) for key, value in tags.items() if value}


# ---- the run ------------------------------------------------------------------------------


class StageRun:
    """The active run of one stage; every MLflow call goes through `call` to be timed."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.run_id: str | None = None
        self.logging_seconds = 0.0

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one MLflow call, adding its duration to `logging_seconds`."""
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        except Exception as err:
            lost = _server_lost(err, self.uri)
            if lost:
                raise lost from err
            raise
        finally:
            self.logging_seconds += time.perf_counter() - started

    def log_epoch(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Per-epoch metrics, e.g. log_epoch(3, {"loss": 0.2, "val": {"accuracy": 0.9}})."""
        self.call(mlflow.log_metrics, _metric_values(metrics), step=step)

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Final metrics; nested dicts become dotted keys."""
        self.call(mlflow.log_metrics, _metric_values(metrics))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file, or a folder as a folder of the same name (relative to the project)."""
        path = project_path(path)
        if path.is_dir():
            self.call(mlflow.log_artifacts, str(path), artifact_path or path.name)
        elif path.is_file():
            self.call(mlflow.log_artifact, str(path), artifact_path)
        else:
            raise PipelineError(f"{path}: cannot log it as an MLflow artifact, it does not exist")


def _metric_values(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {_key(key): float(value) for key, value in flatten(metrics).items()}


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """`kill` (SIGTERM, as sent by CI timeouts and process managers) ends the run KILLED
    rather than leaving it RUNNING forever; only possible from the main thread."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def start_run(
    stage: str, params: Mapping[str, Any], input_paths: Sequence[str | Path] = (),
    run_name: str | None = None, extra_tags: Mapping[str, str] | None = None,
) -> Iterator[StageRun]:
    """An MLflow run for one stage, ended FINISHED, FAILED (exception) or KILLED (Ctrl-C).

    Logs `params` (flattened), the tags of `run_tags`, and at the end the metric
    `mlflow_logging_seconds`. A server that does not answer is a PipelineError.
    """
    uri = tracking_uri()
    require_server(uri)  # before any mlflow call, so nothing local (./mlruns) gets created
    tags = {**run_tags(stage, input_paths), **(extra_tags or {})}
    run = StageRun(uri)
    run.call(mlflow.set_tracking_uri, uri)
    run.call(mlflow.set_experiment, experiment_name())
    run.run_id = run.call(mlflow.start_run, run_name=run_name or stage, tags=tags).info.run_id
    try:
        with _sigterm_as_interrupt():
            run.call(mlflow.log_params, _param_values(params))
            yield run
            run.call(mlflow.log_metric, "mlflow_logging_seconds", run.logging_seconds)
    except BaseException as err:
        status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
        with contextlib.suppress(Exception):  # the server may be the thing that failed
            mlflow.end_run(status)
        lost = _server_lost(err, uri) if not isinstance(err, PipelineError) else None
        if lost:
            raise lost from err
        raise
    run.call(mlflow.end_run, "FINISHED")
