"""The local MLflow tracking server: settings, start, stop and status (CLI: tools.tracking_server).

The server keeps runs in SQLite and stores artifacts in a local folder, and serves those
artifacts over HTTP (`mlflow-artifacts:` URIs), so clients need nothing but the URI.
Settings come from the `tracking:` section of params.yaml (fakenews.data.sections);
command-line flags override them. Relative paths are relative to the work directory
(the project root by default), where the PID file and log live as well:
`<workdir>/mlflow/server.pid` and `<workdir>/mlflow/server.log`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import requests

from fakenews.data.params import DEFAULT_PARAMS, PROJECT_ROOT, load_params
from fakenews.data.tool_sections import TrackingParams
from fakenews.errors import PipelineError
from fakenews.processes import (
    alive,
    check_bind_host,
    free_port,
    port_in_use,
    process_matching,
    spawn_detached,
    wait_until_ready,
)

# The server must not phone home, and the job-execution consumer (an extra process used for
# GenAI evaluation jobs) is of no use here.
SERVER_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "PYTHONUNBUFFERED": "1",
}


def tracking_settings(params_path: Path | str = DEFAULT_PARAMS) -> TrackingParams:
    """The `tracking:` section of the params file; its defaults when there is no file."""
    path = Path(params_path)
    return load_params(path).tracking if path.exists() else TrackingParams()


def client_uri(host: str, port: int) -> str:
    """The URI clients use for a server bound to `host`: a wildcard address means this
    machine, and an IPv6 literal goes in brackets."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    backend_store: Path
    artifact_root: Path
    workdir: Path

    @property
    def uri(self) -> str:
        return client_uri(self.host, self.port)

    @property
    def pid_file(self) -> Path:
        return self.workdir / "mlflow" / "server.pid"

    @property
    def log_file(self) -> Path:
        return self.workdir / "mlflow" / "server.log"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{self.backend_store}",
            "--serve-artifacts",
            "--artifacts-destination", str(self.artifact_root),
            "--default-artifact-root", "mlflow-artifacts:/",
            "--host", self.host,
            "--port", str(self.port),
            "--workers", "1",
        ]  # fmt: skip


def server_config(
    workdir: Path | str | None = None,
    port: int | None = None,
    backend_store: Path | str | None = None,
    artifact_root: Path | str | None = None,
    params_path: Path | str = DEFAULT_PARAMS,
) -> ServerConfig:
    """Settings from params.yaml, overridden by the arguments that are not None."""
    settings = tracking_settings(params_path)
    base = Path(workdir or PROJECT_ROOT).expanduser().resolve()
    return ServerConfig(
        host=settings.host,
        port=port or settings.port,
        # joining an absolute path onto `base` yields the absolute path unchanged
        backend_store=base / Path(backend_store or settings.backend_store).expanduser(),
        artifact_root=base / Path(artifact_root or settings.artifact_root).expanduser(),
        workdir=base,
    )


@dataclass(frozen=True)
class ServerHandle:
    config: ServerConfig
    pid: int | None  # from the PID file when a server was already answering
    started: bool = False  # whether this call started it (running_server stops only those)

    @property
    def uri(self) -> str:
        return self.config.uri


def server_healthy(uri: str, timeout: float = 2.0) -> bool:
    """Whether GET <uri>/health answers 200."""
    try:
        return requests.get(f"{uri.rstrip('/')}/health", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def read_pid(config: ServerConfig) -> int | None:
    try:
        return int(config.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _server_process(pid: int | None) -> psutil.Process | None:
    """The live `mlflow server` process with this PID, or None (guards against PID reuse)."""
    return process_matching(pid, "mlflow", "server")


def _spawn(config: ServerConfig) -> int:
    from fakenews.data.io import (
        atomic_path,  # here: it imports pandas, which `url` does not need
    )

    for folder in (config.pid_file.parent, config.backend_store.parent, config.artifact_root):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise PipelineError(f"{folder}: cannot create it for the server: {err}") from None
    pid = spawn_detached(
        config.command(), config.log_file, {**os.environ, **SERVER_ENV}, cwd=config.workdir
    )
    with atomic_path(config.pid_file) as tmp:
        tmp.write_text(f"{pid}\n")
    return pid


def start_server(
    workdir: Path | str | None = None,
    port: int | None = None,
    *,
    backend_store: Path | str | None = None,
    artifact_root: Path | str | None = None,
    params_path: Path | str = DEFAULT_PARAMS,
    timeout: float = 90.0,
    say: Callable[[str], None] = print,
) -> ServerHandle:
    """Start a detached `mlflow server` unless one already answers; wait until it is healthy."""
    config = server_config(workdir, port, backend_store, artifact_root, params_path)
    check_bind_host(config.host, authenticated=False, setting=f"{params_path}: tracking.host")
    if server_healthy(config.uri):
        say(f"MLflow server already running at {config.uri}")
        return ServerHandle(config, read_pid(config))
    began = time.monotonic()
    proc = _server_process(read_pid(config))
    if proc is not None and str(config.port) not in proc.cmdline():
        raise PipelineError(
            f"the MLflow server from {config.workdir} (pid {proc.pid}) listens on another port; "
            "stop it first (`python -m tools.tracking_server stop`)"
        )
    if proc is not None:
        say(f"MLflow server (pid {proc.pid}) is still starting; waiting for it")
        pid = proc.pid
    elif port_in_use(config.host, config.port):
        raise PipelineError(
            f"port {config.port} on {config.host} is taken by a program that is not a healthy "
            f"MLflow server ({config.uri}/health does not answer); stop it or choose another "
            "port with --port or `tracking: port:` in params.yaml"
        )
    else:
        pid = _spawn(config)
        say(f"started MLflow server (pid {pid}) at {config.uri}, log: {config.log_file}")
    handle = ServerHandle(config, pid, started=True)

    def running() -> bool:
        # Our own child, seconds old: alive is enough. Matching its command line as for a PID
        # file can fail while a loaded machine is still exec-ing it, and would call it dead.
        try:
            if alive(psutil.Process(pid)):
                return True
        except psutil.Error:
            pass
        config.pid_file.unlink(missing_ok=True)
        return False

    wait_until_ready(
        lambda: server_healthy(config.uri, timeout=1.0),
        running,
        "the MLflow server",
        config.log_file,
        timeout - (time.monotonic() - began),
        stop=lambda: stop_server(handle, say=lambda _: None),
        say=say,
    )
    say(f"MLflow server is up at {config.uri} after {time.monotonic() - began:.1f}s")
    return handle


def stop_server(
    handle: ServerHandle, timeout: float = 15.0, say: Callable[[str], None] = print
) -> bool:
    """Terminate the server's process group (SIGTERM, then SIGKILL); False if none was running."""
    config = handle.config
    proc = _server_process(handle.pid)
    if proc is None:
        if handle.pid is not None and read_pid(config) == handle.pid:
            config.pid_file.unlink(missing_ok=True)
        if server_healthy(config.uri):
            say(
                f"a server answers at {config.uri}, but it was not started from "
                f"{config.workdir} (no live PID in {config.pid_file}); not stopping it"
            )
        else:
            say(f"no MLflow server is running at {config.uri}")
        return False
    procs = [proc, *proc.children(recursive=True)]
    try:
        own_group = os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:
        own_group = False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            if own_group:
                os.killpg(proc.pid, sig)
            else:
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        p.send_signal(sig)
        deadline = time.monotonic() + timeout
        while any(alive(p) for p in procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        procs = [p for p in procs if alive(p)]
        if not procs:
            break
    if read_pid(config) == proc.pid:
        config.pid_file.unlink(missing_ok=True)
    say(f"stopped MLflow server (pid {proc.pid}) started from {config.workdir}")
    return True


@contextlib.contextmanager
def running_server(
    workdir: Path | str, port: int | None = None, **kwargs: Any
) -> Iterator[ServerHandle]:
    """A server in `workdir` on `port` (a free one by default) for the duration of the block."""
    handle = start_server(workdir, port or free_port(), say=lambda _: None, **kwargs)
    try:
        yield handle
    finally:
        if handle.started:
            stop_server(handle, say=lambda _: None)


def server_status(config: ServerConfig) -> tuple[bool, str]:
    pid = read_pid(config)
    proc = _server_process(pid)
    healthy = server_healthy(config.uri)
    if healthy and proc:
        return True, f"running at {config.uri} (pid {proc.pid}), healthy"
    if healthy:
        return True, f"a server answers at {config.uri}, but not one started from {config.workdir}"
    if proc:
        return False, f"process {proc.pid} is running but {config.uri}/health does not answer yet"
    stale = f" (stale PID file {config.pid_file} names {pid})" if pid is not None else ""
    return False, f"not running at {config.uri}{stale}"
