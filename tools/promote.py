"""Inspect and move the registry aliases by hand.

    python -m tools.promote show
    python -m tools.promote promote --version 7 --force --reason "hotfix" [--dry-run]
    python -m tools.promote rollback [--dry-run]

Automatic promotion happens in the evaluate stage; this is for people.
"""

from __future__ import annotations

import argparse

from fakenews.cli import Parser
from fakenews.data.params import DEFAULT_PARAMS, load_params
from fakenews.errors import PipelineError, cli_errors


def build_parser() -> Parser:
    # The options every action takes, accepted before or after the action's name.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--params", default=argparse.SUPPRESS, help=f"params file (default: {DEFAULT_PARAMS})"
    )
    common.add_argument(
        "--model",
        default=argparse.SUPPRESS,
        help="registered model name (default: evaluate.registered_model)",
    )
    common.add_argument(
        "--dry-run",
        action="store_true",
        default=argparse.SUPPRESS,
        help="say what would change; change nothing",
    )
    parser = Parser(
        prog="python -m tools.promote",
        description=__doc__,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("show", parents=[common], help="the champion, challenger and previous champion")
    promote = sub.add_parser(
        "promote", parents=[common], help="make a version champion (needs --force and --reason)"
    )
    promote.add_argument("--version", required=True)
    promote.add_argument("--force", action="store_true", help="skip the score comparison")
    promote.add_argument("--reason", default="", help="why; recorded on the version")
    sub.add_parser("rollback", parents=[common], help="give champion back to the previous champion")
    return parser


def version_exists(client, name: str, version: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(name, str(version))
        return True
    except MlflowException:
        return False


@cli_errors
def main(argv: list[str] | None = None) -> None:
    from fakenews.tracking.connection import refusals_as_errors, tracking_uri

    with refusals_as_errors(tracking_uri()):  # e.g. a read-only user moving an alias: 403
        _main(argv)


def _main(argv: list[str] | None) -> None:
    args = build_parser().parse_args(argv)
    # --params, --model and --dry-run may stand before or after the action (SUPPRESS defaults)
    args.params = getattr(args, "params", str(DEFAULT_PARAMS))
    args.model = getattr(args, "model", None)
    args.dry_run = getattr(args, "dry_run", False)
    from mlflow.tracking import MlflowClient

    from fakenews.tracking import journal, registry
    from fakenews.tracking.connection import connect

    name = args.model or load_params(args.params).evaluate.registered_model
    client = MlflowClient(connect())
    aliases = {
        a: registry.alias_version(client, name, a)
        for a in (registry.CHAMPION, registry.CHALLENGER, registry.PREVIOUS)
    }
    if args.action == "show":
        for alias, version in aliases.items():
            print(f"{alias:>18}: {f'version {version}' if version else '-'}")
        return
    if args.action == "promote":
        if not version_exists(client, name, args.version):
            raise PipelineError(
                f"registered model {name!r} has no version {args.version!r}; "
                "`python -m tools.promote show` lists the aliased ones"
            )
        if not (args.force and args.reason.strip()):
            raise PipelineError(
                "promote needs --force and a --reason; automatic promotion "
                "by score happens in the evaluate stage"
            )
        if aliases[registry.CHAMPION] == args.version:
            print(f"version {args.version} of {name} is already champion; nothing to do")
        elif args.dry_run:
            print(f"would make version {args.version} champion (now {aliases[registry.CHAMPION]})")
        else:
            journal.force(client, name, args.version, args.reason)
            print(f"version {args.version} of {name} is champion: forced: {args.reason}")
        return
    if aliases[registry.PREVIOUS] is None:
        raise PipelineError(f"registered model {name!r} has no previous champion to roll back to")
    if args.dry_run:
        print(
            f"would make version {aliases[registry.PREVIOUS]} champion again "
            f"(now {aliases[registry.CHAMPION]})"
        )
        return
    restored, demoted = journal.rollback(client, name)
    print(f"champion of {name}: version {restored} (was {demoted})")


if __name__ == "__main__":
    main()
