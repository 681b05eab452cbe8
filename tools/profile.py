"""Named params profiles (params/<name>.yaml): overlays holding only what differs from
params.yaml, such as `tiny` for a quick end-to-end trial.

    python -m tools.profile list
    python -m tools.profile flags tiny             # -S key=value ... for `dvc exp run`
    python -m tools.profile apply tiny --out FILE  # params.yaml with the profile on top

`make trial` runs `dvc exp run $(python -m tools.profile flags tiny)`: an experiment, so
nothing is registered and no alias moves.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from fakenews.cli import Parser
from fakenews.data.io import atomic_path
from fakenews.data.params import DEFAULT_PARAMS, PROFILES_DIR, ParamsError, params_from, read_params
from fakenews.errors import cli_errors
from fakenews.tracking.lineage import flatten


def profile(name: str) -> dict[str, Any]:
    """The overlay params/<name>.yaml, checked against params.yaml's sections."""
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))) or "none"
        raise ParamsError(f"no profile {name!r} ({path} not found); profiles: {known}")
    overlay = read_params(path)
    params_from(merged(read_params(DEFAULT_PARAMS), overlay), path)
    return overlay


def merged(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overlay`'s keys on top, section by section."""
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in base.items()}
    for section, values in overlay.items():
        out[section] = {**(out.get(section) or {}), **values}
    return out


def flags(overlay: dict[str, Any]) -> list[str]:
    """The overlay as `dvc exp run -S section.key=value` arguments (values in YAML/JSON)."""
    return [
        arg
        for key, value in flatten(overlay).items()
        for arg in ("-S", f"{key}={json.dumps(value)}")
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m tools.profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="the profiles in params/")
    for action, text in (
        ("flags", "print the profile as -S flags for `dvc exp run`"),
        ("apply", "write params.yaml with the profile on top"),
    ):
        command = sub.add_parser(action, help=text)
        command.add_argument("name", help="a profile, e.g. tiny")
        if action == "apply":
            command.add_argument("--out", required=True, type=Path, help="the file to write")
    return parser


@cli_errors
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.action == "list":
        print("\n".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))))
    elif args.action == "flags":
        print(" ".join(flags(profile(args.name))))
    else:
        with atomic_path(args.out) as tmp:
            tmp.write_text(
                yaml.safe_dump(
                    merged(read_params(DEFAULT_PARAMS), profile(args.name)), sort_keys=False
                ),
                encoding="utf-8",
            )
        print(f"wrote {args.out}: params.yaml with profile {args.name} on top")


if __name__ == "__main__":
    main()
