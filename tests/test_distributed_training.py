"""Data-parallel training (fakenews.distribution) on the tiny profile, in fresh processes.

Each stage runs as `python -m stages.<stage>` (logical CPU devices can only be made before
TensorFlow starts, and multi-worker needs one process per worker), on the tiny repro's
upstream data, logging to the session's tracking server in an experiment of its own.

Tolerance against the single-device run of the same tiny profile (the tiny repro's own
metrics/train_*.json): the replicas draw their dropout masks independently and sum
gradients in another order, so the model is not bit-identical. After one tiny epoch the
validation log loss must stay within LOG_LOSS_TOLERANCE and the accuracy within
ACCURACY_ROWS of the six validation rows. (ROC-AUC is not compared: with every
probability near 0.5, one swapped pair of six rows moves it by 1/9.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from fakenews.distribution import is_chief, strategy_for
from fakenews.errors import PipelineError
from fakenews.processes import free_port
from tests.support.commands import PROJECT_ROOT, subprocess_env, write_params
from tests.support.params import section
from tests.support.tiny import tiny_params

LOG_LOSS_TOLERANCE = 0.01
ACCURACY_ROWS = 2


@pytest.mark.parametrize(
    "tf_config, chief",
    [
        (None, True),
        ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, True),
        ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, False),
        (
            {
                "cluster": {"chief": ["a:1"], "worker": ["b:1"]},
                "task": {"type": "worker", "index": 0},
            },
            False,
        ),
        (
            {
                "cluster": {"chief": ["a:1"], "worker": ["b:1"]},
                "task": {"type": "chief", "index": 0},
            },
            True,
        ),
    ],
)
def test_the_chief_is_task_chief_or_else_worker_0(monkeypatch, tf_config, chief):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert is_chief() is chief


def test_unknown_distribution_and_missing_tf_config_are_one_line_errors(monkeypatch):
    with pytest.raises(
        PipelineError,
        match="train_bert.distribution: input should be 'none', "
        "'mirrored' or 'multi_worker', got 'horovod'",
    ):
        section("train_bert", distribution="horovod")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(PipelineError, match="multi_worker but TF_CONFIG is not set"):
        strategy_for(section("train_lstm", distribution="multi_worker"), "train_lstm")


def stage_params(tiny_repro, shared_data, workdir: Path, stage: str, distribution: str) -> Path:
    params = tiny_params(tiny_repro.outputs, workdir, shared_data)
    params[stage].update({"distribution": distribution, "cpu_replicas": 2})
    return write_params(workdir / "params.yaml", params)


def start_stage(stage: str, params: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "w") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", f"stages.{stage}", "--params", str(params)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def finish(proc: subprocess.Popen, log: Path) -> str:
    try:
        proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text(errors="replace")
    assert proc.returncode == 0, output
    return output


def the_one_run(tracking_server: str, experiment: str):
    client = MlflowClient(tracking_server)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def assert_close_to_single_device(tiny_repro, metrics_dir: Path, stage: str) -> None:
    single = json.loads((tiny_repro.outputs / "metrics" / f"{stage}.json").read_text())["val"]
    parallel = json.loads((metrics_dir / f"{stage}.json").read_text())["val"]
    assert parallel["log_loss"] == pytest.approx(single["log_loss"], abs=LOG_LOSS_TOLERANCE)
    assert parallel["accuracy"] == pytest.approx(single["accuracy"], abs=ACCURACY_ROWS / 6 + 1e-9)


def test_mirrored_bert_over_two_logical_cpus(tiny_repro, shared_data, tracking_server, tmp_path):
    params = stage_params(tiny_repro, shared_data, tmp_path, "train_bert", "mirrored")
    env = {
        **subprocess_env(),
        "MLFLOW_TRACKING_URI": tracking_server,
        "MLFLOW_EXPERIMENT_NAME": "distribution-mirrored",
    }
    finish(start_stage("train_bert", params, env, tmp_path / "train.log"), tmp_path / "train.log")

    run = the_one_run(tracking_server, "distribution-mirrored")
    assert run.data.params["train_bert.distribution"] == "mirrored"
    assert (run.data.tags["distribution.replicas"], run.data.tags["distribution.workers"]) == (
        "2",
        "1",
    )
    assert (
        json.loads((tmp_path / "models" / "bert" / "mlflow_run.json").read_text())["run_id"]
        == run.info.run_id
    )
    assert_close_to_single_device(tiny_repro, tmp_path / "metrics", "train_bert")


def test_two_multi_worker_processes_train_one_lstm(
    tiny_repro, shared_data, tracking_server, tmp_path
):
    """Two workers on loopback ports: both train, only worker 0 (the chief) logs and writes."""
    params = stage_params(tiny_repro, shared_data, tmp_path, "train_lstm", "multi_worker")
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    procs = []
    for index in range(2):
        env = {
            **subprocess_env(),
            "MLFLOW_TRACKING_URI": tracking_server,
            "MLFLOW_EXPERIMENT_NAME": "distribution-multi-worker",
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
        }
        log = tmp_path / f"worker{index}.log"
        procs.append((start_stage("train_lstm", params, env, log), log))
    chief, worker = (finish(proc, log) for proc, log in procs)

    run = the_one_run(tracking_server, "distribution-multi-worker")
    assert (run.data.tags["distribution.replicas"], run.data.tags["distribution.workers"]) == (
        "2",
        "2",
    )
    assert chief.startswith("epoch 1:") and "the chief logs and writes the outputs" in worker
    assert (
        json.loads((tmp_path / "models" / "lstm" / "mlflow_run.json").read_text())["run_id"]
        == run.info.run_id
    )
    assert_close_to_single_device(tiny_repro, tmp_path / "metrics", "train_lstm")
