"""The one place that sets up MLflow for the pipeline stages.

    with start_run("train", params, input_paths=["data/processed/train.parquet"]) as run:
        for epoch in ...:
            run.log_epoch(epoch, {"loss": loss, "val_accuracy": acc})
        run.log_metrics({"test": {"f1": f1}})
        run.log_artifact("models/classifier")

The tracking server must be running (`make server`, or `python -m stages.lib.server start`);
stages never fall back to a local ./mlruns folder. MLFLOW_TRACKING_URI and
MLFLOW_EXPERIMENT_NAME override the `tracking:` section of params.yaml.

Faults and sweeps:
- every run records the host, PID and start time of its process; when a stage starts,
  runs of the experiment left RUNNING by a process of this host that is gone (SIGKILL,
  OOM, a server that died before the run could be ended) are ended FAILED;
- with `tracking.sweep` set (`dvc exp run -S tracking.sweep=<name> ...`), every run is
  nested under one parent run per sweep name, found by tag or created on first use.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import signal
import socket
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
import psutil  # noqa: E402
import requests  # noqa: E402
from mlflow.entities import Run  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from mlflow.utils.validation import (  # noqa: E402
    MAX_ENTITY_KEY_LENGTH,
    MAX_PARAM_VAL_LENGTH,
    MAX_TAG_VAL_LENGTH,
)

from stages.lib.errors import PipelineError  # noqa: E402
from stages.lib.params import PROJECT_ROOT, project_path  # noqa: E402
from stages.lib.server import _alive, server_config, server_healthy, tracking_settings  # noqa: E402

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


def _server_lost(err: BaseException, uri: str, run_id: str | None = None) -> PipelineError | None:
    """A PipelineError when `err` is a failed request to a server that no longer answers.

    One line that says what to do: the run cannot be ended without the server, so it is
    left RUNNING, and the next stage to start marks it FAILED (see end_stale_runs).
    """
    if isinstance(err, (MlflowException, requests.RequestException, OSError)):
        try:
            require_server(uri, timeout=2.0)
        except PipelineError as lost:
            run = f" during run {run_id}" if run_id else ""
            after = (f" Then rerun the stage (e.g. `dvc repro`); it marks run {run_id} FAILED."
                     if run_id else "")
            return PipelineError(f"lost the connection to MLflow{run}: {lost}{after}")
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
    return {_key(key): float(value) for key, value in flatten(metrics).items()}


# ---- runs left RUNNING by processes that are gone ----------------------------------------


def process_tags() -> dict[str, str]:
    """The process that owns a run: host, PID, and start time (which tells a reused PID apart)."""
    me = psutil.Process()
    return {
        "process.host": socket.gethostname(),
        "process.pid": str(me.pid),
        "process.started": f"{me.create_time():.3f}",
    }


def _owner_gone(tags: Mapping[str, str]) -> bool:
    """Whether the process named by a run's process tags (on this host) has exited."""
    try:
        proc = psutil.Process(int(tags["process.pid"]))
        reused = abs(proc.create_time() - float(tags["process.started"])) > 1.0
        return reused or not _alive(proc)
    except psutil.NoSuchProcess:
        return True
    except (KeyError, ValueError, psutil.Error):
        return False  # cannot tell, so leave the run alone


def end_stale_runs(client: MlflowClient, experiment_id: str, ended_by: str) -> list[str]:
    """End FAILED the experiment's RUNNING runs whose process on this host is gone; their ids.

    A run stays RUNNING when its process cannot end it: SIGKILL, the OOM killer, or a
    tracking server that died first. Runs from other hosts are left alone (their processes
    cannot be checked from here), and so are runs without process tags.
    """
    host = socket.gethostname()
    query = f"attributes.status = 'RUNNING' and tags.`process.host` = '{host}'"
    stale = [r for r in client.search_runs([experiment_id], query, max_results=1000)
             if _owner_gone(r.data.tags)]
    for stuck in stale:
        client.set_tag(
            stuck.info.run_id, "process.ended",
            f"process {stuck.data.tags['process.pid']} on {host} exited without ending this run "
            f"(killed, or it lost the tracking server); marked FAILED by {ended_by}",
        )
        client.set_terminated(stuck.info.run_id, "FAILED")
    return [stuck.info.run_id for stuck in stale]


# ---- sweeps: one parent run per `tracking.sweep` name -------------------------------------

_SWEEP_NAME = re.compile(r"[\w.:/ -]{1,200}")


def sweep_name() -> str | None:
    """`tracking.sweep` in params.yaml (`dvc exp run -S tracking.sweep=<name>`), or None."""
    name = tracking_settings()["sweep"]
    if name is None or name == "":
        return None
    if not _SWEEP_NAME.fullmatch(str(name)):
        raise PipelineError(
            f"tracking.sweep must be up to 200 letters, digits, spaces or . _ - : /, got {name!r}"
        )
    return str(name)


def sweep_parent(client: MlflowClient, experiment_id: str, name: str) -> str:
    """The id of the sweep's parent run, created on first use.

    The parent only groups its children, so it is ended at once and never left RUNNING.
    Should two stages create it at the same moment (a parallel queue), the older parent
    is kept and the newer one deleted.
    """
    query = f"tags.sweep = '{name}' and tags.`sweep.parent` = 'true'"

    def oldest() -> Run | None:
        found = client.search_runs([experiment_id], query, max_results=1,
                                   order_by=["attributes.start_time ASC"])
        return found[0] if found else None

    existing = oldest()
    if existing:
        return existing.info.run_id
    tags = {"sweep": name, "sweep.parent": "true",
            "dvc.exp.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", "")}
    created = client.create_run(experiment_id, run_name=name,
                                tags={key: value for key, value in tags.items() if value})
    client.set_terminated(created.info.run_id, "FINISHED")
    winner = oldest() or created
    if winner.info.run_id != created.info.run_id:
        client.delete_run(created.info.run_id)
    return winner.info.run_id


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
    return {"sweep": name, "mlflow.parentRunId": run.call(sweep_parent, client, experiment_id, name)}


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
            run.call(mlflow.log_params, _param_values(params))
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
