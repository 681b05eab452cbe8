"""The team's MLflow server: basic-auth, PostgreSQL stores, artifacts proxied to S3.

`default_permission = READ`: every user may read every experiment and registered model,
and may write only what it created or was granted (EDIT/MANAGE); admins may do anything.
So `reader` needs no grants to read runs and load models, and gets 403 when it logs a run
or moves an alias of the team's model. (Like every basic-auth user it may still create
experiments and models of its own: MLflow checks no permission for creating.)

The server starts with a minimal environment, not ours: it holds the S3 keys and finds
the database password in a 0600 pgpass file, and nothing secret is on its command line.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import requests

from fakenews.errors import PipelineError
from fakenews.pidfile import PidFile
from fakenews.processes import (
    check_bind_host,
    spawn_detached,
    wait_until_ready,
)
from fakenews.team.layout import (
    ADMIN,
    READER,
    Secrets,
    TeamPaths,
    env_file_text,
    write_private,
)
from fakenews.team.postgres import Postgres
from fakenews.team.s3 import ARTIFACTS, REGION, S3Server
from fakenews.tracking.recognition import server_healthy
from fakenews.tracking.server import SERVER_ENV

USERS = {ADMIN: "TEAM_ADMIN_PASSWORD", READER: "TEAM_READER_PASSWORD"}
AUTH_CACHE_SECONDS = 60


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
    def auth_config(self) -> Path:
        return self.paths.mlflow_dir / "basic_auth.ini"

    @property
    def log_file(self) -> Path:
        return self.paths.log("mlflow")

    @property
    def process(self) -> PidFile:
        return PidFile(self.paths.pid_file("mlflow"))

    def command(self, postgres: Postgres) -> list[str]:
        extra = ["--allowed-hosts", self.allowed_hosts] if self.allowed_hosts else []
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--app-name",
            "basic-auth",
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

    def environment(
        self, postgres: Postgres, s3: S3Server, secrets: Secrets, bootstrap: bool
    ) -> dict[str, str]:
        env = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "HOME": str(self.paths.mlflow_dir),
            "LANG": "C.UTF-8",
            "PGPASSFILE": str(postgres.pgpass),
            "AWS_ACCESS_KEY_ID": secrets["TEAM_S3_ACCESS_KEY"],
            "AWS_SECRET_ACCESS_KEY": secrets["TEAM_S3_SECRET_KEY"],
            "AWS_DEFAULT_REGION": REGION,
            "MLFLOW_S3_ENDPOINT_URL": s3.endpoint,
            "MLFLOW_AUTH_CONFIG_PATH": str(self.auth_config),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets["TEAM_FLASK_SECRET_KEY"],
            **SERVER_ENV,
        }
        if bootstrap:  # read only while the user store is empty: the first start
            env["MLFLOW_AUTH_ADMIN_PASSWORD"] = secrets["TEAM_ADMIN_PASSWORD"]
        return env

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
        self.paths.mlflow_dir.mkdir(parents=True, exist_ok=True)
        self.auth_config.write_text(
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = {postgres.uri('mlflow_auth')}\n"
            f"admin_username = {ADMIN}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # Checking a password costs ~0.2 s of CPU (scrypt), on every request; a cached
            # check is the difference between 3 and 300 requests a second. A changed
            # password takes effect at once on the worker that changed it, and after up
            # to this many seconds on the others.
            f"auth_cache_ttl_seconds = {AUTH_CACHE_SECONDS}\n"
        )
        env = self.environment(postgres, s3, secrets, bootstrap)
        pid = spawn_detached(self.command(postgres), self.log_file, env, cwd=self.paths.mlflow_dir)
        self.process.write(pid)
        wait_until_ready(
            lambda: server_healthy(self.uri, timeout=1.0),
            lambda: self.pid() is not None,
            "the MLflow server",
            self.log_file,
            timeout,
            stop=self.stop,
        )
        return pid

    def stop(self) -> bool:
        return self.process.stop("the MLflow server")

    # ---- users ----------------------------------------------------------------------------

    def _api(self, method: str, path: str, auth: tuple[str, str], **kwargs) -> requests.Response:
        return requests.request(
            method, f"{self.uri}/api/2.0/mlflow/users/{path}", auth=auth, timeout=30, **kwargs
        )

    def can_log_in(self, user: str, password: str) -> bool:
        return self._api("GET", "current", (user, password)).status_code == 200

    def ensure_users(self, secrets: Secrets) -> None:
        """Check the admin's password, create `reader` when missing and make its password
        the one in the secrets (so a changed TEAM_READER_PASSWORD takes effect on `up`)."""
        admin = (ADMIN, secrets["TEAM_ADMIN_PASSWORD"])
        if not self.can_log_in(*admin):
            raise PipelineError(
                f"the MLflow server at {self.uri} refuses the admin password in "
                f"{self.paths.secrets_file} (or TEAM_ADMIN_PASSWORD); restore it, or rotate "
                "it with `python -m tools.team rotate admin` while the old one still works"
            )
        reader_password = secrets["TEAM_READER_PASSWORD"]
        if self._api("GET", "get", admin, params={"username": READER}).status_code != 200:
            self._checked(
                self._api(
                    "POST", "create", admin, json={"username": READER, "password": reader_password}
                ),
                f"creating user {READER}",
            )
        elif not self.can_log_in(READER, reader_password):
            self.set_password(READER, reader_password, admin)

    def set_password(self, user: str, password: str, admin: tuple[str, str]) -> None:
        body = {"username": user, "password": password}
        if user == admin[0]:
            body["current_password"] = admin[1]  # MLflow asks for it when you change your own
        self._checked(
            self._api("PATCH", "update-password", admin, json=body),
            f"changing the password of {user}",
        )

    @staticmethod
    def _checked(response: requests.Response, what: str) -> None:
        if response.status_code != 200:  # the body names the problem, never the password
            raise PipelineError(f"{what} failed: HTTP {response.status_code} {response.text[:200]}")

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
