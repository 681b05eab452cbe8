"""Manage the local MLflow tracking server: start, stop, status and url.

    python -m tools.tracking_server start     # idempotent; waits until /health answers
    python -m tools.tracking_server status    # exit 0 when healthy, 1 otherwise
    python -m tools.tracking_server stop
    python -m tools.tracking_server url       # the tracking URI clients should use

The server itself (settings, start and stop) is fakenews.tracking.server.
"""

from __future__ import annotations

import argparse
import os
import sys

from fakenews.cli import Parser
from fakenews.data.params import DEFAULT_PARAMS, PROJECT_ROOT
from fakenews.data.tool_sections import TrackingParams
from fakenews.errors import cli_errors
from fakenews.tracking.recognition import server_healthy
from fakenews.tracking.server import (
    ServerHandle,
    server_config,
    server_status,
    start_server,
    stop_server,
)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--workdir",
        default=str(PROJECT_ROOT),
        help="base for relative paths and for mlflow/server.{pid,log} (default: the project root)",
    )
    common.add_argument("--port", type=int, help="port (default: tracking.port or 5000)")
    common.add_argument(
        "--backend-store",
        help="SQLite file for runs (default: tracking.backend_store or mlflow/mlflow.db)",
    )
    common.add_argument(
        "--artifact-root",
        help="folder the server stores artifacts in "
        "(default: tracking.artifact_root or mlflow/artifacts)",
    )
    common.add_argument(
        "--params",
        default=str(DEFAULT_PARAMS),
        help="params file with an optional 'tracking:' section (default: %(default)s)",
    )
    parser = Parser(
        prog="python -m tools.tracking_server",
        description="Manage the local MLflow tracking server used by every pipeline stage. "
        "It keeps runs in SQLite, stores artifacts in a local folder and serves them over "
        "HTTP, and listens on 127.0.0.1 only.",
        epilog="Clients find the server through MLFLOW_TRACKING_URI or the 'tracking:' "
        "section of params.yaml (keys: "
        + ", ".join(TrackingParams.model_fields)
        + "). Options go after the "
        "action, e.g. `start --port 5001`; see `<action> --help`.",
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="{start,stop,status,url}")
    actions = {
        "start": "start the server unless one already answers, and wait until it is healthy",
        "stop": "stop the server started from this workdir (its PID file)",
        "status": "report on the server; exit 0 when healthy, 1 otherwise",
        "url": "print the tracking URI clients should use",
    }
    for name, text in actions.items():
        description = text[0].upper() + text[1:] + "."
        action = sub.add_parser(name, parents=[common], help=text, description=description)
        if name == "start":
            action.add_argument(
                "--timeout",
                type=float,
                default=90.0,
                help="seconds to wait for /health (default: %(default)s)",
            )
    return parser


def _local_flags(args: argparse.Namespace) -> bool:
    """Whether the command names a local server explicitly (then MLFLOW_TRACKING_URI is not it)."""
    return (
        args.port is not None or args.workdir != str(PROJECT_ROOT) or args.backend_store is not None
    )


@cli_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    paths = dict(
        backend_store=args.backend_store, artifact_root=args.artifact_root, params_path=args.params
    )
    if args.action == "start":
        start_server(args.workdir, args.port, timeout=args.timeout, **paths)
        return 0
    config = server_config(args.workdir, args.port, **paths)
    if args.action == "stop":
        stop_server(ServerHandle(config, config.process.live()))
    elif (
        args.action == "status" and os.environ.get("MLFLOW_TRACKING_URI") and not _local_flags(args)
    ):
        uri = os.environ["MLFLOW_TRACKING_URI"]  # a team's server: only its health is ours to see
        healthy = server_healthy(uri)
        print(
            f"MLflow server (MLFLOW_TRACKING_URI): {'healthy' if healthy else 'not answering'} "
            f"at {uri}"
        )
        return 0 if healthy else 1
    elif args.action == "status":
        healthy, message = server_status(config)
        print(f"MLflow server: {message}")
        return 0 if healthy else 1
    else:
        print(config.uri)
    return 0


if __name__ == "__main__":
    sys.exit(main())
