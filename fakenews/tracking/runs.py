"""The one place that sets up MLflow for the pipeline stages.

    with start_run("train", params, input_paths=["data/processed/train.parquet"]) as run:
        for epoch in ...:
            run.log_epoch(epoch, {"loss": loss, "val_accuracy": acc})
        run.log_metrics({"test": {"f1": f1}})
        run.log_artifact("models/classifier")

The tracking server must be running (`make server`, or `python -m tools.tracking_server start`);
stages never fall back to a local ./mlruns folder. MLFLOW_TRACKING_URI and
MLFLOW_EXPERIMENT_NAME override the `tracking:` section of params.yaml.

Every run records its lineage (fakenews.tracking.lineage) and joins its experiment
through fakenews.tracking.experiment, which ends runs dead processes left RUNNING and
nests sweep runs under their parent.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar
from urllib.parse import urlparse

import mlflow
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from fakenews.data.params import project_path
from fakenews.errors import PipelineError
from fakenews.tracking.experiment import (
    end_stale_runs,
    process_tags,
    sweep_name,
    sweep_parent,
)
from fakenews.tracking.lineage import (
    flatten,
    mlflow_key,
    param_values,
    path_hash,
    run_tags,
)
from fakenews.tracking import tags as tag
from fakenews.tracking.server import server_config, server_healthy, tracking_settings

T = TypeVar("T")
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else the server configured in params.yaml."""
    return os.environ.get("MLFLOW_TRACKING_URI") or server_config().uri


def experiment_name() -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or tracking_settings().experiment


def require_server(uri: str, timeout: float = 5.0) -> None:
    """Raise PipelineError unless the tracking server at an http(s) URI answers /health
    and, when it asks for a login, accepts MLFLOW_TRACKING_USERNAME/PASSWORD."""
    if urlparse(uri).scheme not in ("http", "https"):
        return
    gone = PipelineError(
        f"no MLflow tracking server answers at {uri} ({uri.rstrip('/')}/health). "
        "Start it with `make server` (or `python -m tools.tracking_server start`), "
        "or point MLFLOW_TRACKING_URI at a running server."
    )
    if not server_healthy(uri, timeout):
        raise gone
    # /health needs no login; a search does, so a missing or wrong one fails here, first
    user, password = (os.environ.get(f"MLFLOW_TRACKING_{k}") for k in ("USERNAME", "PASSWORD"))
    try:
        probe = requests.get(f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search",
                             params={"max_results": 1}, timeout=timeout,
                             auth=(user, password) if user and password else None)
    except requests.RequestException:
        raise gone from None
    if probe.status_code in (401, 403):
        raise _refusal(uri, probe.status_code, "/api/2.0/mlflow/experiments/search")
    if probe.status_code >= 500:  # e.g. its database is down: /health does not notice
        raise PipelineError(
            f"the MLflow server at {uri} answers but fails (HTTP {probe.status_code} on a "
            "search): its backend store may be down; see the server's log "
            "(`make team-status` names it for the team service)."
        )


def _refusal(uri: str, status: int, endpoint: str) -> PipelineError:
    """One line naming the URI and the credential that is missing or refused; it never
    shows the password, only which variable holds it."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    unset = [f"MLFLOW_TRACKING_{k}" for k in ("USERNAME", "PASSWORD")
             if not os.environ.get(f"MLFLOW_TRACKING_{k}")]
    setup = 'see README "Team setup" (e.g. `set -a; . team/secrets/admin.env; set +a`)'
    if status == 401 and unset:
        return PipelineError(f"the MLflow server at {uri} requires a login (HTTP 401), and "
                             f"{' and '.join(unset)} {'is' if len(unset) == 1 else 'are'} not set; {setup}")
    if status == 401:
        return PipelineError(f"the MLflow server at {uri} refused the login of user {user!r} "
                             "(HTTP 401): MLFLOW_TRACKING_PASSWORD is not that user's password, "
                             f"or MLFLOW_TRACKING_USERNAME names no user; {setup}")
    return PipelineError(f"the MLflow server at {uri} refused user {user!r} access to {endpoint} "
                         "(HTTP 403): it may read but not change this; use a user with EDIT or "
                         "MANAGE permission (MLFLOW_TRACKING_USERNAME/PASSWORD), or ask an admin")


def _access_refused(err: BaseException, uri: str) -> PipelineError | None:
    """_refusal for an MLflow call the server answered 401 or 403."""
    status = {"UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403}.get(getattr(err, "error_code", ""))
    if status is None:
        return None
    endpoint = re.search(r"endpoint (\S+)", str(err))
    return _refusal(uri, status, endpoint.group(1) if endpoint else "this request")


def connect() -> str:
    """Check the server answers and point every mlflow client call at it; returns the URI.

    mlflow.set_tracking_uri is process-global and wins over the environment, so callers
    that load models or use the registry call this first rather than trusting leftovers.
    """
    uri = tracking_uri()
    require_server(uri)
    mlflow.set_tracking_uri(uri)
    return uri


@contextlib.contextmanager
def refusals_as_errors(uri: str) -> Iterator[None]:
    """A 401 or 403 from the server inside the block becomes a one-line PipelineError."""
    try:
        yield
    except MlflowException as err:
        refused = _access_refused(err, uri)
        if refused:
            raise refused from None
        raise


def _server_lost(err: BaseException, uri: str, run_id: str | None = None) -> PipelineError | None:
    """A PipelineError when `err` is a request the server refused (401, 403), or a failed
    request to a server that no longer answers.

    One line that says what to do: the run cannot be ended without the server, so it is
    left RUNNING, and the next stage to start marks it FAILED (see end_stale_runs).
    """
    refused = _access_refused(err, uri)
    if refused:
        return refused
    if isinstance(err, (MlflowException, requests.RequestException, OSError)):
        try:
            require_server(uri, timeout=2.0)
        except PipelineError as lost:
            run = f" during run {run_id}" if run_id else ""
            after = (f" Then rerun the stage (e.g. `dvc repro`); it marks run {run_id} FAILED."
                     if run_id else "")
            return PipelineError(f"lost the connection to MLflow{run}: {lost}{after}")
    return None

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
            lost = _server_lost(err, self.uri, self.run_id)
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
    return {mlflow_key(key): float(value) for key, value in flatten(metrics).items()}


def _prepare_experiment(run: StageRun, stage: str) -> dict[str, str]:
    """Select the experiment, end the runs dead processes left RUNNING in it, and return
    the tags that put the new run under its sweep's parent (none outside a sweep)."""
    experiment_id = run.call(mlflow.set_experiment, experiment_name()).experiment_id
    client = MlflowClient(run.uri)
    stale = run.call(end_stale_runs, client, experiment_id, f"{stage} (pid {os.getpid()})")
    if stale:
        print(f"{stage}: marked FAILED {len(stale)} run(s) left RUNNING by a process that is "
              f"gone: {', '.join(stale)}", flush=True)
    name = sweep_name()
    if name is None:
        return {}
    return {tag.SWEEP: name, tag.PARENT_RUN: run.call(sweep_parent, client, experiment_id, name)}


def _tag_experiment_kind(run: StageRun) -> None:
    """Tag the experiment as custom model development, so the UI opens it on its training
    runs rather than a GenAI overview. Done once the run exists: a user who may not write
    is refused at the run, where the error says so."""
    experiment = run.call(mlflow.get_experiment, mlflow.active_run().info.experiment_id)
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        run.call(MlflowClient(run.uri).set_experiment_tag, experiment.experiment_id,
                 EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)


def dataset_input(path: str | Path, split: str):
    """An MLflow dataset for the runs table's Dataset column: the split's name and, as its
    digest, the DVC md5 of the file it comes from (the data version)."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    path = project_path(path)
    with warnings.catch_warnings():
        # MLflow registers its local-file source twice and warns that a path matches both
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        source = resolve_dataset_source(str(path))
    return MetaDataset(source, name=f"{path.stem}-{split}", digest=path_hash(path).removesuffix(".dir")[:32])


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
    datasets: Mapping[str, str | Path] | None = None,
) -> Iterator[StageRun]:
    """An MLflow run for one stage, ended FINISHED, FAILED (exception) or KILLED (Ctrl-C).

    Logs `params` (flattened), the tags of `run_tags` and `process_tags`, and at the end
    the metric `mlflow_logging_seconds`. Before the run starts, runs that dead processes
    left RUNNING are ended (end_stale_runs), and within a sweep the run is nested under
    the sweep's parent run. A server that does not answer is a PipelineError.
    """
    uri = tracking_uri()
    require_server(uri)  # before any mlflow call, so nothing local (./mlruns) gets created
    tags = {**run_tags(stage, input_paths), **process_tags(), **(extra_tags or {})}
    run = StageRun(uri)
    run.call(mlflow.set_tracking_uri, uri)
    tags.update(_prepare_experiment(run, stage))
    run.run_id = run.call(mlflow.start_run, run_name=run_name or stage, tags=tags).info.run_id
    try:
        with _sigterm_as_interrupt():
            _tag_experiment_kind(run)
            run.call(mlflow.log_params, param_values(params))
            for context, path in (datasets or {}).items():
                run.call(mlflow.log_input, dataset_input(path, context), context=context)
            yield run
            run.call(mlflow.log_metric, "mlflow_logging_seconds", run.logging_seconds)
    except BaseException as err:
        status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
        with contextlib.suppress(Exception):  # the server may be the thing that failed
            mlflow.end_run(status)
        lost = _server_lost(err, uri, run.run_id) if not isinstance(err, PipelineError) else None
        if lost:
            raise lost from err
        raise
    run.call(mlflow.end_run, "FINISHED")
