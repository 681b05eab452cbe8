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

from fakenews.data.params import DEFAULT_PARAMS, PROJECT_ROOT, load_params
from fakenews.data.tool_sections import TrackingParams
from fakenews.errors import PipelineError
from fakenews.pidfile import PidFile
from fakenews.processes import (
    alive,
    check_bind_host,
    clean_environment,
    free_port,
    listening_ports,
    port_in_use,
    spawn_detached,
    wait_until_ready,
)
from fakenews.tracking.recognition import answers_as_mlflow, our_server, who_listens

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

    @property
    def process(self) -> PidFile:
        return PidFile(self.pid_file)

    def ours(self) -> psutil.Process | None:
        """Our server (recognition.our_server) when it holds the port, else None."""
        return our_server(self.process, self.port)

    def holder(self) -> str:
        """What holds the port, in words (recognition.who_listens)."""
        return who_listens(self.uri, self.port)

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


def _port_taken(config: ServerConfig) -> PipelineError:
    return PipelineError(
        f"port {config.port} on {config.host} is taken by {config.holder()}: not the "
        f"MLflow server started from {config.workdir} ({config.pid_file} names no live "
        "server of ours there); stop it, or choose another port with --port or "
        "`tracking: port:` in params.yaml"
    )


def _spawn(config: ServerConfig) -> int:
    for folder in (config.pid_file.parent, config.backend_store.parent, config.artifact_root):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise PipelineError(f"{folder}: cannot create it for the server: {err}") from None
    env = clean_environment(config.pid_file.parent, **SERVER_ENV)
    pid = spawn_detached(config.command(), config.log_file, env, cwd=config.workdir)
    config.process.write(pid)
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
    """Start a detached `mlflow server` unless ours already runs; wait until it answers.
    PipelineError, naming the port and what holds it, when anything else listens there."""
    config = server_config(workdir, port, backend_store, artifact_root, params_path)
    check_bind_host(config.host, authenticated=False, setting=f"{params_path}: tracking.host")
    began = time.monotonic()
    proc = config.process.process()
    if port_in_use(config.host, config.port):
        if proc is None or config.port not in listening_ports(proc):
            raise _port_taken(config)
        if answers_as_mlflow(config.uri):
            say(f"MLflow server already running at {config.uri} (pid {proc.pid})")
            return ServerHandle(config, proc.pid)
    if proc is not None and str(config.port) not in proc.cmdline():
        raise PipelineError(
            f"the MLflow server from {config.workdir} (pid {proc.pid}) listens on another port; "
            "stop it first (`python -m tools.tracking_server stop`)"
        )
    if proc is not None:
        say(f"MLflow server (pid {proc.pid}) is still starting; waiting for it")
        pid = proc.pid
    else:
        pid = _spawn(config)
        say(f"started MLflow server (pid {pid}) at {config.uri}, log: {config.log_file}")
    handle = ServerHandle(config, pid, started=True)

    def running() -> bool:
        if config.process.live() == pid:
            return True
        config.pid_file.unlink(missing_ok=True)
        return False

    wait_until_ready(
        lambda: config.ours() is not None and answers_as_mlflow(config.uri, timeout=1.0),
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
    """Terminate the server's process group (SIGTERM, then SIGKILL); False if none was running.
    Only the process the PID file identifies is signalled, never one that merely answers."""
    config = handle.config
    proc = config.process.process()
    if proc is None or (handle.pid is not None and proc.pid != handle.pid):
        if proc is None:
            config.pid_file.unlink(missing_ok=True)
        if port_in_use(config.host, config.port):
            say(
                f"port {config.port} is held by {config.holder()}, not by a server "
                f"started from {config.workdir}; not stopping it"
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
    proc = config.process.process()
    if config.ours() is not None and answers_as_mlflow(config.uri):
        return True, f"running at {config.uri} (pid {proc.pid}), healthy"
    if port_in_use(config.host, config.port) and (
        proc is None or config.port not in listening_ports(proc)
    ):
        return False, (
            f"port {config.port} is held by {config.holder()}, not by a server "
            f"started from {config.workdir}"
        )
    if proc:
        return False, f"process {proc.pid} is running but does not answer at {config.uri} yet"
    stale = f" (stale PID file {config.pid_file})" if config.pid_file.exists() else ""
    return False, f"not running at {config.uri}{stale}"
