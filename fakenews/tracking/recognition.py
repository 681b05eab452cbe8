"""Who answers at a tracking URI: enough for a client to go on (`server_healthy`), and, for
the servers we start, whether the one holding the port is ours.

A port is anyone's: any program on this machine can listen on the local server's port
first, answer /health with 200, or even copy MLflow's REST answers. So a server is ours
only when the process its PID file identifies (fakenews.pidfile), or a worker it forked,
holds the port; the answers then only tell whether it is ready.
"""

from __future__ import annotations

import os
import time

import psutil
import requests

from fakenews.pidfile import PidFile
from fakenews.processes import listener_of, listening_ports

NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"


def server_healthy(uri: str, timeout: float = 2.0) -> bool:
    """Whether GET <uri>/health answers 200: enough for a client to go on, never for us to
    take a server for ours (`answers_as_mlflow`, `our_server`)."""
    try:
        return requests.get(f"{uri.rstrip('/')}/health", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def answers_as_mlflow(uri: str, timeout: float = 2.0) -> bool:
    """Whether `uri` answers as an MLflow server without logins: /health says OK and the
    REST API refuses an unknown experiment with MLflow's own error code."""
    base = uri.rstrip("/")
    try:
        health = requests.get(f"{base}/health", timeout=timeout)
        probe = requests.get(
            f"{base}/api/2.0/mlflow/experiments/get-by-name",
            params={"experiment_name": f"no-such-experiment-{os.getpid()}-{time.time_ns()}"},
            timeout=timeout,
        )
        code = probe.json().get("error_code") if probe.status_code == 404 else None
    except (requests.RequestException, ValueError, AttributeError):
        return False
    return health.status_code == 200 and health.text.strip() == "OK" and code == NOT_FOUND


def our_server(pid_file: PidFile, port: int) -> psutil.Process | None:
    """The server we started (`pid_file` names a live process we started: PID, start time
    and executable) when it, or a worker it forked, listens on `port`."""
    proc = pid_file.process()
    return proc if proc is not None and port in listening_ports(proc) else None


def who_listens(uri: str, port: int) -> str:
    """What holds `port`, in words: its process when visible, and its answer to HTTP."""
    listener = listener_of(port)
    try:
        who = f"pid {listener.pid} ({listener.name()})" if listener else "a process"
    except psutil.Error:
        who = f"pid {listener.pid}"
    try:
        answer = requests.get(f"{uri.rstrip('/')}/health", timeout=2.0)
        server = answer.headers.get("Server")
        said = f"answers GET /health with HTTP {answer.status_code}" + (
            f" (Server: {server})" if server else ""
        )
    except requests.RequestException:
        said = "does not answer HTTP"
    return f"{who}, which {said}"
