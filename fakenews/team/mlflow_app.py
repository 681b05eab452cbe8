"""The team server's MLflow app (`mlflow server --app-name fakenews-team`): basic auth, and
creating experiments and registered models refused (403) to all but admins and `creators`.

MLflow's basic auth checks a permission for every write to an existing experiment or
model, but none for creating one: its creator gets MANAGE on it. So a read-only user who
creates `fake-news-classifier` (or the pipeline's experiment) before the first admin run
owns it, and moves `champion` at will; or holds the promotion lock's next name. This app
is basic auth with one rule more, run after basic auth has checked the login: a POST that
creates an experiment, a registered model (prompts are registered models too) or MLflow's
demo data passes only for an admin or a member of the role `creators` (in the default
workspace). Admins grant it with `python -m tools.team grant-create <user>`, which
assigns the role through MLflow's own role API (`/api/3.0/mlflow/roles/assign`).

`mlflow server` finds an app by its `mlflow.app` entry point; the team server's start
writes one into team/mlflow/app/ and puts that folder and the project on PYTHONPATH
(fakenews.team.mlflow_auth), so nothing is installed into the environment.
"""

from __future__ import annotations

from flask import Flask, Response, g, request
from mlflow.server import app as mlflow_app
from mlflow.server.auth import create_app as basic_auth_app
from mlflow.server.auth import store
from mlflow.utils.workspace_utils import DEFAULT_WORKSPACE_NAME

from fakenews.team.accounts import CREATORS

# Route suffixes (after /api/<v>/ or /ajax-api/<v>/, and any static prefix) that create.
CREATING = (
    "/mlflow/experiments/create",
    "/mlflow/registered-models/create",
    "/mlflow/demo/generate",
)


def may_create(username: str | None) -> bool:
    """Admins, and users holding the role `creators` in the default workspace."""
    if not username:
        return False
    user = store.get_user(username)
    if user.is_admin:
        return True
    roles = store.list_user_roles(user.id)
    return any(r.name == CREATORS and r.workspace == DEFAULT_WORKSPACE_NAME for r in roles)


def refuse_creation() -> Response | None:
    """Flask before_request, after basic auth's (which refused anyone not logged in)."""
    if request.method != "POST" or not request.path.endswith(CREATING):
        return None
    if may_create(g.get("mlflow_authenticated_user")):  # set by basic auth's check
        return None
    # plain text, as basic auth's own 403: MLflow's client then names the endpoint refused
    return Response(
        f"Permission denied: only admins and the role {CREATORS!r} create experiments and "
        "registered models on this server (python -m tools.team grant-create)",
        status=403,
        mimetype="text/plain",
    )


def create_app(app: Flask = mlflow_app):
    """The app factory `mlflow server --app-name` calls (through uvicorn --factory)."""
    served = basic_auth_app(app)
    app.before_request(refuse_creation)  # appended: runs after basic auth's own check
    return served
