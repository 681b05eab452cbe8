"""Start, stop and report on the whole team service: PostgreSQL, then S3, then MLflow.

`up` resumes: the data stay between `down` and `up`, and the ports of the last start are
used again when free, so clients keep their MLFLOW_TRACKING_URI. The host is another
matter: MLflow listens on 127.0.0.1 unless this very start says `--host`, and a start on
any other address prints a warning line with the URI; state.json records the host of the
server that runs, and no later start takes it from there. `up` also finishes or rolls
back a password rotation a failure interrupted (fakenews.team.rotation), and creates the
pipeline's experiment and registered model as admin (fakenews.team.accounts).
A failed `up` stops whatever it started; `down` stops everything and checks that no
port is left open.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fakenews.data.params import DEFAULT_PARAMS, load_params
from fakenews.errors import PipelineError
from fakenews.processes import free_port, port_in_use
from fakenews.team import rotation
from fakenews.team.accounts import USERS
from fakenews.team.layout import (
    ADMIN,
    READER,
    TeamPaths,
    load_secrets,
    load_state,
    save_state,
    team_paths,
    write_private,
)
from fakenews.team.mlflow_auth import MlflowServer
from fakenews.team.postgres import Postgres
from fakenews.team.s3 import S3Server, pick_ports

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 5050
Say = Callable[[str], None]


@dataclass(frozen=True)
class Team:
    paths: TeamPaths
    postgres: Postgres
    s3: S3Server
    mlflow: MlflowServer

    @property
    def uri(self) -> str:
        return self.mlflow.uri

    def ports(self) -> list[int]:
        return [self.postgres.port, *self.s3.ports.values(), self.mlflow.port]


def _usable(port: int | None) -> bool:
    return bool(port) and not port_in_use("127.0.0.1", port)


def _plan(paths: TeamPaths, host: str | None, port: int | None, allowed_hosts: str | None) -> Team:
    """The services on the last start's ports when they still run or the ports are free,
    on new free ports otherwise (only MLflow's port is one clients know)."""
    state = load_state(paths)
    previous = current(paths.root).mlflow if state else None
    if previous and previous.pid():  # running: keep it as it is
        if host and host != previous.host:
            raise PipelineError(
                f"the MLflow server already runs on {previous.host}; stop it "
                f"(`make team-down`) to start it on {host}"
            )
        mlflow = previous
    else:
        mlflow = MlflowServer(
            paths,
            host or DEFAULT_HOST,  # never the last start's: a public host holds for one start
            port or state.get("mlflow_port") or DEFAULT_PORT,
            allowed_hosts=allowed_hosts or state.get("allowed_hosts"),
        )
        if port_in_use("127.0.0.1", mlflow.port):
            raise PipelineError(
                f"port {mlflow.port} is taken; stop what listens there, or choose "
                "another with --port (clients then need the new URI)"
            )
    s3 = S3Server(paths, state.get("s3_ports") or {})
    if not (s3.ports and (s3.pid() or all(_usable(p) for p in s3.ports.values()))):
        s3 = S3Server(paths, pick_ports())
    pg = Postgres(paths, state.get("postgres_port") or 0)
    if not (pg.port and (pg.running() or _usable(pg.port))):
        pg = Postgres(paths, free_port())
    return Team(paths, pg, s3, mlflow)


def current(root: Path | str | None = None) -> Team:
    """The team as its last start left it (state.json), running or not."""
    paths = team_paths(root)
    state = load_state(paths)
    if not state:
        raise PipelineError(
            f"no team service was ever started in {paths.root}; "
            "run `make team-up` (python -m tools.team up)"
        )
    return Team(
        paths,
        Postgres(paths, state["postgres_port"]),
        S3Server(paths, state["s3_ports"]),
        MlflowServer(
            paths, state["host"], state["mlflow_port"], allowed_hosts=state.get("allowed_hosts")
        ),
    )


@contextlib.contextmanager
def _stop_on_failure(stops: list[Callable[[], object]]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        for stop in reversed(stops):
            with contextlib.suppress(Exception):
                stop()
        raise


def pipeline_names(params_path: Path | str = DEFAULT_PARAMS) -> tuple[list[str], list[str]]:
    """The experiment and the registered model the pipeline writes to (params.yaml)."""
    params = load_params(params_path)
    return [params.tracking.experiment], [params.evaluate.registered_model]


def public_warning(mlflow: MlflowServer) -> str:
    return (
        f"warning: the MLflow server listens on {mlflow.host}:{mlflow.port} for this start only "
        f"(http://{socket.gethostname()}:{mlflow.port} from other machines, {mlflow.uri} "
        "here); only its logins stand in the way: firewall the port and put TLS in front "
        "(docs/team.md, threat model)"
    )


def up(
    root: Path | str | None = None,
    host: str | None = None,
    port: int | None = None,
    allowed_hosts: str | None = None,
    params_path: Path | str = DEFAULT_PARAMS,
    say: Say = print,
) -> Team:
    """Start whatever is not running yet (so `up` also restarts a service that died);
    returns the team once MLflow answers as admin and the pipeline's names are admin's."""
    paths = team_paths(root)
    paths.root.mkdir(parents=True, exist_ok=True)
    secrets = load_secrets(paths, create=True)
    experiments, models = pipeline_names(params_path)
    team = _plan(paths, host, port, allowed_hosts)
    state = load_state(paths)
    started: list[Callable[[], object]] = []
    began = time.monotonic()
    with _stop_on_failure(started):
        pg = team.postgres
        if not pg.initialized():
            pg.init()
            say(f"created the PostgreSQL cluster in {pg.data_dir}")
        if not pg.running():
            pg.start()
            started.append(pg.stop)
        pg.ensure_databases(secrets["TEAM_DB_PASSWORD"])
        say(f"PostgreSQL  127.0.0.1:{pg.port}  ({time.monotonic() - began:.1f}s)")
        if team.s3.pid() is None:
            team.s3.start(secrets)
            started.append(team.s3.stop)
        say(f"S3          {team.s3.endpoint}  ({time.monotonic() - began:.1f}s)")
        mlflow = team.mlflow
        if mlflow.public:
            say(public_warning(mlflow))
        if mlflow.pid() is None:
            mlflow.start(pg, team.s3, secrets, bootstrap=not state.get("auth_initialized"))
            started.append(mlflow.stop)
        rotation.settle(mlflow, say)
        secrets = load_secrets(paths)
        admin = (ADMIN, secrets["TEAM_ADMIN_PASSWORD"])
        mlflow.check_admin(admin[1])
        mlflow.accounts.ensure_reader(admin, secrets["TEAM_READER_PASSWORD"])
        if created := mlflow.accounts.ensure_names(admin, experiments, models):
            say(f"created as {ADMIN}: {', '.join(created)}")
        save_state(
            paths,
            {
                "host": mlflow.host,  # of the server now running: status and down need it
                "mlflow_port": mlflow.port,
                "allowed_hosts": mlflow.allowed_hosts,
                "postgres_port": pg.port,
                "s3_ports": team.s3.ports,
                "auth_initialized": True,
            },
        )
        mlflow.write_client_envs(secrets)
        write_private(
            paths.client_env("dvc-s3"),
            "".join(
                f"{name}={secrets[key]}\n"
                for name, key in (
                    ("AWS_ACCESS_KEY_ID", "TEAM_DVC_ACCESS_KEY"),
                    ("AWS_SECRET_ACCESS_KEY", "TEAM_DVC_SECRET_KEY"),
                )
            ),
        )
    say(f"MLflow      {team.uri}  ({time.monotonic() - began:.1f}s), users: {', '.join(USERS)}")
    say(f"clients: set -a; . {paths.client_env(ADMIN)}; set +a   (or {READER}.env: read-only)")
    return team


def down(root: Path | str | None = None, say: Say = print) -> Team | None:
    """Stop MLflow, S3 and PostgreSQL; keep every datum. PipelineError if a port stays open."""
    paths = team_paths(root)
    if not paths.state_file.exists():
        say(f"no team service in {paths.root}")
        return None
    team = current(paths.root)
    say(f"MLflow:     {'stopped' if team.mlflow.stop() else 'was not running'}")
    say(f"S3:         {'stopped' if team.s3.stop() else 'was not running'}")
    if team.postgres.running():
        team.postgres.stop()
        say("PostgreSQL: stopped")
    else:
        say("PostgreSQL: was not running")
    deadline = time.monotonic() + 10
    while (
        open_ports := [p for p in team.ports() if port_in_use("127.0.0.1", p)]
    ) and time.monotonic() < deadline:
        time.sleep(0.2)
    if open_ports:
        raise PipelineError(f"ports still open after stopping the team service: {open_ports}")
    say(f"data kept in {paths.root}; `make team-up` resumes")
    return team


def status(root: Path | str | None = None) -> tuple[bool, list[str]]:
    """(everything runs, one line per service with its address, PID and log)."""
    team = current(root)
    pg, s3, mlflow = team.postgres, team.s3, team.mlflow
    rows = [
        ("PostgreSQL", pg.running() and pg.pid(), f"127.0.0.1:{pg.port}", pg.log_file),
        ("S3", s3.pid(), s3.endpoint, s3.log_file),
        ("MLflow", mlflow.pid(), mlflow.uri, mlflow.log_file),
    ]
    lines = [
        f"{name:<11} {'running (pid ' + str(pid) + ')' if pid else 'stopped':<22} "
        f"{where:<28} log: {log}"
        for name, pid, where, log in rows
    ]
    lines.append(f"data: {team.paths.root}  client settings: {team.paths.secrets_dir}/*.env")
    return all(pid for _, pid, _, _ in rows), lines


def rotate(user: str, root: Path | str | None = None, say: Say = print) -> None:
    """A new random password for `admin` or `reader`, crash-safe (fakenews.team.rotation)."""
    rotation.rotate(current(root).mlflow, user, say)


def grant_create(
    user: str, root: Path | str | None = None, revoke: bool = False, say: Say = print
) -> None:
    """Let `user` create experiments and registered models (role `creators`), or no more."""
    mlflow = current(root).mlflow
    admin = (ADMIN, load_secrets(mlflow.paths)["TEAM_ADMIN_PASSWORD"])
    mlflow.accounts.set_creator(user, admin, allowed=not revoke)
    say(f"{user} {'may no longer' if revoke else 'may now'} create experiments and models")
