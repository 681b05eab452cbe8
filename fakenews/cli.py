"""The command line every stage and tool shares: `--verbose`, and `--params` for stages."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from fakenews.data.params import DEFAULT_PARAMS
from fakenews.logs import configure


class Parser(argparse.ArgumentParser):
    """An ArgumentParser with `--verbose`; parsing applies the output settings (fakenews.logs)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--verbose",
            action="store_true",
            help="show library logs too: TensorFlow, MLflow, progress bars "
            "(or set FAKENEWS_LOG_LEVEL=debug)",
        )

    def parse_args(self, args: Sequence[str] | None = None, namespace=None):  # type: ignore[override]
        parsed = super().parse_args(args, namespace)
        configure(bool(getattr(parsed, "verbose", False)))
        return parsed


def stage_arg_parser(stage: str, description: str) -> Parser:
    """The common command line of a stage:
    `python -m stages.<stage> [--params FILE] [--verbose]`."""
    parser = Parser(
        prog=f"python -m stages.{stage}",
        description=description,
        epilog=f"All settings come from the '{stage}:' section of the params file; "
        "`dvc repro` runs this stage with the defaults.",
    )
    parser.add_argument(
        "--params", default=str(DEFAULT_PARAMS), help="params file (default: %(default)s)"
    )
    return parser
