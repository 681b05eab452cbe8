"""Where a run came from, as its tags and params record it: the code (git commit and dirty
flag), the DVC stage and the hash of each input, the command, the experiment, and for an
ensemble the runs of its members. tools.trace prints it and restores it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakenews.errors import PipelineError
from fakenews.tracking import tags as tag


@dataclass(frozen=True)
class RunTrace:
    """What a run's tags and params say about where it came from."""

    run_id: str
    stage: str
    status: str
    commit: str | None  # None when the run was logged outside git
    dirty: str  # "true", "false" or "unknown", as tagged
    command: str
    exp_name: str | None
    deps: dict[str, str]  # path as dvc.yaml spells it -> DVC md5 ("missing" if absent)
    params: dict[str, str]
    members: dict[str, str] = field(default_factory=dict)  # an ensemble's: family -> run id

    @property
    def code_may_differ(self) -> bool:
        """The commit alone may not hold the code that ran (an experiment holds its own)."""
        return self.dirty != "false" and not self.exp_name


def trace_from_run(run: Any) -> RunTrace:
    """A RunTrace from an mlflow.entities.Run."""
    tags, info = run.data.tags, run.info
    commit = tags.get(tag.GIT_COMMIT)
    return RunTrace(
        run_id=info.run_id,
        stage=tags.get(tag.DVC_STAGE, "?"),
        status=info.status,
        commit=None if commit in (None, "", "unknown") else commit,
        dirty=tags.get(tag.GIT_DIRTY, "unknown"),
        command=tags.get(tag.COMMAND, "?"),
        exp_name=tags.get(tag.DVC_EXP_NAME),
        deps={
            k.removeprefix(tag.DVC_DEP_PREFIX): v
            for k, v in sorted(tags.items())
            if k.startswith(tag.DVC_DEP_PREFIX)
        },
        params=dict(sorted(run.data.params.items())),
        members={
            k.removeprefix(tag.MEMBER_PREFIX).removesuffix(".run_id"): v
            for k, v in sorted(tags.items())
            if k.startswith(tag.MEMBER_PREFIX) and k.endswith(".run_id")
        },
    )


def describe(trace: RunTrace) -> str:
    """The human-readable report `python -m tools.trace <run_id>` prints."""
    lines = [
        f"run      {trace.run_id}  (stage {trace.stage}, {trace.status})",
        f"commit   {trace.commit or 'unknown (not logged from a git checkout)'}",
        f"dirty    {trace.dirty}" + dirty_note(trace),
        f"command  {trace.command}",
    ]
    if trace.exp_name:
        lines.append(f"dvc exp  {trace.exp_name}")
    lines.append("inputs (DVC md5)" if trace.deps else "inputs   none recorded")
    lines += [f"  {path}  {md5}" for path, md5 in trace.deps.items()]
    lines.append("params" if trace.params else "params   none")
    lines += [f"  {key} = {value}" for key, value in trace.params.items()]
    return "\n".join(lines)


def dirty_note(trace: RunTrace) -> str:
    if trace.code_may_differ:
        return "  (uncommitted changes when it ran: the code may differ from the commit)"
    if trace.exp_name and trace.dirty != "false":
        return "  (as under every `dvc exp run`: the experiment holds those changes)"
    return ""


def fetch_trace(run_id: str) -> RunTrace:
    """The run's trace from the tracking server that the stages log to."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from fakenews.tracking.connection import connect

    uri = connect()
    try:
        return trace_from_run(MlflowClient(uri).get_run(run_id))
    except MlflowException as err:
        raise PipelineError(
            f"no run {run_id!r} on the tracking server {uri}: {err.message}"
        ) from None


def run_id_of(run: str) -> str:
    """A run id as given, the one a training output folder's mlflow_run.json names, or the
    run that logged a registered version (models:/<name>/<version> or models:/<name>@<alias>)."""
    if run.startswith("models:/"):
        return registered_run(run)
    record = Path(run) / "mlflow_run.json"
    if not record.is_file():
        return run
    try:
        return str(json.loads(record.read_text(encoding="utf-8"))["run_id"])
    except (ValueError, KeyError) as err:
        raise PipelineError(
            f"{record}: no run_id in it ({err}); rerun the training stage"
        ) from None


def registered_run(uri: str) -> str:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from fakenews.tracking.connection import connect

    match = re.fullmatch(r"models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))", uri)
    if not match:
        raise PipelineError(f"{uri}: give models:/<name>/<version> or models:/<name>@<alias>")
    client = MlflowClient(connect())
    try:
        version = (
            client.get_model_version(match["name"], match["version"])
            if match["version"]
            else client.get_model_version_by_alias(match["name"], match["alias"])
        )
    except MlflowException as err:
        raise PipelineError(f"{uri}: {err.message}") from None
    return version.run_id
