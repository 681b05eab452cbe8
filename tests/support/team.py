"""The team service in tests: brought up in a fresh folder and, at the end, stopped with
nothing of it left running, listening or on disk; and the client environment a teammate
gets by sourcing a user's file."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

from fakenews.processes import free_port, port_in_use
from fakenews.team import stack
from fakenews.team.layout import ADMIN, read_env_file, team_paths
from fakenews.team.postgres import Postgres
from tests.support.commands import subprocess_env


def processes_under(*folders: Path) -> list[psutil.Process]:
    """Live processes whose command line or working directory lies in one of `folders`."""
    found = []
    for proc in psutil.process_iter():
        try:
            where = " ".join(proc.cmdline()) + " " + proc.cwd()
            if proc.status() != psutil.STATUS_ZOMBIE and any(str(f) in where for f in folders):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def team_processes(team: stack.Team) -> list[psutil.Process]:
    """Every process of the service: those started in its folder, and the postmaster and
    its backends, which live with the PostgreSQL cluster."""
    return processes_under(team.paths.root, team.postgres.cluster_dir)


def quiet_up(root: Path) -> stack.Team:
    return stack.up(root, port=free_port(), say=lambda _: None)


@contextlib.contextmanager
def team_service(
    root: Path, start: Callable[[Path], stack.Team] = quiet_up
) -> Iterator[stack.Team]:
    """`start(root)` (default: `up` on a free MLflow port), then, whatever happened: `down`,
    a check that no process of it runs and none of its ports is open, and its data gone
    (the PostgreSQL cluster too, wherever it lives)."""
    try:
        yield start(root)  # `up` stops what it started when it fails
    finally:
        try:
            if (root / "state.json").exists():  # something started at some point
                team = stack.current(root)
                stack.down(root, say=lambda _: None)
                assert not team_processes(team), "team processes outlived `down`"
                assert not [p for p in team.ports() if port_in_use("127.0.0.1", p)]
        finally:
            Postgres(team_paths(root), 0).delete_cluster()  # wherever postgres.location says
            shutil.rmtree(root, ignore_errors=True)


def client_env(team: stack.Team, user: str | None = ADMIN, **extra: str) -> dict[str, str]:
    """A subprocess environment logged in as `user` (None: no credentials) by the client
    file `up` wrote, as a teammate would source it."""
    env = {k: v for k, v in subprocess_env().items() if not k.startswith("MLFLOW_TRACKING_")}
    env.update(
        read_env_file(team.paths.client_env(user)) if user else {"MLFLOW_TRACKING_URI": team.uri}
    )
    return {**env, **extra}
