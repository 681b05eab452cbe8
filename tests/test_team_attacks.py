"""Team mode attacked as an outsider on this machine would: every door of issue 27 tried,
and each refused, against the real PostgreSQL, SeaweedFS and MLflow on free loopback ports.

Each test is one door; the docstring says what it proves. Where a refusal could come from
the attack itself being broken, the test also knocks with the key (the team's certificate,
a JWT signed with the team's key, the admin's password) and gets in, so a refusal means
the key was missing, and only that.
"""

from __future__ import annotations

import json
import pwd
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import grpc
import psutil
import pytest
import requests

from fakenews.data.params import read_params
from fakenews.processes import free_port, listening_ports, port_in_use, stop_group
from fakenews.team import rotation, stack
from fakenews.team.layout import ADMIN, READER, load_secrets, read_env_file
from fakenews.team.s3 import MLFLOW_BUCKET
from fakenews.tracking.recognition import answers_as_mlflow
from tests.support import attacks
from tests.support.commands import PROJECT_ROOT, run, subprocess_env, write_params
from tests.support.sandbox import copy_project
from tests.support.strays import lookalike, mimic_mlflow
from tests.support.team import team_processes, team_service


def tool(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


# --- door 3: the local server is recognised by more than /health -----------------------------


@pytest.mark.slow  # a web server of its own
def test_a_stray_server_answering_like_mlflow_on_the_tracking_port_is_not_taken_for_it(tmp_path):
    """A web server that answers /health and the REST API exactly as MLflow does, on the
    local server's port: `start` refuses in one line naming the port and the stranger's PID,
    `status` says who holds the port, `stop` leaves it alone, and so does a PID file that
    names the stranger by its PID alone."""
    port = free_port()
    flags = ["--workdir", str(tmp_path), "--port", str(port)]
    with mimic_mlflow(port) as stray:
        assert answers_as_mlflow(f"http://127.0.0.1:{port}"), "the mimic does not fool answers"
        for pid_file in (None, f"{stray.pid}\n"):  # none, then the bare PID older versions wrote
            if pid_file:
                (tmp_path / "mlflow").mkdir(exist_ok=True)
                (tmp_path / "mlflow" / "server.pid").write_text(pid_file)
            start = tool("tools.tracking_server", "start", *flags)
            assert start.returncode == 2, start.stdout + start.stderr
            assert start.stderr.count("\n") == 1, start.stderr
            assert f"port {port} on 127.0.0.1 is taken by pid {stray.pid}" in start.stderr
            assert "not the MLflow server started from" in start.stderr
            status = tool("tools.tracking_server", "status", *flags)
            assert status.returncode == 1 and f"pid {stray.pid}" in status.stdout
            stop = tool("tools.tracking_server", "stop", *flags)
            assert stop.returncode == 0 and "not stopping it" in stop.stdout
            assert stray.poll() is None, "stop signalled the stranger"


# --- door 6c: PID files name a process, not a PID --------------------------------------------


def test_stop_and_down_never_signal_a_stranger_a_stale_pid_file_names(tmp_path):
    """A PID file outlives its server and the kernel reuses the PID: here a stranger with
    that PID whose command line even reads `mlflow server ... weed mini`. Neither the local
    server's `stop` nor the team's `down` signals it, whether the file holds the bare PID
    or an identity whose start time is not the stranger's."""
    from fakenews.team.layout import save_state, team_paths

    with lookalike("mlflow", "server", "weed", "mini") as stranger:
        proc = psutil.Process(stranger.pid)
        reused = json.dumps(
            {"pid": stranger.pid, "started": proc.create_time() - 7.0, "exe": proc.exe()}
        )
        paths = team_paths(tmp_path / "team")
        save_state(
            paths,
            {
                "host": "127.0.0.1",
                "mlflow_port": free_port(),
                "postgres_port": free_port(),
                "s3_ports": {"s3": free_port()},
            },
        )
        paths.run_dir.mkdir()
        port = free_port()
        for content in (f"{stranger.pid}\n", reused):
            (tmp_path / "mlflow").mkdir(exist_ok=True)
            for pid_file in (
                tmp_path / "mlflow" / "server.pid",
                paths.pid_file("mlflow"),
                paths.pid_file("s3"),
            ):
                pid_file.write_text(content)
            # a port of its own: a developer's server on the default port is not a stranger
            stop = tool(
                "tools.tracking_server", "stop", "--workdir", str(tmp_path), "--port", str(port)
            )
            assert stop.returncode == 0 and "no MLflow server is running" in stop.stdout
            down = tool("tools.team", "down", "--dir", str(paths.root))
            assert down.returncode == 0, down.stderr
            assert "MLflow:     was not running" in down.stdout
            assert "S3:         was not running" in down.stdout
            assert stranger.poll() is None, "a stale PID file got a stranger signalled"


# --- the service, as a teammate starts it: `make team-up` in a clone under a private home ---

# What the caller's environment may hold: none of it may reach a server's.
CANARIES = {
    "MLFLOW_TRACKING_USERNAME": "admin",
    "MLFLOW_TRACKING_PASSWORD": "canary-tracking-password-7c1f",
    "AWS_ACCESS_KEY_ID": "canary-aws-key-id-51ad",
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-9e02",
    "PGPASSWORD": "canary-pg-password-33b7",
    "GITHUB_TOKEN": "canary-github-token-0a4c",
}


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A checkout of the project in a home only its owner may enter (0700, as home folders
    and `mktemp -d` are): the postgres user cannot walk into it."""
    home = tmp_path_factory.mktemp("home")
    home.chmod(0o700)
    repo = copy_project(home / "projects")
    (repo / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return repo


@pytest.fixture(scope="module")
def team(clone):
    """`make team-up` in the clone, from a shell that holds an admin's login and other
    secrets of its own; stopped at the end with nothing left behind."""

    def make_team_up(root: Path) -> stack.Team:
        env = {**subprocess_env(), **CANARIES}
        run(["make", "team-up", f"TEAM_ARGS=--port {free_port()}"], clone, env)
        return stack.current(root)

    with team_service(clone / "team", make_team_up) as started:
        yield started


def team_tool(team: stack.Team, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`python -m tools.team <args> --dir <the team's folder>`, from the clone."""
    return run(
        [sys.executable, "-m", "tools.team", *args, "--dir", str(team.paths.root)],
        team.paths.root.parent,
        {**subprocess_env(), **env},
        check=False,
    )


def admin_login(team: stack.Team) -> tuple[str, str]:
    return ADMIN, read_env_file(team.paths.client_env(ADMIN))["MLFLOW_TRACKING_PASSWORD"]


# --- `ss -ltn` after `up` ---------------------------------------------------------------------


@pytest.mark.slow
def test_ss_after_up_shows_only_the_expected_sockets_each_on_loopback(team):
    """Every TCP socket a process of the service listens on, as `ss -ltnp` lists them, is
    one of the ports state.json records, on 127.0.0.1: no wildcard, no stray listener."""
    ours = {proc.pid for proc in team_processes(team)}
    listening = set()
    for line in run(["ss", "-ltnpH"], PROJECT_ROOT).stdout.splitlines():
        local, users = line.split()[3], line.split("users:")[-1]
        pids = {int(pid) for pid in re.findall(r"pid=(\d+)", users)}
        if pids & ours:
            host, _, port = local.rpartition(":")
            listening.add((host.strip("[]"), int(port)))
    assert listening == {("127.0.0.1", port) for port in team.ports()}


# --- door 4: servers start from an environment built from nothing --------------------------


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


@pytest.mark.slow
def test_no_team_process_environment_holds_a_secret_it_does_not_use(team):
    """/proc/PID/environ of every process of the service (postmaster and backends, weed,
    `mlflow server` and its uvicorn worker): none holds anything of the shell that ran
    `make team-up` (an admin's login, AWS keys, a token), and the only team secret in any
    is the MLflow server's own session key, which it uses. The others reach their servers
    as 0600 files."""
    weed_keys = re.findall(r'key = "([0-9a-f]{64})"', team.s3.security.config.read_text())
    assert len(weed_keys) == 4
    team_secrets = load_secrets(team.paths).values
    mlflow = {team.mlflow.pid(), *(c.pid for c in psutil.Process(team.mlflow.pid()).children())}
    seen = set()
    for proc in team_processes(team):
        env = " ".join(f"{k}={v}" for k, v in environ(proc.pid).items())
        seen.add(proc.name())
        assert not [n for n, v in CANARIES.items() if v in env and n != "MLFLOW_TRACKING_USERNAME"]
        allowed = {"TEAM_FLASK_SECRET_KEY"} if proc.pid in mlflow else set()
        held = {name for name, value in team_secrets.items() if value in env} - allowed
        assert not held, f"{proc.name()} (pid {proc.pid}) holds {held}"
        assert not [key for key in weed_keys if key in env], proc.name()
    assert {"postgres", "weed"} <= seen and len(mlflow) >= 2, seen  # all were looked at


# --- door 1: SeaweedFS answers no request without the team's keys but on its S3 port -------


@pytest.mark.slow
def test_weed_side_doors_refuse_every_request_without_the_teams_keys(team):
    """Unsigned requests on every weed listener but the S3 gateway: uploads, reads,
    listings and deletes on the filer, write tokens and collection deletes on the master,
    object reads, writes and deletes on the volume (unsigned, and with a JWT of the
    attacker's own), gRPC calls on every gRPC port and /tmp socket (plain, and with a
    certificate of the attacker's own), raw HTTP on the Unix sockets: every one refused, as
    are the front doors without their keys, and an object planted through the S3 front door
    is still there, unchanged. Knocking
    with the team's certificate or a token signed with the team's key gets in, so the
    refusals are the missing key's. The volume's /status and /healthz answer anyone, and
    name no object."""
    secrets = load_secrets(team.paths)
    planted = b"flavors: {python_function: {loader_module: fakenews.tracking.pyfunc}}\n"
    mlflow_s3 = team.s3.client(secrets, "TEAM_S3")
    mlflow_s3.put_object(Bucket=MLFLOW_BUCKET, Key=attacks.OBJECT, Body=planted)

    knocks = attacks.side_doors(team.s3, team.s3.security.ca.read_bytes())
    assert len(knocks) > 60
    assert [str(k) for k in knocks if not k.refused] == []
    # and the three front doors, without their keys: S3, MLflow, PostgreSQL (and not in its
    # own protocol)
    assert [str(k) for k in attacks.front_doors(team) if not k.refused] == []
    body = mlflow_s3.get_object(Bucket=MLFLOW_BUCKET, Key=attacks.OBJECT)["Body"].read()
    assert body == planted

    # with the keys: the certificate passes TLS, a token signed with the team's key the JWT check
    security = team.s3.security
    own = grpc.ssl_channel_credentials(
        security.ca.read_bytes(), security.key.read_bytes(), security.certificate.read_bytes()
    )
    for name, method in attacks.GRPC_METHODS.items():
        if name != "filer.grpc":  # its method deletes
            status = attacks.grpc_call(f"127.0.0.1:{team.s3.ports[name]}", method, own)
            assert status != "UNAVAILABLE", (name, status)
    healthz = requests.get(
        f"https://127.0.0.1:{team.s3.ports['master']}/healthz",
        cert=(str(security.certificate), str(security.key)),
        verify=str(security.ca),
        timeout=10,
    )
    assert healthz.status_code == 200
    keys = dict(re.findall(r'\[(jwt[^\]]*)\]\nkey = "([0-9a-f]+)"', security.config.read_text()))
    nowhere = "999,01637037d6"  # a file id on a volume that does not exist: nothing to harm
    for method, key in (("GET", "jwt.signing.read"), ("DELETE", "jwt.signing")):
        token = attacks.signed_jwt(nowhere, keys[key].encode())
        signed = requests.request(
            method,
            f"{team.s3.url('volume')}/{nowhere}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert signed.status_code == 404, (method, signed.status_code)  # past the check
    status = requests.get(f"{team.s3.url('volume')}/status", timeout=10)
    assert status.status_code == 200 and "planted" not in status.text


# --- door 2: only admins (and `creators`) create names ---------------------------------------


@pytest.mark.slow
def test_the_reader_cannot_take_a_name_first_and_the_pipelines_names_are_admins(team):
    """`reader` creating an experiment, a registered model, a promotion lock, a prompt or
    MLflow's demo data: 403 each. `up` created the pipeline's experiment and registered
    model as admin, and `reader` holds nothing on them beyond READ. A user an admin grants
    the right (`tools.team grant-create`) may create, until it is revoked."""
    knocks = attacks.squatting(team)
    assert [str(k) for k in knocks if not k.refused] == []
    admin = admin_login(team)
    api = f"{team.uri}/api/2.0/mlflow"
    experiment = requests.get(
        f"{api}/experiments/get-by-name",
        params={"experiment_name": "fake-news"},
        auth=admin,
        timeout=30,
    ).json()["experiment"]
    model = requests.get(
        f"{api}/registered-models/get",
        params={"name": "fake-news-classifier"},
        auth=admin,
        timeout=30,
    )
    assert model.status_code == 200
    for resource_type, resource_id in (
        ("experiment", experiment["experiment_id"]),
        ("registered_model", "fake-news-classifier"),
    ):
        held = requests.get(
            f"{team.uri}/api/3.0/mlflow/users/permissions/get",
            params={"username": READER, "resource_type": resource_type, "resource_id": resource_id},
            auth=admin,
            timeout=30,
        ).json()
        assert held["permission"] == "READ", (resource_type, held)

    alice = ("alice", "alice-password-" + "x" * 12)
    user = {"username": alice[0], "password": alice[1]}
    created = requests.post(f"{api}/users/create", json=user, auth=admin, timeout=30)
    assert created.status_code == 200, created.text

    def alice_creates(name: str) -> int:
        return requests.post(
            f"{api}/experiments/create", json={"name": name}, auth=alice, timeout=30
        ).status_code

    assert alice_creates("alice-before") == 403
    granted = team_tool(team, "grant-create", "alice")
    assert granted.returncode == 0 and "alice may now create" in granted.stdout, granted.stderr
    assert alice_creates("alice-granted") == 200
    revoked = team_tool(team, "grant-create", "alice", "--revoke")
    assert revoked.returncode == 0, revoked.stderr
    assert alice_creates("alice-revoked") == 403


# --- door 7: team-up in a clone under a private home -----------------------------------------


@pytest.mark.slow
def test_team_up_works_in_a_clone_the_postgres_user_cannot_enter(team, clone):
    """The fixture ran `make team-up` in a clone under a 0700 home, which the postgres user
    cannot enter; the cluster went to the postgres user's home, and `make team-status`
    reports all three services running."""
    assert stat.S_IMODE(clone.parents[1].stat().st_mode) == 0o700
    enters = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(clone)])
    assert enters.returncode != 0, "the postgres user can enter the clone: no private home"
    cluster = team.postgres.cluster_dir
    assert not cluster.is_relative_to(clone.parents[1])
    assert cluster.stat().st_uid == pwd.getpwnam("postgres").pw_uid
    status = run(["make", "team-status"], clone, check=False)
    assert status.returncode == 0, status.stdout + status.stderr


# --- door 5: a rotation stopped halfway --------------------------------------------------------


@pytest.mark.slow
def test_a_rotation_killed_halfway_leaves_the_admin_able_to_log_in(team):
    """`rotate admin` SIGKILLed after the server took the new password but before it was
    saved in secrets.env; `up` then finishes it. SIGKILLed after saving the pending password
    but before the server changed; the next `rotate` rolls that back first. Each time the
    admin logs in with the password in admin.env, which equals secrets.env's."""
    pending = rotation.pending_file(team.paths)
    for point, settle_with, settled in (
        (rotation.SERVER_CHANGED, ("up",), "finished an interrupted rotation"),
        (rotation.PENDING_SAVED, ("rotate", "admin"), "rolled back an interrupted rotation"),
    ):
        before = admin_login(team)
        killed = team_tool(team, "rotate", "admin", FAKENEWS_FAULT_POINT=point)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert pending.exists() and admin_login(team) == before
        settling = team_tool(team, *settle_with)
        assert settling.returncode == 0, settling.stderr
        assert settled in settling.stdout
        after = admin_login(team)
        assert team.mlflow.accounts.can_log_in(*after), point
        assert load_secrets(team.paths)["TEAM_ADMIN_PASSWORD"] == after[1]
        assert not pending.exists()
        assert not team.mlflow.accounts.can_log_in(*before)  # both rotations did rotate


# --- door 6b: a public host holds for one start --------------------------------------------


def mlflow_listeners(team: stack.Team) -> set[tuple[str, int]]:
    procs = [psutil.Process(team.mlflow.pid())]
    procs += procs[0].children(recursive=True)
    return {
        (c.laddr.ip, c.laddr.port)
        for proc in procs
        for c in proc.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN
    }


@pytest.mark.slow
def test_a_public_host_holds_for_one_start_and_warns_with_the_uri(team):
    """`up --host 0.0.0.0` listens on every interface with a warning line naming the URI
    other machines use; the next start without --host is back on 127.0.0.1, silently; and
    asking for another host while the server runs is refused in one line."""
    port = team.mlflow.port
    team.mlflow.stop()
    public = team_tool(team, "up", "--host", "0.0.0.0")
    assert public.returncode == 0, public.stderr
    warnings = [line for line in public.stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"http://{socket.gethostname()}:{port}" in warnings[0]
    current = stack.current(team.paths.root)
    assert mlflow_listeners(current) == {("0.0.0.0", port)}

    again = team_tool(team, "up", "--host", "127.0.0.1")
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert "already runs on 0.0.0.0" in again.stderr

    current.mlflow.stop()
    private = team_tool(team, "up")
    assert private.returncode == 0 and "warning" not in private.stdout
    assert mlflow_listeners(stack.current(team.paths.root)) == {("127.0.0.1", port)}


# --- door 6a: multi_worker training's gRPC server stays on loopback --------------------------


def own_network_addresses() -> list[str]:
    """This machine's addresses other than loopback: where an outsider would knock."""
    return [
        address.address
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family == socket.AF_INET and not address.address.startswith("127.")
    ]


@pytest.mark.slow  # TensorFlow starts
def test_a_multi_worker_trainer_on_a_loopback_cluster_listens_on_loopback_only(tmp_path):
    """Worker 0 of a two-worker cluster on 127.0.0.1, as a stage starts it (the other worker
    never comes, so it waits with its gRPC server up): TensorFlow would listen on every
    interface; this one listens on loopback alone, and knocking on the port at the
    machine's own network address finds nothing."""
    params = read_params(PROJECT_ROOT / "params.yaml")
    params["train_lstm"]["distribution"] = "multi_worker"
    params_file = write_params(tmp_path / "params.yaml", params)
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    env = {
        **subprocess_env(),
        "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),  # builds the bind library afresh
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "stages.train_lstm", "--params", str(params_file)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        process, deadline = psutil.Process(worker.pid), time.monotonic() + 180
        while ports[0] not in listening_ports(process):
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the worker never started its gRPC server"
            time.sleep(0.5)
        listeners = {
            c.laddr.ip for c in process.net_connections("tcp") if c.status == psutil.CONN_LISTEN
        }
        assert listeners <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, listeners
        assert environ(worker.pid)["LD_PRELOAD"].endswith(".so")  # it re-executed itself
        for address in own_network_addresses():
            assert not port_in_use(address, ports[0]), f"reachable at {address}:{ports[0]}"
    finally:
        stop_group(worker.pid, "the multi_worker trainer", grace=5)
