"""The fault half of `make bench-team`: PostgreSQL dies while train_lstm logs to the team
service, on the tiny profile in a throwaway project copy.

Expected: the stage fails with one line naming the URI, PostgreSQL starts again on the
same port, the rerun completes, and every run logged before the fault is intact.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench.output import say
from bench.sampling import start_repro
from fakenews import TENSORFLOW_ENV
from fakenews.team.stack import Team
from tests.support.sandbox import TINY_PROFILE, copy_project

EXPERIMENT = "bench-fault"


def _snapshot(client) -> dict[str, tuple[str, int, int]]:
    """Every run of every experiment: status, number of params and of metric keys."""
    runs = {}
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id], max_results=5000):
            runs[run.info.run_id] = (run.info.status, len(run.data.params), len(run.data.metrics))
    return runs


def _running_lstm(client) -> str | None:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        "attributes.status = 'RUNNING' and tags.`dvc.stage` = 'train_lstm'",
    )
    return runs[0].info.run_id if runs else None


def kill_postgres_during_training(
    team: Team, credentials: dict[str, str], work: Path
) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    repo = copy_project(work / "fault")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in TINY_PROFILE.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        **credentials,
        "MLFLOW_EXPERIMENT_NAME": EXPERIMENT,
        **TENSORFLOW_ENV,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    client = MlflowClient(team.uri)
    before = _snapshot(client)
    say(f"fault: tiny repro in {repo}; PostgreSQL is killed once train_lstm's run is RUNNING")
    proc = start_repro(repo, env)
    killed_run, deadline = None, time.monotonic() + 900
    while killed_run is None and proc.poll() is None and time.monotonic() < deadline:
        killed_run = _running_lstm(client)
        time.sleep(0.5)
    if killed_run is None:
        proc.kill()
        return {
            "error": "train_lstm never ran with a RUNNING run; nothing was killed",
            "output": proc.communicate()[0][-2000:],
        }
    team.postgres.stop("immediate")  # a crash: no checkpoint, recovery on the next start
    killed_at = time.monotonic()
    say(f"fault: killed PostgreSQL during run {killed_run}")
    output = proc.communicate(timeout=900)[0]
    failed_after = time.monotonic() - killed_at
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    restarted = time.monotonic()
    team.postgres.start()
    restart_seconds = time.monotonic() - restarted
    say(
        f"fault: stage exited {proc.returncode} after {failed_after:.1f}s; PostgreSQL restarted "
        f"in {restart_seconds:.1f}s; rerunning"
    )
    rerun = start_repro(repo, env)
    rerun_output = rerun.communicate(timeout=1800)[0]
    after = _snapshot(client)
    intact = all(after.get(run_id) == state for run_id, state in before.items())
    return {
        "stage": "train_lstm",
        "killed_run": killed_run,
        "exit_status": proc.returncode,
        "error_lines": errors,
        "names_uri": bool(errors) and team.uri in errors[0],
        "seconds_from_kill_to_exit": round(failed_after, 1),
        "postgres_restart_seconds": round(restart_seconds, 1),
        "rerun_exit_status": rerun.returncode,
        "rerun_stages": [
            line.split("'")[1]
            for line in rerun_output.splitlines()
            if line.startswith("Running stage '")
        ],
        "killed_run_status_after_rerun": client.get_run(killed_run).info.status,
        "earlier_runs": len(before),
        "earlier_runs_intact": intact,
    }
