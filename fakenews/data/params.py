"""Reading params files: the typed, validated sections (fakenews.data.sections), and paths
from them resolved against the project root."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fakenews.data.sections import Params
from fakenews.errors import PipelineError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PARAMS = PROJECT_ROOT / "params.yaml"
PROFILES_DIR = PROJECT_ROOT / "params"  # named overlays such as params/tiny.yaml


class ParamsError(PipelineError):
    """A params file that cannot be used: missing, not YAML, or a value of the wrong shape."""


def read_params(path: Path | str = DEFAULT_PARAMS) -> dict[str, Any]:
    """The file as plain data (for tools that rewrite it); a clear error when missing or
    not a mapping."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ParamsError(f"{path}: cannot be read: {err}") from None
    try:
        params = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ParamsError(
            f"{path}: expected a mapping of sections at the top level, got {type(params).__name__}"
        )
    return params


def load_params(path: Path | str = DEFAULT_PARAMS) -> Params:
    """The whole file, validated once against its declared sections."""
    return params_from(read_params(path), path)


def params_from(data: dict[str, Any], source: Path | str = "params") -> Params:
    """Validated Params from plain data; ParamsError naming `source`, the key, what it
    expects and what it got."""
    try:
        return Params.model_validate(data)
    except ValidationError as err:
        raise ParamsError(describe_errors(err, source)) from None


def describe_errors(err: ValidationError, source: Path | str) -> str:
    """One line per bad key: `params.yaml: split.test_size: input should be a valid number,
    got 'abc'`."""
    lines = []
    for error in err.errors(include_url=False):
        key = _dotted(error["loc"])
        message = re.sub(r" or instance of \w+", "", error["msg"].removeprefix("Value error, "))
        if error["type"] == "extra_forbidden":
            lines.append(
                f"{source}: {key}: unknown key (a typo, or a setting this version does not have)"
            )
        elif error["type"] == "value_error":  # a rule across keys, whose message names them
            named = not key or message.startswith(key)
            lines.append(f"{source}: {message if named else f'{key}: {message}'}")
        else:
            lines.append(
                f"{source}: {key}: {message[:1].lower()}{message[1:]}, "
                f"got {_shown(error.get('input'))}"
            )
    return "\n".join(lines)


def _dotted(loc: tuple) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
            continue
        # a key of YAML's may be empty or hold a line break: quoted, it stays on its line
        name = str(part) if str(part).isprintable() and str(part) else repr(part)
        key += f".{name}" if key else name
    return key


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def project_path(value: str | Path) -> Path:
    """A path from params: relative ones are relative to the project root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def resolve_handle(handle: str) -> str:
    """A TF Hub handle from params: URLs pass through, anything else is a project path."""
    return handle if "://" in handle else str(project_path(handle))
