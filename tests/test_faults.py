"""Faults and sweeps against real processes: a tracking server killed mid-training, a stage
SIGKILLed mid-epoch under `dvc repro`, runs left RUNNING by dead processes, and a DVC
experiment sweep grouped under one MLflow parent run.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from fakenews.data.params import PROJECT_ROOT, read_params
from fakenews.errors import PipelineError
from fakenews.processes import free_port
from fakenews.tracking.experiment import process_tags, sweep_parent
from fakenews.tracking.runs import StageRun, start_run
from fakenews.tracking.server import running_server
from tests.support.commands import commit_all, ran_stages, run, subprocess_env, write_params
from tests.support.tiny import tiny_flags

SLEEPER = (
    "import time\n"
    "from fakenews.tracking.runs import start_run\n"
    "with start_run('sleeper', {}) as run:\n"
    "    print(run.run_id, flush=True)\n"
    "    time.sleep(300)\n"
)


def start_sleeper(env: dict) -> tuple[subprocess.Popen, str]:
    """A process holding a RUNNING run; returns it and the run id."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SLEEPER],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return proc, proc.stdout.readline().strip()


def experiment_env(uri: str, experiment: str) -> dict:
    return {**subprocess_env(), "MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": experiment}


# ---- fast: the sweep of stale runs, the sweep parent, failing fast -------------------------


def test_runs_left_running_by_dead_processes_are_ended_failed(tracking_server, monkeypatch):
    experiment = "faults-stale"
    env = experiment_env(tracking_server, experiment)
    client = MlflowClient(tracking_server)
    killed, killed_run = start_sleeper(env)
    alive, alive_run = start_sleeper(env)
    try:
        killed.kill()  # SIGKILL: the run cannot be ended by its process
        killed.wait(30)
        assert client.get_run(killed_run).info.status == "RUNNING"
        experiment_id = client.get_experiment_by_name(experiment).experiment_id
        # the PID is alive, but it is this test's process, started long after "1.0"
        reused = client.create_run(experiment_id, tags={**process_tags(), "process.started": "1.0"})
        foreign = client.create_run(
            experiment_id, tags={**process_tags(), "process.host": "elsewhere"}
        )
        untagged = client.create_run(experiment_id)

        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
        monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
        with start_run("train", {}) as current:
            pass

        for stale in (killed_run, reused.info.run_id):
            record = client.get_run(stale)
            assert record.info.status == "FAILED"
            assert "exited without ending this run" in record.data.tags["process.ended"]
            assert f"train (pid {os.getpid()})" in record.data.tags["process.ended"]
        assert str(killed.pid) in client.get_run(killed_run).data.tags["process.ended"]
        for live in (alive_run, foreign.info.run_id, untagged.info.run_id):
            assert client.get_run(live).info.status == "RUNNING"
        tags = client.get_run(current.run_id).data.tags
        assert tags["process.pid"] == str(os.getpid())
        assert tags["process.host"] == socket.gethostname()
    finally:
        alive.terminate()  # SIGTERM: ends its run KILLED
        alive.wait(60)
    assert client.get_run(alive_run).info.status == "KILLED"


def test_sweep_parent_is_created_once_and_never_left_running(tracking_server):
    client = MlflowClient(tracking_server)
    experiment_id = client.create_experiment("faults-sweep-parent")
    first = sweep_parent(client, experiment_id, "lr sweep")
    assert sweep_parent(client, experiment_id, "lr sweep") == first
    assert sweep_parent(client, experiment_id, "other") != first
    parent = client.get_run(first)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "lr sweep"
    assert parent.data.tags["sweep"] == "lr sweep" and parent.data.tags["sweep.parent"] == "true"
    assert len(client.search_runs([experiment_id])) == 2


def test_a_call_to_a_dead_server_fails_fast_as_a_pipeline_error():
    uri = f"http://127.0.0.1:{free_port()}"
    stage_run = StageRun(uri)
    stage_run.run_id = "0" * 32
    started = time.monotonic()
    with pytest.raises(PipelineError) as err:
        stage_run.call(MlflowClient(uri).log_metric, stage_run.run_id, "loss", 1.0)
    took = time.monotonic() - started
    message = str(err.value)
    assert uri in message and "make server" in message and "\n" not in message
    assert f"marks run {stage_run.run_id} FAILED" in message
    # three tries with MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=1: about 0 + 2 s + jitter (< 1 s)
    assert took < 10, f"a refused request took {took:.1f}s to fail"


# ---- slow: a tracking server killed while train_lstm trains -------------------------------


def lstm_params(tiny_params: Path, target: Path, out: Path, **train_lstm) -> Path:
    """The tiny profile with train_lstm overrides, writing models and metrics under `out`."""
    params = read_params(tiny_params)
    params["paths"].update(models_dir=str(out / "models"), metrics_dir=str(out / "metrics"))
    params["train_lstm"].update(train_lstm)
    return write_params(target, params)


def wait_mid_training(
    client: MlflowClient, experiment: str, proc: subprocess.Popen, log: Path, timeout: float = 300
) -> Run:
    """The RUNNING train_lstm run once it has logged an epoch; fails if the stage ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"the stage ended (exit {proc.returncode}) before it was interrupted:\n"
                + log.read_text(errors="replace")[-3000:]
            )
        found = client.get_experiment_by_name(experiment)
        runs = (
            client.search_runs(
                [found.experiment_id],
                "attributes.status = 'RUNNING' and tags.`dvc.stage` = 'train_lstm'",
            )
            if found
            else []
        )
        if runs and client.get_metric_history(runs[0].info.run_id, "loss"):
            return runs[0]
        time.sleep(0.25)
    pytest.fail(f"no epoch was logged within {timeout:.0f}s")


def plant_previous_outputs(out: Path) -> dict[Path, bytes]:
    """Stand-ins for the outputs of an earlier complete run, to check they survive."""
    files = {
        out / "models/lstm/saved_model.pb": b"previous model",
        out / "metrics/train_lstm.json": b'{"previous": true}\n',
    }
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return files


@pytest.mark.slow
def test_server_killed_mid_training_fails_cleanly_and_recovers(tiny_pipeline, tmp_path):
    out, store, port = tmp_path / "out", tmp_path / "store", free_port()
    long_run = lstm_params(
        tiny_pipeline, tmp_path / "long.yaml", out, epochs=300, early_stopping_patience=300
    )
    previous = plant_previous_outputs(out)
    log, err_log = tmp_path / "stage.log", tmp_path / "stage.err"
    with running_server(store, port) as server:
        uri, client = server.uri, MlflowClient(server.uri)
        earlier = client.create_run(client.create_experiment("server-killed"))
        client.log_metric(earlier.info.run_id, "loss", 0.5)
        client.set_terminated(earlier.info.run_id)
        env = experiment_env(uri, "server-killed")
        with open(log, "w") as sink, open(err_log, "w") as err_sink:  # files: a pipe can fill up
            proc = subprocess.Popen(
                [sys.executable, "-m", "stages.train_lstm", "--params", str(long_run)],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=sink,
                stderr=err_sink,
            )
        interrupted = wait_mid_training(client, "server-killed", proc, err_log)
        os.killpg(server.pid, signal.SIGKILL)  # hard: the server and its uvicorn worker
        killed_at = time.monotonic()
        proc.wait(timeout=120)
        exit_seconds = time.monotonic() - killed_at
    stderr = err_log.read_text(errors="replace")
    print(f"train_lstm exited {exit_seconds:.1f}s after the server was killed")

    assert proc.returncode == 2 and exit_seconds < 60
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert uri in errors[0] and "make server" in errors[0] and interrupted.info.run_id in errors[0]
    for path, content in previous.items():
        assert path.read_bytes() == content  # the earlier outputs, untouched
    assert sorted(p.name for p in (out / "models").iterdir()) == ["lstm"]  # no temp leftovers
    assert sorted(p.name for p in (out / "metrics").iterdir()) == ["train_lstm.json"]

    with running_server(store, port) as server:  # the same SQLite store, the same port
        db = sqlite3.connect(store / "mlflow/mlflow.db")
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()
        assert client.get_run(interrupted.info.run_id).info.status == "RUNNING"  # nobody ended it
        short_run = lstm_params(tiny_pipeline, tmp_path / "short.yaml", out, epochs=1)
        rerun = run(
            [sys.executable, "-m", "stages.train_lstm", "--params", str(short_run)],
            PROJECT_ROOT,
            env,
        )
        assert (
            f"run(s) left RUNNING by a process that is gone: {interrupted.info.run_id}"
            in rerun.stdout
        )

        swept = client.get_run(interrupted.info.run_id)
        assert swept.info.status == "FAILED" and "process.ended" in swept.data.tags
        assert client.get_metric_history(interrupted.info.run_id, "loss")  # its epochs are kept
        assert client.get_run(earlier.info.run_id).data.metrics == {"loss": 0.5}
        assert yaml.safe_load((out / "metrics/train_lstm.json").read_text())["epochs"] == 1
        assert (out / "models/lstm/mlflow_run.json").exists()


# ---- slow: under dvc, in a temporary copy of the repo on the tiny profile ------------------

DVC_EXPERIMENT = "faults-dvc"


@pytest.fixture(scope="module")
def tiny_repo(project_copy, tiny_repro, tracking_server) -> tuple[Path, dict]:
    """A repo copy with ingest → split done on the tiny profile and committed as the baseline.

    The session's tiny repro ran those stages with the same code, data and params, so DVC
    restores them from the shared run cache.
    """
    repo = project_copy("faults")
    env = experiment_env(tracking_server, DVC_EXPERIMENT)
    restored = run(["dvc", "exp", "run", "split", *tiny_flags()], repo, env)
    assert ran_stages(restored.stdout) == []
    commit_all(repo, "tiny baseline")
    return repo, env


def set_params(repo: Path, section: str, **values) -> None:
    params = read_params(repo / "params.yaml")
    params[section].update(values)
    write_params(repo / "params.yaml", params)


@pytest.mark.slow
def test_stage_killed_mid_epoch_leaves_no_outputs_and_dvc_repro_recovers(tiny_repo, tmp_path):
    repo, env = tiny_repo
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    # enough epochs left after the first to kill it mid-training; the rerun trains them all
    epochs = 20
    set_params(repo, "train_lstm", epochs=epochs, early_stopping_patience=epochs)
    log = tmp_path / "repro.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            ["dvc", "repro", "train_lstm"], cwd=repo, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    interrupted = wait_mid_training(client, DVC_EXPERIMENT, proc, log)
    stage_pid = int(interrupted.data.tags["process.pid"])
    assert stage_pid in {child.pid for child in psutil.Process(proc.pid).children(recursive=True)}
    os.kill(stage_pid, signal.SIGKILL)  # as the OOM killer would: nothing can be cleaned up
    assert proc.wait(timeout=120) != 0
    assert "failed to reproduce 'train_lstm'" in log.read_text()

    assert not (repo / "models/lstm").exists()
    assert not list((repo / "models").glob(".lstm.*"))  # not even a temporary sibling
    assert not (repo / "metrics/train_lstm.json").exists()
    assert "train_lstm" not in read_params(repo / "dvc.lock")["stages"]  # DVC recorded nothing
    assert client.get_run(interrupted.info.run_id).info.status == "RUNNING"  # SIGKILL: no goodbye

    again = run(["dvc", "repro", "train_lstm"], repo, env)
    assert ran_stages(again.stdout) == ["train_lstm"]  # the finished stages are not redone
    assert interrupted.info.run_id in again.stdout  # reported as marked FAILED
    swept = client.get_run(interrupted.info.run_id)
    assert swept.info.status == "FAILED" and str(stage_pid) in swept.data.tags["process.ended"]
    assert yaml.safe_load((repo / "metrics/train_lstm.json").read_text())["epochs"] == epochs
    assert (repo / "models/lstm/mlflow_run.json").exists()
    assert "up to date" in run(["dvc", "status", "train_lstm"], repo, env).stdout


@pytest.mark.slow
def test_a_dvc_experiment_sweep_is_grouped_under_one_parent_run(tiny_repo):
    repo, env = tiny_repo
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    for units in (12, 16):  # values no other test trains, so DVC's run cache cannot skip them
        done = run(
            [
                "dvc",
                "exp",
                "run",
                "train_lstm",
                "-S",
                "tracking.sweep=lstm-units",
                "-S",
                f"train_lstm.lstm_units={units}",
                "-S",
                "train_lstm.epochs=1",
                "-S",
                "train_lstm.early_stopping_patience=1",
            ],
            repo,
            env,
        )
        assert ran_stages(done.stdout) == ["train_lstm"]

    experiment_id = client.get_experiment_by_name(DVC_EXPERIMENT).experiment_id
    grouped = client.search_runs([experiment_id], "tags.sweep = 'lstm-units'")
    parents = [r for r in grouped if r.data.tags.get("sweep.parent") == "true"]
    children = [r for r in grouped if r.data.tags.get("dvc.stage") == "train_lstm"]
    assert len(parents) == 1 and len(children) == 2 == len(grouped) - 1
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.info.run_name == "lstm-units"
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert {r.data.params["train_lstm.lstm_units"] for r in children} == {"12", "16"}
    assert len({r.data.tags["dvc.exp.name"] for r in children}) == 2  # one DVC experiment each
    assert all(r.info.status == "FINISHED" for r in children)
    baseline = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    assert parent.data.tags["dvc.exp.baseline_rev"] == baseline
