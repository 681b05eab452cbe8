"""Reaching the tracking server: which URI and experiment, whether it answers and accepts
our login, and every refusal or lost connection turned into one line that says what to do
(it never shows a password, only which variable holds it)."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from urllib.parse import urlparse

import mlflow
import requests
from mlflow.exceptions import MlflowException

from fakenews.errors import PipelineError
from fakenews.tracking.recognition import server_healthy
from fakenews.tracking.server import server_config, tracking_settings


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else the server configured in params.yaml."""
    return os.environ.get("MLFLOW_TRACKING_URI") or server_config().uri


def experiment_name() -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or tracking_settings().experiment


def require_server(uri: str, timeout: float = 5.0) -> None:
    """Raise PipelineError unless the tracking server at an http(s) URI answers /health
    and, when it asks for a login, accepts MLFLOW_TRACKING_USERNAME/PASSWORD."""
    if urlparse(uri).scheme not in ("http", "https"):
        return
    gone = PipelineError(
        f"no MLflow tracking server answers at {uri} ({uri.rstrip('/')}/health). "
        "Start it with `make server` (or `python -m tools.tracking_server start`), "
        "or point MLFLOW_TRACKING_URI at a running server."
    )
    if not server_healthy(uri, timeout):
        raise gone
    # /health needs no login; a search does, so a missing or wrong one fails here, first
    user, password = (os.environ.get(f"MLFLOW_TRACKING_{k}") for k in ("USERNAME", "PASSWORD"))
    try:
        probe = requests.get(
            f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search",
            params={"max_results": 1},
            timeout=timeout,
            auth=(user, password) if user and password else None,
        )
    except requests.RequestException:
        raise gone from None
    if probe.status_code in (401, 403):
        raise _refusal(uri, probe.status_code, "/api/2.0/mlflow/experiments/search")
    if probe.status_code >= 500:  # e.g. its database is down: /health does not notice
        raise PipelineError(
            f"the MLflow server at {uri} answers but fails (HTTP {probe.status_code} on a "
            "search): its backend store may be down; see the server's log "
            "(`make team-status` names it for the team service)."
        )


def _refusal(uri: str, status: int, endpoint: str) -> PipelineError:
    """One line naming the URI and the credential that is missing or refused; it never
    shows the password, only which variable holds it."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    unset = [
        f"MLFLOW_TRACKING_{k}"
        for k in ("USERNAME", "PASSWORD")
        if not os.environ.get(f"MLFLOW_TRACKING_{k}")
    ]
    setup = "see docs/team.md (e.g. `set -a; . team/secrets/admin.env; set +a`)"
    if status == 401 and unset:
        return PipelineError(
            f"the MLflow server at {uri} requires a login (HTTP 401), and "
            f"{' and '.join(unset)} {'is' if len(unset) == 1 else 'are'} not set; {setup}"
        )
    if status == 401:
        return PipelineError(
            f"the MLflow server at {uri} refused the login of user {user!r} "
            "(HTTP 401): MLFLOW_TRACKING_PASSWORD is not that user's password, "
            f"or MLFLOW_TRACKING_USERNAME names no user; {setup}"
        )
    if endpoint.endswith("/create"):  # the team server lets admins and `creators` create
        return PipelineError(
            f"the MLflow server at {uri} refused user {user!r} access to {endpoint} "
            "(HTTP 403): creating experiments and registered models needs an admin or the "
            "role 'creators' (MLFLOW_TRACKING_USERNAME/PASSWORD; an admin grants it, docs/team.md)"
        )
    return PipelineError(
        f"the MLflow server at {uri} refused user {user!r} access to {endpoint} "
        "(HTTP 403): it may read but not change this; use a user with EDIT or "
        "MANAGE permission (MLFLOW_TRACKING_USERNAME/PASSWORD), or ask an admin"
    )


def _access_refused(err: BaseException, uri: str) -> PipelineError | None:
    """_refusal for an MLflow call the server answered 401 or 403."""
    status = {"UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403}.get(getattr(err, "error_code", ""))
    if status is None:
        return None
    endpoint = re.search(r"endpoint (\S+)", str(err))
    return _refusal(uri, status, endpoint.group(1) if endpoint else "this request")


def connect() -> str:
    """Check the server answers and point every mlflow client call at it; returns the URI.

    mlflow.set_tracking_uri is process-global and wins over the environment, so callers
    that load models or use the registry call this first rather than trusting leftovers.
    """
    uri = tracking_uri()
    require_server(uri)
    mlflow.set_tracking_uri(uri)
    return uri


@contextlib.contextmanager
def refusals_as_errors(uri: str) -> Iterator[None]:
    """A 401 or 403 from the server inside the block becomes a one-line PipelineError."""
    try:
        yield
    except MlflowException as err:
        refused = _access_refused(err, uri)
        if refused:
            raise refused from None
        raise


def server_lost(err: BaseException, uri: str, run_id: str | None = None) -> PipelineError | None:
    """A PipelineError when `err` is a request the server refused (401, 403), or a failed
    request to a server that no longer answers.

    One line that says what to do: the run cannot be ended without the server, so it is
    left RUNNING, and the next stage to start marks it FAILED (see end_stale_runs).
    """
    refused = _access_refused(err, uri)
    if refused:
        return refused
    if isinstance(err, (MlflowException, requests.RequestException, OSError)):
        try:
            require_server(uri, timeout=2.0)
        except PipelineError as lost:
            run = f" during run {run_id}" if run_id else ""
            after = (
                f" Then rerun the stage (e.g. `dvc repro`); it marks run {run_id} FAILED."
                if run_id
                else ""
            )
            return PipelineError(f"lost the connection to MLflow{run}: {lost}{after}")
    return None
