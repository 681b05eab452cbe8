"""The team's PostgreSQL server: a cluster of its own, run by the `postgres` user.

initdb and pg_ctl refuse to run as root, so as root every command runs through
`runuser -u postgres`; as any other user they run as that user. The server listens on
127.0.0.1 (SCRAM passwords only) and on a Unix socket inside the cluster's folder (not
/var/run/postgresql, and reachable by the postgres user alone), so it needs nothing from
the system's own PostgreSQL setup.

Where the cluster lives: the postgres user must reach it, and a checkout in a private
home (any folder above it 0700, as home folders and `mktemp -d` are) is out of its reach.
So as root a new cluster goes to the postgres user's own home,
`~postgres/fakenews-team/<checkout>-<random>/`, and `team/postgres.location` says where;
as any other user (who runs the server as themself) it stays in `team/postgres/`, as does
a cluster an earlier version made there.

Every command starts from an empty environment (fakenews.processes.clean_environment):
the postmaster would otherwise inherit the caller's, and an admin who sourced admin.env
would hand MLFLOW_TRACKING_PASSWORD to the postgres user, who may read
/proc/<postmaster>/environ.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fakenews.errors import PipelineError
from fakenews.processes import clean_environment
from fakenews.team.layout import TeamPaths, write_private


def _server_binaries() -> Path:
    """TEAM_PG_BIN, else the newest Debian/Ubuntu server install (postgresql-<version>)."""
    if os.environ.get("TEAM_PG_BIN"):
        return Path(os.environ["TEAM_PG_BIN"])
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _server_binaries()
ROLE = "mlflow"
DATABASES = ("mlflow", "mlflow_auth")  # runs and registry; MLflow's users and permissions


def _runuser() -> str:
    """runuser lives in /usr/sbin, which a non-login root shell may not have on PATH."""
    return shutil.which("runuser") or next(
        (path for path in ("/usr/sbin/runuser", "/sbin/runuser") if Path(path).is_file()), "runuser"
    )


def _as_owner(command: list[str]) -> list[str]:
    return [_runuser(), "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _environment() -> dict[str, str]:
    """Nothing of ours: runuser sets HOME, USER and SHELL to the postgres user's."""
    return clean_environment(pwd.getpwuid(os.geteuid()).pw_dir)


def _run(
    command: list[str], what: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        _as_owner(command),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_environment(),
    )
    if proc.returncode != 0:
        raise PipelineError(
            f"{what} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-800:]}"
        )
    return proc


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677).

    The role gets this instead of the password itself, so the password is in no SQL
    statement the server could echo into its log.
    """
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt)}$"
        f"{b64(hashlib.sha256(client_key).digest())}:{b64(server_key)}"
    )


def _postgres_home() -> Path:
    try:
        return Path(pwd.getpwnam("postgres").pw_dir)
    except KeyError:
        raise PipelineError(
            "there is no `postgres` user to run the team's PostgreSQL as root; install "
            "the server package (Debian: apt-get install postgresql-15), which creates it"
        ) from None


@dataclass(frozen=True)
class Postgres:
    paths: TeamPaths
    port: int

    @property
    def location_file(self) -> Path:
        return self.paths.root / "postgres.location"

    @property
    def cluster_dir(self) -> Path:
        """team/postgres.location's folder when it names one, else team/postgres."""
        try:
            return Path(self.location_file.read_text(encoding="utf-8").strip())
        except FileNotFoundError:
            return self.paths.postgres_dir

    @property
    def data_dir(self) -> Path:
        return self.cluster_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.cluster_dir / "socket"

    @property
    def pgpass(self) -> Path:
        return self.paths.secrets_dir / "pgpass"

    @property
    def log_file(self) -> Path:
        """With the cluster: the postgres user writes it, and may not reach team/logs."""
        return self.cluster_dir / "postgres.log"

    def uri(self, database: str) -> str:
        """A SQLAlchemy URI without the password: libpq reads it from PGPASSFILE."""
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{database}"

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        """A new cluster: local connections by peer, TCP ones by SCRAM password only."""
        if not (PG_BIN / "initdb").exists():
            raise PipelineError(
                f"no PostgreSQL server binaries in {PG_BIN}: install them "
                "(Debian: apt-get install postgresql-15) or point TEAM_PG_BIN "
                "at the folder holding initdb and pg_ctl"
            )
        if os.geteuid() == 0 and not (self.paths.postgres_dir / "data").exists():
            self._place_in_postgres_home()
        self._make_dirs()
        _run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
            ],
            "initdb",
        )

    def _place_in_postgres_home(self) -> None:
        """Choose a folder for a new cluster under the postgres user's home, where it can
        reach it however private the checkout is, and record the choice."""
        parent = _postgres_home() / "fakenews-team"
        name = f"{self.paths.root.parent.name or 'team'}-{secrets.token_hex(4)}"
        _run(["mkdir", "-p", "-m", "700", str(parent)], f"creating {parent}")
        self.location_file.parent.mkdir(parents=True, exist_ok=True)
        self.location_file.write_text(f"{parent / name}\n", encoding="utf-8")

    def _make_dirs(self) -> None:
        for folder in (self.cluster_dir, self.data_dir, self.socket_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.log_file.touch(mode=0o600)
        if os.geteuid() == 0:
            for path in (self.cluster_dir, self.data_dir, self.socket_dir, self.log_file):
                shutil.chown(path, "postgres", "postgres")
            # the postgres user must be able to walk down to its folder
            probe = subprocess.run(
                _as_owner(["test", "-x", str(self.cluster_dir)]), env=_environment()
            )
            if probe.returncode != 0:
                raise PipelineError(
                    f"the postgres user cannot reach {self.cluster_dir}: a folder above it "
                    "is private to its owner; move the cluster to the postgres user's home "
                    f"(delete {self.cluster_dir} if it holds nothing and run `up` again)"
                )

    def delete_cluster(self) -> None:
        """Remove the cluster's folder and location record (the server must be stopped)."""
        shutil.rmtree(self.cluster_dir, ignore_errors=True)
        self.location_file.unlink(missing_ok=True)

    def running(self) -> bool:
        if not self.initialized():
            return False
        status = subprocess.run(
            _as_owner([str(PG_BIN / "pg_ctl"), "status", "-D", str(self.data_dir)]),
            capture_output=True,
            env=_environment(),
        )
        return status.returncode == 0

    def pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.socket_dir}"
        )
        _run(
            [
                str(PG_BIN / "pg_ctl"),
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "60",
                "-o",
                options,
            ],
            f"starting PostgreSQL (log: {self.log_file})",
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast` rolls back open transactions and stops; `immediate` is a crash (tests, bench)."""
        _run(
            [
                str(PG_BIN / "pg_ctl"),
                "stop",
                "-D",
                str(self.data_dir),
                "-m",
                mode,
                "-w",
                "-t",
                "60",
            ],
            "stopping PostgreSQL",
        )

    def ensure_databases(self, password: str) -> None:
        """The role and both databases, created when missing; the role's password is (re)set
        every start, so changing TEAM_DB_PASSWORD and restarting rotates it."""
        create = "".join(
            f"SELECT 'CREATE DATABASE {db} OWNER {ROLE}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{db}')\\gexec\n"
            for db in DATABASES
        )
        sql = (
            f"SELECT 'CREATE ROLE {ROLE} LOGIN' WHERE NOT EXISTS "
            f"(SELECT FROM pg_roles WHERE rolname = '{ROLE}')\\gexec\n"
            f"ALTER ROLE {ROLE} PASSWORD '{scram_verifier(password)}';\n{create}"
        )
        _run(
            [
                str(PG_BIN / "psql"),
                "-qX",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ],
            "creating the mlflow role and databases",
            stdin=sql,
        )
        # libpq's password file: host:port:database:user:password; any port, as it may change
        write_private(self.pgpass, f"127.0.0.1:*:*:{ROLE}:{password}\n")
