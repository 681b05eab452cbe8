"""Run the team's tracking service on this machine: PostgreSQL, an S3 server and MLflow
with authentication (make team-up / team-down / team-status).

    python -m tools.team up        # start (first time: create the database, users, secrets)
    python -m tools.team status    # what runs, on which ports, where the logs are
    python -m tools.team down      # stop everything; the data stay for the next `up`
    python -m tools.team rotate reader
    python -m tools.team grant-create alice   # alice may create experiments and models

The service itself is fakenews.team.
"""

from __future__ import annotations

import argparse
import sys

from fakenews.cli import Parser
from fakenews.errors import cli_errors
from fakenews.team import stack
from fakenews.team.layout import DEFAULT_ROOT, SECRET_NAMES


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir",
        default=str(DEFAULT_ROOT),
        help="folder for data, secrets, logs and state (default: %(default)s)",
    )
    parser = Parser(
        prog="python -m tools.team",
        description="A production-shaped MLflow tracking service on this machine: PostgreSQL "
        "as the backend store, SeaweedFS as an S3 artifact store (and DVC remote), and "
        "`mlflow server` with logins (MLflow basic auth; only admins create names), an admin "
        "and a read-only user. Every port is on 127.0.0.1 unless `up --host` says otherwise, "
        "and every one but MLflow, S3 and PostgreSQL refuses anything without the team's keys "
        "(threat model: docs/team.md).",
        epilog="Secrets are generated on the first `up` into <dir>/secrets/secrets.env (mode "
        "0600), unless set in the environment: " + ", ".join(SECRET_NAMES) + ". Clients: "
        "`set -a; . team/secrets/admin.env; set +a` (or reader.env), then `make repro`. "
        "See docs/team.md.",
    )
    sub = parser.add_subparsers(
        dest="action", required=True, metavar="{up,down,status,rotate,grant-create}"
    )
    start = sub.add_parser(
        "up",
        parents=[common],
        help="start the service (resumes its data)",
        description="Start PostgreSQL, S3 and MLflow unless running; create "
        "the database, buckets, users and secrets on the first run.",
    )
    start.add_argument(
        "--port", type=int, help=f"MLflow's port (default: the last one, else {stack.DEFAULT_PORT})"
    )
    start.add_argument(
        "--host",
        help="MLflow's address for this start only (default: 127.0.0.1); 0.0.0.0 serves "
        "other machines, which always log in, and prints a warning with the URI",
    )
    start.add_argument(
        "--allowed-hosts",
        help="Host headers MLflow accepts, e.g. mlflow.internal:5050 when clients use that name",
    )
    sub.add_parser(
        "down",
        parents=[common],
        help="stop every process `up` started; keep the data",
        description="Stop MLflow, S3 and PostgreSQL and check no port is left open.",
    )
    sub.add_parser(
        "status",
        parents=[common],
        help="what runs, where, and its logs; exit 1 unless all three run",
        description="Report on the three services.",
    )
    rotate = sub.add_parser(
        "rotate",
        parents=[common],
        help="give a user a new random password",
        description="Set a new random password on the server and in the "
        "secrets and client files; the old one stops working at once.",
    )
    rotate.add_argument("user", choices=["admin", "reader"])
    grant = sub.add_parser(
        "grant-create",
        parents=[common],
        help="let a user create experiments and registered models (role creators)",
        description="Assign MLflow's role `creators` to a user, as admin: only admins and "
        "its members may create experiments and registered models on the team server.",
    )
    grant.add_argument("user", help="an MLflow user of the team server")
    grant.add_argument("--revoke", action="store_true", help="take the right away again")
    return parser


@cli_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "up":
        stack.up(args.dir, host=args.host, port=args.port, allowed_hosts=args.allowed_hosts)
    elif args.action == "down":
        stack.down(args.dir)
    elif args.action == "rotate":
        stack.rotate(args.user, args.dir)
    elif args.action == "grant-create":
        stack.grant_create(args.user, args.dir, revoke=args.revoke)
    else:
        healthy, lines = stack.status(args.dir)
        print("\n".join(lines))
        return 0 if healthy else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
