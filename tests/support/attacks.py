"""The outsider's attacks on a running team service, as data: each knock says where, what it
tried, what came back, and whether that was a refusal. tests/test_team_attacks.py asserts
every one is refused; `make bench-team` counts them (attacks tried / refused).

An outsider here is any local user or process without the team's files: it can open any
loopback port and any socket file the permissions allow, and knows the ports (ss -ltn).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
import requests
from urllib3.exceptions import InsecureRequestWarning

from fakenews.team.layout import READER, read_env_file
from fakenews.team.s3 import MLFLOW_BUCKET, S3Server
from fakenews.team.s3_security import certificate_chain
from fakenews.team.stack import Team

OBJECT = "artifacts/0/planted/MLmodel"  # a key the attacker would like to replace
FID = "1,01637037d6"  # a file id's shape on a volume server
TLS_REFUSAL = "HTTP request to an HTTPS server"  # what a TLS port says to plain HTTP
# gRPC methods worth calling on each server: list volumes, read or delete metadata...
GRPC_METHODS = {
    "master.grpc": "/master_pb.Seaweed/VolumeList",
    "volume.grpc": "/volume_server_pb.VolumeServer/VolumeServerStatus",
    "filer.grpc": "/filer_pb.SeaweedFiler/DeleteEntry",
    "s3.grpc": "/s3_pb.SeaweedS3/Configure",
    "admin.grpc": "/worker_pb.WorkerService/WorkerStream",
}


@dataclass(frozen=True)
class Knock:
    door: str
    attempt: str
    answer: str
    refused: bool

    def __str__(self) -> str:
        return f"{self.door}: {self.attempt} -> {self.answer}"


def _http(door: str, method: str, url: str, refusals: Callable[[int, str], bool], **kw) -> Knock:
    attempt = f"{method} {url.split('/', 3)[-1] if url.count('/') > 2 else '/'}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureRequestWarning)
            answer = requests.request(method, url, timeout=10, verify=False, **kw)
    except requests.RequestException as err:
        return Knock(door, attempt, f"no answer ({type(err).__name__})", True)
    text = answer.text[:80].replace("\n", " ")
    return Knock(
        door, attempt, f"HTTP {answer.status_code} {text}", refusals(answer.status_code, text)
    )


def _key_refused(status: int, text: str) -> bool:
    return status in (401, 403) or (status == 400 and TLS_REFUSAL in text)


def weed_http(s3: S3Server) -> list[Knock]:
    """Plain and TLS requests, without the team's certificate or a signed token, on weed's
    HTTP ports: write tokens, collection deletes, uploads, listings, reads and deletes."""
    knocks = []
    upload = {"files": {"file": ("MLmodel", b"flavors: {python_function: {loader_module: os}}")}}
    for listener in ("master", "filer", "admin"):
        base = f"127.0.0.1:{s3.ports[listener]}"
        for scheme in ("http", "https"):
            door = f"{listener} {scheme.upper()} {base}"
            for method, path, extra in (
                ("GET", "/dir/assign", {}),
                ("GET", f"/col/delete?collection={MLFLOW_BUCKET}", {}),
                ("GET", "/vol/grow?count=1", {}),
                ("GET", f"/buckets/{MLFLOW_BUCKET}/?pretty=y", {}),
                ("GET", f"/buckets/{MLFLOW_BUCKET}/{OBJECT}", {}),
                ("POST", f"/buckets/{MLFLOW_BUCKET}/{OBJECT}", upload),
                ("PUT", f"/buckets/{MLFLOW_BUCKET}/{OBJECT}", {"data": b"x"}),
                ("DELETE", f"/buckets/{MLFLOW_BUCKET}/{OBJECT}", {}),
            ):
                url = f"{scheme}://{base}{path}"
                knocks.append(_http(door, method, url, _key_refused, **extra))
    volume = s3.url("volume")
    forged = {"Authorization": f"Bearer {forged_jwt(FID)}"}
    for method, extra in (
        ("GET", {}),
        ("POST", upload),
        ("PUT", {"data": b"x"}),
        ("DELETE", {}),
        ("GET", {"headers": forged}),
        ("DELETE", {"headers": forged}),
    ):
        how = " (a JWT signed with a key of its own)" if "headers" in extra else ""
        knock = _http(f"volume HTTP {volume[7:]}", method, f"{volume}/{FID}", _key_refused, **extra)
        knocks.append(Knock(knock.door, knock.attempt + how, knock.answer, knock.refused))
    return knocks


def signed_jwt(fid: str, key: bytes) -> str:
    """An HS256 token for reading or writing `fid`, as weed's master and filer sign them."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"fid": fid, "exp": int(time.time()) + 60}).encode())
    signature = hmac.new(key, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(signature)}"


def forged_jwt(fid: str) -> str:
    """A token for `fid` signed with a key that is not the team's."""
    return signed_jwt(fid, secrets.token_bytes(32))


@contextlib.contextmanager
def _attacker_certificate(ca: bytes) -> Iterator[grpc.ChannelCredentials]:
    """TLS credentials with a client certificate of the attacker's own making (the team's CA
    certificate is no secret, so the attacker trusts the server; the server must not
    trust the attacker)."""
    _, cert, key = certificate_chain("attacker")
    yield grpc.ssl_channel_credentials(ca, key.encode(), cert.encode())


def grpc_call(target: str, method: str, credentials: grpc.ChannelCredentials | None) -> str:
    """The status of one unary call with an empty request: OK, or the gRPC code's name."""
    channel = (
        grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
    )
    try:
        channel.unary_unary(method)(b"", timeout=5)
        return "OK"
    except grpc.RpcError as err:
        return err.code().name
    finally:
        channel.close()


def weed_grpc(s3: S3Server, ca: bytes) -> list[Knock]:
    """gRPC calls on every weed gRPC port, TCP and /tmp socket: plain, and with TLS and a
    certificate of the attacker's own."""
    knocks = []
    with _attacker_certificate(ca) as own:
        for name, method in GRPC_METHODS.items():
            port = s3.ports[name]
            socket_path = f"/tmp/seaweedfs-{name.split('.')[0]}-grpc-{port}.sock"
            for target, credentials, how in (
                (f"127.0.0.1:{port}", None, "plain"),
                (f"127.0.0.1:{port}", own, "TLS, own certificate"),
                (f"unix:{socket_path}", None, "plain"),
            ):
                status = grpc_call(target, method, credentials)
                knocks.append(
                    Knock(f"{name} {target}", f"{method} ({how})", status, status == "UNAVAILABLE")
                )
    return knocks


def unix_http(path: Path, method: str, target: str, body: bytes = b"") -> str:
    """What a Unix socket answers to one HTTP request: its status line and the start of
    its body (or why nothing came back)."""
    request = (
        f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(10)
        try:
            client.connect(str(path))
            client.sendall(request)
            answer = client.recv(400).decode(errors="replace")
        except OSError as err:
            return f"no answer ({type(err).__name__})"
    head, _, rest = answer.partition("\r\n\r\n")
    return f"{head.splitlines()[0] if head else ''} {rest[:60]}".strip()


# Go's answer where no handler is registered: the filer's API is switched off (-disableHttp)
NO_HANDLER = "404 page not found"


def weed_unix_sockets(s3: S3Server) -> list[Knock]:
    """Raw HTTP on the filer's and the S3 gateway's Unix sockets in team/run/: the planted
    object read, replaced and deleted, the bucket listed."""
    knocks = []
    for name, prefix in (("filer.sock", "/buckets"), ("s3.sock", "")):
        path = s3.paths.run_dir / name
        for method, target, body in (
            ("GET", f"{prefix}/{MLFLOW_BUCKET}/", b""),
            ("GET", f"{prefix}/{MLFLOW_BUCKET}/{OBJECT}", b""),
            ("PUT", f"{prefix}/{MLFLOW_BUCKET}/{OBJECT}", b"replaced"),
            ("DELETE", f"{prefix}/{MLFLOW_BUCKET}/{OBJECT}", b""),
        ):
            answer = unix_http(path, method, target, body)
            refused = answer.startswith("no answer") or NO_HANDLER in answer
            refused = refused or any(f" {code} " in answer for code in ("401", "403"))
            knocks.append(Knock(f"unix socket {path}", f"{method} {target}", answer, refused))
    return knocks


def front_doors(team: Team) -> list[Knock]:
    """The authenticated doors without their keys: S3 anonymous, MLflow without or with a
    wrong login, PostgreSQL without or with a wrong password, and not in its own protocol."""
    s3 = team.s3.endpoint
    knocks = [
        _http(f"S3 {s3[7:]}", "GET", f"{s3}/{MLFLOW_BUCKET}", lambda s, _: s == 403),
        _http(f"S3 {s3[7:]}", "GET", f"{s3}/{MLFLOW_BUCKET}/{OBJECT}", lambda s, _: s == 403),
        _http(
            f"S3 {s3[7:]}",
            "PUT",
            f"{s3}/{MLFLOW_BUCKET}/{OBJECT}",
            lambda s, _: s == 403,
            data=b"x",
        ),
    ]
    search = f"{team.uri}/api/2.0/mlflow/experiments/search?max_results=5"
    for auth in (None, ("admin", secrets.token_urlsafe(16))):
        how = " (no login)" if auth is None else " (a guessed admin password)"
        knock = _http(f"MLflow {team.uri[7:]}", "GET", search, lambda s, _: s == 401, auth=auth)
        knocks.append(Knock(knock.door, knock.attempt + how, knock.answer, knock.refused))
    door = f"PostgreSQL 127.0.0.1:{team.postgres.port}"
    for password in ("", secrets.token_urlsafe(16)):
        how = "no password" if not password else "a guessed password"
        try:
            psycopg.connect(
                host="127.0.0.1",
                port=team.postgres.port,
                dbname="mlflow",
                user="mlflow",
                password=password,
                connect_timeout=10,
            ).close()
            knocks.append(Knock(door, f"log in as mlflow ({how})", "connected", False))
        except psycopg.OperationalError as err:
            knocks.append(
                Knock(door, f"log in as mlflow ({how})", str(err).splitlines()[0][:80], True)
            )
    with socket.create_connection(("127.0.0.1", team.postgres.port), timeout=10) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = raw.recv(200)
        except OSError:
            answer = b""
    knocks.append(Knock(door, "GET / (HTTP)", repr(answer[:60]), b"HTTP/1.1 200" not in answer))
    return knocks


def squatting(team: Team) -> list[Knock]:
    """`reader` takes a name first: a new experiment, the pipeline's names again, a
    registered model, a prompt (a registered model too), MLflow's demo data."""
    login = read_env_file(team.paths.client_env(READER))
    auth = (READER, login["MLFLOW_TRACKING_PASSWORD"])
    door = f"MLflow {team.uri[7:]} as {READER}"
    name = f"squat-{secrets.token_hex(4)}"
    knocks = []
    for path, body in (
        ("/api/2.0/mlflow/experiments/create", {"name": name}),
        ("/api/2.0/mlflow/registered-models/create", {"name": name}),
        ("/ajax-api/2.0/mlflow/registered-models/create", {"name": f"{name}.promotion-lock.1"}),
        (
            "/api/2.0/mlflow/registered-models/create",
            {
                "name": f"{name}-prompt",
                "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}],
            },
        ),
        ("/ajax-api/3.0/mlflow/demo/generate", {}),
    ):
        knocks.append(
            _http(door, "POST", f"{team.uri}{path}", lambda s, _: s == 403, json=body, auth=auth)
        )
    return knocks


def side_doors(s3: S3Server, ca: bytes) -> list[Knock]:
    """Every weed listener but the S3 gateway (`ca`: the team's CA certificate, which the
    attacker may know: it is no secret)."""
    return [*weed_http(s3), *weed_grpc(s3, ca), *weed_unix_sockets(s3)]


def every_attack(team: Team) -> list[Knock]:
    return [
        *side_doors(team.s3, team.s3.security.ca.read_bytes()),
        *front_doors(team),
        *squatting(team),
    ]
