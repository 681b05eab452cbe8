"""The experiment a stage's run joins: runs that dead processes left RUNNING are ended
first, and within a sweep the run is nested under the sweep's parent run."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import psutil
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from fakenews.processes import alive
from fakenews.tracking import tags as tag


def process_tags() -> dict[str, str]:
    """The process that owns a run: host, PID, and start time (which tells a reused PID apart)."""
    me = psutil.Process()
    return {
        tag.PROCESS_HOST: socket.gethostname(),
        tag.PROCESS_PID: str(me.pid),
        tag.PROCESS_STARTED: f"{me.create_time():.3f}",
    }


def _owner_gone(tags: Mapping[str, str]) -> bool:
    """Whether the process named by a run's process tags (on this host) has exited."""
    try:
        proc = psutil.Process(int(tags[tag.PROCESS_PID]))
        reused = abs(proc.create_time() - float(tags[tag.PROCESS_STARTED])) > 1.0
        return reused or not alive(proc)
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
    query = f"attributes.status = 'RUNNING' and tags.`{tag.PROCESS_HOST}` = '{host}'"
    stale = [
        r
        for r in client.search_runs([experiment_id], query, max_results=1000)
        if _owner_gone(r.data.tags)
    ]
    for stuck in stale:
        client.set_tag(
            stuck.info.run_id,
            tag.PROCESS_ENDED,
            f"process {stuck.data.tags[tag.PROCESS_PID]} on {host} exited without ending this run "
            f"(killed, or it lost the tracking server); marked FAILED by {ended_by}",
        )
        client.set_terminated(stuck.info.run_id, "FAILED")
    return [stuck.info.run_id for stuck in stale]


# ---- sweeps: one parent run per `tracking.sweep` name -------------------------------------


def sweep_name() -> str | None:
    """`tracking.sweep` in params.yaml (`dvc exp run -S tracking.sweep=<name>`), or None."""
    from fakenews.tracking.server import tracking_settings

    return tracking_settings().sweep


def sweep_parent(client: MlflowClient, experiment_id: str, name: str) -> str:
    """The id of the sweep's parent run, created on first use.

    The parent only groups its children, so it is ended at once and never left RUNNING.
    Should two stages create it at the same moment (a parallel queue), the older parent
    is kept and the newer one deleted.
    """
    query = f"tags.`{tag.SWEEP}` = '{name}' and tags.`{tag.SWEEP_PARENT}` = 'true'"

    def oldest() -> Run | None:
        found = client.search_runs(
            [experiment_id], query, max_results=1, order_by=["attributes.start_time ASC"]
        )
        return found[0] if found else None

    existing = oldest()
    if existing:
        return existing.info.run_id
    tags = {
        tag.SWEEP: name,
        tag.SWEEP_PARENT: "true",
        tag.DVC_EXP_BASELINE: os.environ.get("DVC_EXP_BASELINE_REV", ""),
    }
    created = client.create_run(
        experiment_id, run_name=name, tags={key: value for key, value in tags.items() if value}
    )
    client.set_terminated(created.info.run_id, "FINISHED")
    winner = oldest() or created
    if winner.info.run_id != created.info.run_id:
        client.delete_run(created.info.run_id)
    return winner.info.run_id
