"""Where team mode keeps everything, its secrets, and what it remembers between starts.

team/
  state.json          the running server's host, the last start's ports: `up` resumes on them
  secrets/  (0700)    every file 0600:
    secrets.env       the generated (or TEAM_* environment) secrets, the source of truth
    admin.env         a client environment for the admin: `set -a; . team/secrets/admin.env`
    reader.env        the same for the read-only user
    dvc-s3.env        AWS_* keys of the S3 identity that may use the `dvc` bucket only
    pgpass, s3.json,  the server-side files PostgreSQL's client, SeaweedFS and the MLflow
    mlflow-s3.credentials  server's S3 client read
    rotation.pending  a new password on its way in (fakenews.team.rotation)
  postgres.location   where the database cluster lives: as root, under the postgres
                      user's home, which it can reach from any checkout (fakenews.team.postgres)
  postgres/ (0700, owned by postgres)   the cluster when not run as root (or made so earlier)
  s3/                 SeaweedFS objects and metadata
  s3-security/ (0700) SeaweedFS's working folder: security.toml, its CA and certificate,
                      new on every start (fakenews.team.s3_security)
  mlflow/ (0700)      basic_auth.ini, app/ (the server app's entry point)
  logs/               s3.log, mlflow.log (postgres.log lives with its cluster)
  run/                PID files
"""

from __future__ import annotations

import json
import os
import re
import secrets as random_secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakenews.data.io import atomic_path
from fakenews.data.params import PROJECT_ROOT
from fakenews.errors import PipelineError

DEFAULT_ROOT = PROJECT_ROOT / "team"
ADMIN, READER = "admin", "reader"

# The secrets, each taken from its environment variable when set, else from secrets.env,
# else generated on the first `up`. They reach servers through files and environments only,
# never a command line, where any local user could read them.
SECRET_NAMES = {
    "TEAM_ADMIN_PASSWORD": "MLflow user `admin`",
    "TEAM_READER_PASSWORD": "MLflow user `reader` (read-only)",
    "TEAM_DB_PASSWORD": "PostgreSQL role `mlflow`",
    "TEAM_S3_ACCESS_KEY": "S3 identity of the MLflow server (bucket mlflow)",
    "TEAM_S3_SECRET_KEY": "S3 identity of the MLflow server (bucket mlflow)",
    "TEAM_DVC_ACCESS_KEY": "S3 identity of DVC (bucket dvc)",
    "TEAM_DVC_SECRET_KEY": "S3 identity of DVC (bucket dvc)",
    "TEAM_FLASK_SECRET_KEY": "signs the MLflow UI's sessions",
}
# pgpass lines, SQL literals and INI files all stay unambiguous with these characters.
_SAFE = re.compile(r"[A-Za-z0-9._~+=-]{12,128}")


@dataclass(frozen=True)
class TeamPaths:
    root: Path

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def secrets_file(self) -> Path:
        return self.secrets_dir / "secrets.env"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def postgres_dir(self) -> Path:
        return self.root / "postgres"

    @property
    def s3_dir(self) -> Path:
        return self.root / "s3"

    @property
    def s3_security_dir(self) -> Path:
        return self.root / "s3-security"

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    def log(self, service: str) -> Path:
        return self.root / "logs" / f"{service}.log"

    def pid_file(self, service: str) -> Path:
        return self.run_dir / f"{service}.pid"

    def client_env(self, user: str) -> Path:
        return self.secrets_dir / f"{user}.env"


def team_paths(root: Path | str | None = None) -> TeamPaths:
    return TeamPaths(Path(root or DEFAULT_ROOT).expanduser().resolve())


def write_private(path: Path, text: str) -> None:
    """Write `path` atomically with mode 0600, so no other user can read it at any point."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.touch(mode=0o600)
        tmp.write_text(text, encoding="utf-8")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines; refuses a file that others may read, as ssh does with its keys."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PipelineError(
            f"{path} may be read by other users (mode {mode:o}); "
            f"run `chmod 600 {path}` and rotate the secrets it holds"
        )
    pairs = (
        line.split("=", 1)
        for line in path.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


def env_file_text(values: Mapping[str, Any]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


@dataclass(frozen=True)
class Secrets:
    """The team's secrets by TEAM_* name; repr shows none of them."""

    values: dict[str, str] = field(repr=False)

    def __getitem__(self, name: str) -> str:
        return self.values[name]

    def all(self) -> list[str]:
        return list(self.values.values())


def load_secrets(paths: TeamPaths, create: bool = False) -> Secrets:
    """Environment first, then secrets.env; with `create`, generate what is missing and save
    the result, so the next start uses the same values."""
    stored = read_env_file(paths.secrets_file) if paths.secrets_file.exists() else {}
    values = {}
    for name in SECRET_NAMES:
        value = os.environ.get(name) or stored.get(name)
        if value is None and not create:
            raise PipelineError(
                f"{name} is neither set nor in {paths.secrets_file}; "
                "run `python -m tools.team up` first"
            )
        if value is None:
            value = random_secrets.token_urlsafe(24)
        if not _SAFE.fullmatch(value):
            raise PipelineError(
                f"{name} ({SECRET_NAMES[name]}) must be 12 to 128 characters "
                "from A-Z a-z 0-9 . _ ~ + = -"
            )
        values[name] = value
    if create and values != stored:
        paths.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(paths.secrets_dir, 0o700)
        write_private(
            paths.secrets_file,
            "# team mode secrets: never commit, print or log them\n" + env_file_text(values),
        )
    return Secrets(values)


def load_state(paths: TeamPaths) -> dict[str, Any]:
    try:
        return json.loads(paths.state_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def save_state(paths: TeamPaths, state: Mapping[str, Any]) -> None:
    with atomic_path(paths.state_file) as tmp:
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
