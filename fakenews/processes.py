"""Processes and ports on this machine: what the servers we start, and the tests, rely on."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import psutil

from fakenews.errors import PipelineError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (IPv4 or IPv6, as `host` is)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    """Whether something accepts connections there; `host` may be IPv6 (::1) or a name."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only: 127.0.0.0/8, ::1 or localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_bind_host(host: str, *, authenticated: bool, setting: str) -> None:
    """Refuse to listen beyond loopback without authentication: anyone who reaches such a
    port could register a model and move `champion`, and every consumer runs that model."""
    if not authenticated and not is_loopback(host):
        raise PipelineError(
            f"{setting} is {host!r}, but this server has no authentication, so it listens on "
            "loopback only (127.0.0.1, ::1 or localhost). For a server others can reach, "
            "use the authenticated team server (`make team-up`, docs/team.md)."
        )


def alive(proc: psutil.Process) -> bool:
    """Running; a zombie has exited and only waits for its parent to collect it."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def listening_ports(proc: psutil.Process) -> set[int]:
    """TCP ports `proc` or any process it started listens on (uvicorn workers, say)."""
    ports = set()
    for member in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            connections = member.net_connections("tcp")
            ports.update(c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN)
    return ports


def listener_of(port: int) -> psutil.Process | None:
    """The process listening on TCP `port`, when this user may see it (root sees all)."""
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            with contextlib.suppress(psutil.Error):
                return psutil.Process(conn.pid)
    return None


def clean_environment(home: Path | str, **extra: str) -> dict[str, str]:
    """An environment built from nothing for a server we start: our venv's and the system's
    programs, a UTF-8 locale, a home of its own and `extra`. Nothing of the caller's passes
    on: a teammate who sourced admin.env must not hand MLFLOW_TRACKING_PASSWORD to a
    process (or the other user it runs as) that reads /proc/PID/environ."""
    return {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        **extra,
    }


def spawn_detached(
    command: Sequence[str], log_file: Path, env: Mapping[str, str], cwd: Path | str | None = None
) -> int:
    """Start `command` in its own session, output to `log_file` (the command line first);
    returns its PID. Its own process group lets a stop reach the workers it forks."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        proc = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc.pid


def log_tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log, indented, for an error message."""
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return "(no log file)"
    return "\n".join(f"    {line}" for line in tail)


def wait_until_ready(
    ready: Callable[[], bool],
    running: Callable[[], bool],
    what: str,
    log_file: Path,
    timeout: float,
    stop: Callable[[], object],
    say: Callable[[str], None] = lambda _: None,
) -> float:
    """Poll `ready` until it is true; returns the seconds waited. A PipelineError with the
    log's tail when the process stops `running`, or when `timeout` passes (then it is
    stopped first, so a hung start leaves nothing behind)."""
    began = time.monotonic()
    next_note = 5.0
    while not ready():
        waited = time.monotonic() - began
        if not running():
            raise PipelineError(
                f"{what} exited during startup; last lines of {log_file}:\n" + log_tail(log_file)
            )
        if waited > timeout:
            stop()
            raise PipelineError(
                f"{what} was not ready within {timeout:.0f}s and was stopped; "
                f"last lines of {log_file}:\n" + log_tail(log_file)
            )
        if waited >= next_note:
            say(f"  waiting for {what} ... {waited:.0f}s")
            next_note += 5.0
        time.sleep(0.25)
    return time.monotonic() - began


def group_processes(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of a process group."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def stop_group(proc: subprocess.Popen | int, what: str, grace: float = 30) -> None:
    """SIGTERM the process group `proc` (a Popen or a PID) leads (a server and the workers
    it forked), then SIGKILL; fail loudly if anything survives, so a leak cannot go unnoticed."""
    pid = proc if isinstance(proc, int) else proc.pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while group_processes(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not group_processes(pid):
            break
    if isinstance(proc, subprocess.Popen):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
    else:  # our child when started by this process: collect it, so it is no zombie
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
    left = group_processes(pid)
    if left:
        raise PipelineError(f"{what} left processes behind: {[p.pid for p in left]}")
