"""Team mode attacked as an outsider on this machine would: every door of issue 27 tried,
and each refused, against the real PostgreSQL, SeaweedFS and MLflow on free loopback ports.

Each test is one door; the docstring says what it proves. Where a refusal could come from
the attack itself being broken, the test also knocks with the key (the team's certificate,
a JWT signed with the team's key, the admin's password) and gets in, so a refusal means
the key was missing, and only that.
"""

from __future__ import annotations

import json
import subprocess
import sys

import psutil

from fakenews.processes import free_port
from fakenews.tracking.recognition import answers_as_mlflow
from tests.support.commands import PROJECT_ROOT
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
