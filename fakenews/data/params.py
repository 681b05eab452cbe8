"""Reading params.yaml: one section per stage, paths resolved against the project root."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fakenews.errors import PipelineError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PARAMS = PROJECT_ROOT / "params.yaml"


def load_params(path: Path | str = DEFAULT_PARAMS) -> dict[str, Any]:
    """The whole params file as a dict; a clear error when missing or malformed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(f"{path}: params file not found") from None
    try:
        params = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise PipelineError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(params, dict):
        raise PipelineError(f"{path}: expected a mapping of stage sections at the top level")
    return params


def stage_params(stage: str, path: Path | str = DEFAULT_PARAMS) -> dict[str, Any]:
    """The section of params.yaml that belongs to one stage."""
    params = load_params(path)
    if stage not in params or not isinstance(params[stage], dict):
        raise PipelineError(f"{path}: missing section '{stage}:' for stage {stage}")
    return params[stage]


def project_path(value: str | Path) -> Path:
    """A path from params: relative ones are relative to the project root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def resolve_handle(handle: str) -> str:
    """A TF Hub handle from params: URLs pass through, anything else is a project path."""
    return handle if "://" in handle else str(project_path(handle))
