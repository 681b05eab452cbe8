"""fakenews.tracking.runs and fakenews.tracking.server against real `mlflow server`
processes (no mocks).

The session's server is shared; the CLI test starts and stops its own.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from dvc_data.hashfile.hash_info import HashInfo
from dvc_data.hashfile.tree import Tree
from mlflow.tracking import MlflowClient

from fakenews.data.params import PROJECT_ROOT
from fakenews.errors import PipelineError
from fakenews.processes import free_port
from fakenews.tracking.connection import require_server, tracking_uri
from fakenews.tracking.runs import start_run
from fakenews.tracking.server import server_config

EXPERIMENT = "tracking-tests"


@pytest.fixture
def client(tracking_server, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
    monkeypatch.chdir(tmp_path)
    return MlflowClient(tracking_server)


def dvc_dir_md5(folder: Path) -> str:
    """What DVC itself (dvc_data) computes for a folder."""
    tree = Tree()
    for file in folder.rglob("*"):
        if file.is_file():
            md5 = hashlib.md5(file.read_bytes()).hexdigest()
            tree.add(file.relative_to(folder).parts, None, HashInfo("md5", md5))
    tree.digest()
    return tree.hash_info.value


def test_run_logs_params_metrics_tags_and_artifacts(client, tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "sweep-lr-1")
    data = tmp_path / "train.csv"
    data.write_text("text,label\nhello,0\n")
    folder = tmp_path / "model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"\x00\x01")
    (folder / "variables" / "v.index").write_text("v")
    params = {"model": {"lr": 0.001, "layers": [64, 32]}, "seed": 7, "notes": "x" * 7000}

    inputs = [data, folder, "fakenews/errors.py", "../nowhere/raw.csv"]
    with start_run("train", params, inputs) as run:
        for epoch, loss in enumerate([0.9, 0.5, 0.3]):
            run.log_epoch(epoch, {"loss": loss, "val": {"accuracy": 1 - loss}})
        run.log_metrics({"test": {"f1": 0.8}, "accuracy": 0.75})
        run.log_artifact(data)
        run.log_artifact(folder)

    logged = client.get_run(run.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.info.run_name == "train"
    assert client.get_experiment(logged.info.experiment_id).name == EXPERIMENT
    assert client.get_experiment(logged.info.experiment_id).artifact_location.startswith(
        "mlflow-artifacts:"
    )

    p = logged.data.params
    assert (p["model.lr"], p["model.layers"], p["seed"]) == ("0.001", "[64, 32]", "7")
    assert len(p["notes"]) == 6000 and p["notes"].endswith("...")

    m = logged.data.metrics
    assert m["test.f1"] == 0.8 and m["accuracy"] == 0.75
    assert m["mlflow_logging_seconds"] > 0
    history = client.get_metric_history(run.run_id, "val.accuracy")
    assert [(h.step, round(h.value, 6)) for h in history] == [(0, 0.1), (1, 0.5), (2, 0.7)]

    t = logged.data.tags
    assert t["dvc.stage"] == "train"
    assert t["dvc.exp.name"] == "sweep-lr-1"
    assert t["command"] == shlex.join(sys.orig_argv)
    assert t["git.dirty"] in ("true", "false", "unknown")
    assert t["git.commit"] and t["git.branch"] and t["mlflow.source.name"]
    assert t[f"dvc.dep.{data}"] == hashlib.md5(data.read_bytes()).hexdigest()
    assert t[f"dvc.dep.{folder}"] == dvc_dir_md5(folder)
    errors_py = (PROJECT_ROOT / "fakenews/errors.py").read_bytes()
    assert t["dvc.dep.fakenews/errors.py"] == hashlib.md5(errors_py).hexdigest()
    assert t["dvc.dep.../nowhere/raw.csv"] == "missing"

    assert {a.path for a in client.list_artifacts(run.run_id)} == {"train.csv", "model"}
    local = client.download_artifacts(run.run_id, "model/variables/v.index", str(tmp_path / "dl"))
    assert Path(local).read_text() == "v"


def test_exception_ends_run_failed_and_propagates(client):
    with pytest.raises(ValueError, match="bad batch"):
        with start_run("evaluate", {}, []) as run:
            raise ValueError("bad batch")
    assert client.get_run(run.run_id).info.status == "FAILED"

    with pytest.raises(KeyboardInterrupt):
        with start_run("evaluate", {}, []) as interrupted:
            raise KeyboardInterrupt
    assert client.get_run(interrupted.run_id).info.status == "KILLED"


def test_server_down_is_a_pipeline_error_and_creates_nothing(monkeypatch, tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineError, match=uri) as err:
        require_server(tracking_uri())
    assert "make server" in str(err.value)
    with pytest.raises(PipelineError, match=uri):
        with start_run("train", {"a": 1}, []):
            pytest.fail("the block must not run without a server")
    assert list(tmp_path.iterdir()) == []  # no mlruns/, no mlflow.db


def test_tracking_uri_defaults_to_the_configured_server(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri() == server_config().uri


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.tracking_server", *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


@pytest.mark.slow
def test_cli_start_status_stop_and_server_lost_mid_run(tmp_path, monkeypatch):
    flags = ["--workdir", str(tmp_path), "--port", str(free_port())]
    uri = cli("url", *flags).stdout.strip()
    pid_file = tmp_path / "mlflow" / "server.pid"
    try:
        first = cli("start", *flags)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "is up at " + uri in first.stdout
        assert pid_file.exists() and (tmp_path / "mlflow" / "server.log").exists()
        second = cli("start", *flags)
        assert second.returncode == 0 and "already running" in second.stdout
        status = cli("status", *flags)
        assert status.returncode == 0 and "healthy" in status.stdout

        # The server goes away while a stage is logging.
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        with pytest.raises(PipelineError, match=uri):
            with start_run("train", {"epochs": 2}, []) as run:
                run.log_epoch(0, {"loss": 1.0})
                assert cli("stop", *flags).returncode == 0
                run.log_epoch(1, {"loss": 0.5})
    finally:
        cli("stop", *flags)
    assert not pid_file.exists()
    status = cli("status", *flags)
    assert status.returncode == 1 and "not running" in status.stdout
    assert cli("stop", *flags).returncode == 0  # stopping twice is fine


def test_sigterm_mid_run_ends_the_run_killed(client, tmp_path):
    """A stage killed with SIGTERM leaves no run stuck in RUNNING."""
    import signal
    import time

    script = (
        "import time\n"
        "from fakenews.tracking.runs import start_run\n"
        "with start_run('sleeper', {'a': 1}) as run:\n"
        "    print(run.run_id, flush=True)\n"
        "    time.sleep(120)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run_id = proc.stdout.readline().strip()
    assert client.get_run(run_id).info.status == "RUNNING"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    deadline = time.time() + 10
    while client.get_run(run_id).info.status == "RUNNING" and time.time() < deadline:
        time.sleep(0.5)
    assert client.get_run(run_id).info.status == "KILLED"
