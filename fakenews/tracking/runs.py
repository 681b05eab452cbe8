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
nests sweep runs under their parent; fakenews.tracking.connection finds and checks the
server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import mlflow
from mlflow.tracking import MlflowClient

from fakenews.data.params import project_path
from fakenews.errors import PipelineError
from fakenews.tracking import tags as tag
from fakenews.tracking.connection import (
    experiment_name,
    require_server,
    server_lost,
    tracking_uri,
)
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

T = TypeVar("T")
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


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
            lost = server_lost(err, self.uri, self.run_id)
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
        print(
            f"{stage}: marked FAILED {len(stale)} run(s) left RUNNING by a process that is "
            f"gone: {', '.join(stale)}",
            flush=True,
        )
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
        run.call(
            MlflowClient(run.uri).set_experiment_tag,
            experiment.experiment_id,
            EXPERIMENT_KIND_TAG,
            EXPERIMENT_KIND,
        )


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
    return MetaDataset(
        source, name=f"{path.stem}-{split}", digest=path_hash(path).removesuffix(".dir")[:32]
    )


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
    stage: str,
    params: Mapping[str, Any],
    input_paths: Sequence[str | Path] = (),
    run_name: str | None = None,
    extra_tags: Mapping[str, str] | None = None,
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
        lost = server_lost(err, uri, run.run_id) if not isinstance(err, PipelineError) else None
        if lost:
            raise lost from err
        raise
    run.call(mlflow.end_run, "FINISHED")
