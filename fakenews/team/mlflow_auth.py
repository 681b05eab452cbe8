"""The team's MLflow server: logins, PostgreSQL stores, artifacts proxied to S3.

It runs `mlflow server --app-name fakenews-team` (fakenews.team.mlflow_app): MLflow's basic
auth with `default_permission = READ`, so every user reads every experiment and model and
writes only what it was granted (admins anything), plus one rule basic auth lacks: only
admins and members of the role `creators` create experiments and registered models.
`reader` therefore loads models and gets 403 when it logs a run, moves an alias, or tries
to take a name first. (fakenews.team.accounts sets users, names and roles.)

The server starts from an environment built from nothing (fakenews.processes): paths to
its 0600 files (pgpass for the database, an AWS credentials file for S3) and the Flask
secret it signs sessions with, and nothing of the caller's. The admin's first password
reaches it once, through the auth config (0600), which is rewritten without it as soon as
the admin can log in: no secret sits in its environment or on its command line that it
does not use.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from fakenews.data.params import PROJECT_ROOT
from fakenews.errors import PipelineError
from fakenews.pidfile import PidFile
from fakenews.processes import (
    check_bind_host,
    clean_environment,
    is_loopback,
    spawn_detached,
    wait_until_ready,
)
from fakenews.team.accounts import USERS, Accounts
from fakenews.team.layout import ADMIN, Secrets, TeamPaths, env_file_text, write_private
from fakenews.team.postgres import Postgres
from fakenews.team.s3 import ARTIFACTS, REGION, S3Server
from fakenews.tracking.recognition import our_server, server_healthy
from fakenews.tracking.server import SERVER_ENV

AUTH_CACHE_SECONDS = 60
APP_NAME = "fakenews-team"  # fakenews.team.mlflow_app, found by this entry point
ENTRY_POINT = f"[mlflow.app]\n{APP_NAME} = fakenews.team.mlflow_app:create_app\n"


@dataclass(frozen=True)
class MlflowServer:
    paths: TeamPaths
    host: str
    port: int
    # One worker: on this 2-core machine a second added no throughput (bench.team), and with
    # one, a changed password takes effect at once (the login cache is per worker).
    workers: int = 1
    allowed_hosts: str | None = None  # --allowed-hosts, needed when clients use another name

    @property
    def uri(self) -> str:
        client_host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{client_host}:{self.port}"

    @property
    def accounts(self) -> Accounts:
        return Accounts(self.uri)

    @property
    def auth_config(self) -> Path:
        return self.paths.mlflow_dir / "basic_auth.ini"

    @property
    def app_dir(self) -> Path:
        """Where the app's entry point is declared (a dist-info folder on PYTHONPATH)."""
        return self.paths.mlflow_dir / "app"

    @property
    def s3_credentials(self) -> Path:
        return self.paths.secrets_dir / "mlflow-s3.credentials"

    @property
    def log_file(self) -> Path:
        return self.paths.log("mlflow")

    @property
    def process(self) -> PidFile:
        return PidFile(self.paths.pid_file("mlflow"))

    @property
    def public(self) -> bool:
        return not is_loopback(self.host)

    def command(self, postgres: Postgres) -> list[str]:
        extra = ["--allowed-hosts", self.allowed_hosts] if self.allowed_hosts else []
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--app-name",
            APP_NAME,
            "--backend-store-uri",
            postgres.uri("mlflow"),
            "--serve-artifacts",
            "--artifacts-destination",
            ARTIFACTS,
            "--default-artifact-root",
            "mlflow-artifacts:/",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            *extra,
        ]

    def environment(self, postgres: Postgres, s3: S3Server, secrets: Secrets) -> dict[str, str]:
        return clean_environment(
            self.paths.mlflow_dir,
            PYTHONPATH=f"{self.app_dir}:{PROJECT_ROOT}",
            PGPASSFILE=str(postgres.pgpass),
            AWS_SHARED_CREDENTIALS_FILE=str(self.s3_credentials),
            AWS_CONFIG_FILE=str(self.paths.mlflow_dir / "no-aws-config"),
            AWS_DEFAULT_REGION=REGION,
            MLFLOW_S3_ENDPOINT_URL=s3.endpoint,
            MLFLOW_AUTH_CONFIG_PATH=str(self.auth_config),
            MLFLOW_FLASK_SERVER_SECRET_KEY=secrets["TEAM_FLASK_SECRET_KEY"],
            **SERVER_ENV,
        )

    def write_auth_config(self, postgres: Postgres, admin_password: str | None = None) -> None:
        """basic_auth.ini; `admin_password` only for the first start, which creates admin."""
        write_private(
            self.auth_config,
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = {postgres.uri('mlflow_auth')}\n"
            f"admin_username = {ADMIN}\n"
            + (f"admin_password = {admin_password}\n" if admin_password else "")
            + "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # Checking a password costs ~0.2 s of CPU (scrypt), on every request; a cached
            # check is the difference between 3 and 300 requests a second. A changed
            # password takes effect at once on the worker that changed it, and after up
            # to this many seconds on the others.
            f"auth_cache_ttl_seconds = {AUTH_CACHE_SECONDS}\n",
        )

    def pid(self) -> int | None:
        return self.process.live()

    def start(
        self,
        postgres: Postgres,
        s3: S3Server,
        secrets: Secrets,
        bootstrap: bool,
        timeout: float = 180,
    ) -> int:
        # The server always authenticates, so it may listen beyond loopback if asked to.
        check_bind_host(self.host, authenticated=True, setting="--host")
        self.paths.mlflow_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.paths.mlflow_dir.chmod(0o700)
        dist_info = self.app_dir / "fakenews_team_mlflow-1.0.dist-info"
        dist_info.mkdir(parents=True, exist_ok=True)
        (dist_info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: fakenews-team-mlflow\nVersion: 1.0\n"
        )
        (dist_info / "entry_points.txt").write_text(ENTRY_POINT)
        write_private(
            self.s3_credentials,
            "[default]\n"
            f"aws_access_key_id = {secrets['TEAM_S3_ACCESS_KEY']}\n"
            f"aws_secret_access_key = {secrets['TEAM_S3_SECRET_KEY']}\n",
        )
        self.write_auth_config(postgres, secrets["TEAM_ADMIN_PASSWORD"] if bootstrap else None)
        env = self.environment(postgres, s3, secrets)
        pid = spawn_detached(self.command(postgres), self.log_file, env, cwd=self.paths.mlflow_dir)
        self.process.write(pid)
        wait_until_ready(
            lambda: (
                our_server(self.process, self.port) is not None
                and server_healthy(self.uri, timeout=1.0)
            ),
            lambda: self.pid() is not None,
            "the MLflow server",
            self.log_file,
            timeout,
            stop=self.stop,
        )
        if bootstrap:
            try:
                self.check_admin(secrets["TEAM_ADMIN_PASSWORD"])
            finally:  # the password is in the user store now, or the start failed
                self.write_auth_config(postgres)
        return pid

    def stop(self) -> bool:
        return self.process.stop("the MLflow server")

    def check_admin(self, admin_password: str) -> None:
        if not self.accounts.can_log_in(ADMIN, admin_password):
            raise PipelineError(
                f"the MLflow server at {self.uri} refuses the admin password in "
                f"{self.paths.secrets_file} (or TEAM_ADMIN_PASSWORD); restore it, or rotate "
                "it with `python -m tools.team rotate admin` while the old one still works"
            )

    def write_client_envs(self, secrets: Secrets) -> None:
        """team/secrets/<user>.env: what a client sources to use the server as that user."""
        for user, secret in USERS.items():
            write_private(
                self.paths.client_env(user),
                env_file_text(
                    {
                        "MLFLOW_TRACKING_URI": self.uri,
                        "MLFLOW_TRACKING_USERNAME": user,
                        "MLFLOW_TRACKING_PASSWORD": secrets[secret],
                        # artifacts through the server, not presigned S3 URLs: clients never need
                        # to reach the S3 server, which listens on loopback only
                        "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
                    }
                ),
            )
