"""Password rotation that no crash can turn into a lockout.

A new password lives in two places: the server's user store and team/secrets/secrets.env.
Changing the server first and saving second, a failure in between leaves a password that
nobody knows; saving first, the old one still works but is forgotten. So a rotation is
written down before anything changes:

1. the new password is saved as pending (secrets/rotation.pending, 0600, fsynced);
2. the server takes it;
3. secrets.env and the client files take it, and the pending file goes.

Whatever stops it (SIGKILL included: each step is a fault point, fakenews.faults), the
next `up` or `rotate` settles it first: if the pending password logs in, the rotation is
finished (step 3); if the old one still does, it is dropped; either way the admin can log
in with the password in admin.env.
"""

from __future__ import annotations

import os
import secrets as random_secrets
from collections.abc import Callable
from pathlib import Path

from fakenews.errors import PipelineError
from fakenews.faults import fault_point
from fakenews.team.accounts import USERS
from fakenews.team.layout import (
    ADMIN,
    TeamPaths,
    env_file_text,
    load_secrets,
    read_env_file,
    write_private,
)
from fakenews.team.mlflow_auth import MlflowServer
from fakenews.tracking.recognition import server_healthy

PENDING_SAVED = "rotate.pending-saved"  # step 1 done, the server not changed yet
SERVER_CHANGED = "rotate.server-changed"  # step 2 done, secrets.env not changed yet
Say = Callable[[str], None]


def pending_file(paths: TeamPaths) -> Path:
    return paths.secrets_dir / "rotation.pending"


def rotate(mlflow: MlflowServer, user: str, say: Say = print) -> None:
    """A new random password for `user`, on the server and in secrets.env (module doc)."""
    paths = mlflow.paths
    if user not in USERS:
        raise PipelineError(f"can rotate {', '.join(USERS)}, not {user!r}")
    if os.environ.get(USERS[user]):
        raise PipelineError(
            f"{USERS[user]} is set in the environment, which wins over "
            f"{paths.secrets_file}: change it where it is set, then rotate by hand (docs/team.md)"
        )
    if not server_healthy(mlflow.uri):
        raise PipelineError(
            f"the team's MLflow server does not answer at {mlflow.uri}: `make team-up` first"
        )
    settle(mlflow, say)
    admin_password = load_secrets(paths)["TEAM_ADMIN_PASSWORD"]
    new = random_secrets.token_urlsafe(24)
    write_private(pending_file(paths), env_file_text({"user": user, "password": new}))
    fault_point(PENDING_SAVED)
    mlflow.accounts.set_password(user, new, (ADMIN, admin_password))
    fault_point(SERVER_CHANGED)
    _commit(mlflow, user, new)
    say(f"rotated the password of {user}: {paths.client_env(user)} has the new one")


def settle(mlflow: MlflowServer, say: Say = print) -> None:
    """Finish or roll back a rotation a failure interrupted; nothing when none was."""
    pending = pending_file(mlflow.paths)
    if not pending.exists():
        return
    saved = read_env_file(pending)
    user, new = saved.get("user"), saved.get("password")
    if user not in USERS or not new:
        raise PipelineError(f"{pending} is not a pending rotation; delete it")
    if mlflow.accounts.can_log_in(user, new):
        _commit(mlflow, user, new)
        say(f"finished an interrupted rotation: {user}'s password is the one it set")
    elif mlflow.accounts.can_log_in(user, load_secrets(mlflow.paths)[USERS[user]]):
        pending.unlink()
        say(f"rolled back an interrupted rotation: {user}'s password did not change")
    else:
        raise PipelineError(
            f"the server accepts neither {user}'s password in {mlflow.paths.secrets_file} nor "
            f"the one an interrupted rotation left in {pending}; as another admin, set it with "
            "MLflow's users/update-password"
        )


def _commit(mlflow: MlflowServer, user: str, new: str) -> None:
    """Step 3: secrets.env and the client files take the new password; the pending goes."""
    paths = mlflow.paths
    name = USERS[user]
    lines = paths.secrets_file.read_text(encoding="utf-8").splitlines(keepends=True)
    write_private(
        paths.secrets_file,
        "".join(f"{name}={new}\n" if line.startswith(f"{name}=") else line for line in lines),
    )
    mlflow.write_client_envs(load_secrets(paths))
    pending_file(paths).unlink(missing_ok=True)
