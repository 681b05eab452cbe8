"""Team mode attacked as an outsider on this machine would: every door of issue 27 tried,
and each refused, against the real PostgreSQL, SeaweedFS and MLflow on free loopback ports.

Each test is one door; the docstring says what it proves. Where a refusal could come from
the attack itself being broken, the test also knocks with the key (the team's certificate,
a JWT signed with the team's key, the admin's password) and gets in, so a refusal means
the key was missing, and only that.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from fakenews.data.params import read_params
from fakenews.processes import free_port, listening_ports, port_in_use, stop_group
from fakenews.tracking.recognition import answers_as_mlflow
from tests.support.commands import PROJECT_ROOT, subprocess_env, write_params
from tests.support.strays import lookalike, mimic_mlflow


def tool(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


# --- door 3: the local server is recognised by more than /health -----------------------------


@pytest.mark.slow  # a web server of its own
def test_a_stray_server_answering_like_mlflow_on_the_tracking_port_is_not_taken_for_it(tmp_path):
    """A web server that answers /health and the REST API exactly as MLflow does, on the
    local server's port: `start` refuses in one line naming the port and the stranger's PID,
    `status` says who holds the port, `stop` leaves it alone, and so does a PID file that
    names the stranger by its PID alone."""
    port = free_port()
    flags = ["--workdir", str(tmp_path), "--port", str(port)]
    with mimic_mlflow(port) as stray:
        assert answers_as_mlflow(f"http://127.0.0.1:{port}"), "the mimic does not fool answers"
        for pid_file in (None, f"{stray.pid}\n"):  # none, then the bare PID older versions wrote
            if pid_file:
                (tmp_path / "mlflow").mkdir(exist_ok=True)
                (tmp_path / "mlflow" / "server.pid").write_text(pid_file)
            start = tool("tools.tracking_server", "start", *flags)
            assert start.returncode == 2, start.stdout + start.stderr
            assert start.stderr.count("\n") == 1, start.stderr
            assert f"port {port} on 127.0.0.1 is taken by pid {stray.pid}" in start.stderr
            assert "not the MLflow server started from" in start.stderr
            status = tool("tools.tracking_server", "status", *flags)
            assert status.returncode == 1 and f"pid {stray.pid}" in status.stdout
            stop = tool("tools.tracking_server", "stop", *flags)
            assert stop.returncode == 0 and "not stopping it" in stop.stdout
            assert stray.poll() is None, "stop signalled the stranger"


# --- door 6c: PID files name a process, not a PID --------------------------------------------


def test_stop_and_down_never_signal_a_stranger_a_stale_pid_file_names(tmp_path):
    """A PID file outlives its server and the kernel reuses the PID: here a stranger with
    that PID whose command line even reads `mlflow server ... weed mini`. Neither the local
    server's `stop` nor the team's `down` signals it, whether the file holds the bare PID
    or an identity whose start time is not the stranger's."""
    from fakenews.team.layout import save_state, team_paths

    with lookalike("mlflow", "server", "weed", "mini") as stranger:
        proc = psutil.Process(stranger.pid)
        reused = json.dumps(
            {"pid": stranger.pid, "started": proc.create_time() - 7.0, "exe": proc.exe()}
        )
        paths = team_paths(tmp_path / "team")
        save_state(
            paths,
            {
                "host": "127.0.0.1",
                "mlflow_port": free_port(),
                "postgres_port": free_port(),
                "s3_ports": {"s3": free_port()},
            },
        )
        paths.run_dir.mkdir()
        for content in (f"{stranger.pid}\n", reused):
            (tmp_path / "mlflow").mkdir(exist_ok=True)
            for pid_file in (
                tmp_path / "mlflow" / "server.pid",
                paths.pid_file("mlflow"),
                paths.pid_file("s3"),
            ):
                pid_file.write_text(content)
            stop = tool("tools.tracking_server", "stop", "--workdir", str(tmp_path))
            assert stop.returncode == 0 and "no MLflow server is running" in stop.stdout
            down = tool("tools.team", "down", "--dir", str(paths.root))
            assert down.returncode == 0, down.stderr
            assert "MLflow:     was not running" in down.stdout
            assert "S3:         was not running" in down.stdout
            assert stranger.poll() is None, "a stale PID file got a stranger signalled"


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


# --- door 6a: multi_worker training's gRPC server stays on loopback --------------------------


def own_network_addresses() -> list[str]:
    """This machine's addresses other than loopback: where an outsider would knock."""
    return [
        address.address
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family == socket.AF_INET and not address.address.startswith("127.")
    ]


@pytest.mark.slow  # TensorFlow starts
def test_a_multi_worker_trainer_on_a_loopback_cluster_listens_on_loopback_only(tmp_path):
    """Worker 0 of a two-worker cluster on 127.0.0.1, as a stage starts it (the other worker
    never comes, so it waits with its gRPC server up): TensorFlow would listen on every
    interface; this one listens on loopback alone, and knocking on the port at the
    machine's own network address finds nothing."""
    params = read_params(PROJECT_ROOT / "params.yaml")
    params["train_lstm"]["distribution"] = "multi_worker"
    params_file = write_params(tmp_path / "params.yaml", params)
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    env = {
        **subprocess_env(),
        "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),  # builds the bind library afresh
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "stages.train_lstm", "--params", str(params_file)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        process, deadline = psutil.Process(worker.pid), time.monotonic() + 180
        while ports[0] not in listening_ports(process):
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the worker never started its gRPC server"
            time.sleep(0.5)
        listeners = {
            c.laddr.ip for c in process.net_connections("tcp") if c.status == psutil.CONN_LISTEN
        }
        assert listeners <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, listeners
        assert environ(worker.pid)["LD_PRELOAD"].endswith(".so")  # it re-executed itself
        for address in own_network_addresses():
            assert not port_in_use(address, ports[0]), f"reachable at {address}:{ports[0]}"
    finally:
        stop_group(worker.pid, "the multi_worker trainer", grace=5)
