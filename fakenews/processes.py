"""Processes and ports on this machine: what the servers we start, and the tests, rely on."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time

import psutil

from fakenews.errors import PipelineError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def alive(proc: psutil.Process) -> bool:
    """Running; a zombie has exited and only waits for its parent to collect it."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def group_processes(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of a process group."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def stop_group(proc: subprocess.Popen, what: str) -> None:
    """SIGTERM the process group `proc` leads (a server and the workers it forked), then
    SIGKILL; fail loudly if anything survives, so a leak cannot go unnoticed."""
    for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + grace
        while group_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not group_processes(proc.pid):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    left = group_processes(proc.pid)
    if left:
        raise PipelineError(f"{what} left processes behind: {[p.pid for p in left]}")
