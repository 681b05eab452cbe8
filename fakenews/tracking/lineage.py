"""What a run records about its inputs: git state, DVC hashes of its inputs, the command.

Also the key rules MLflow enforces on params, metrics and tags, applied in one place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.utils.validation import (
    MAX_ENTITY_KEY_LENGTH,
    MAX_PARAM_VAL_LENGTH,
    MAX_TAG_VAL_LENGTH,
)

from fakenews.data.params import PROJECT_ROOT, project_path
from fakenews.tracking import tags as tag


def mlflow_key(name: str) -> str:
    """A valid MLflow param/metric/tag key: allowed characters only, within the length limit."""
    return re.sub(r"[^/\w.\- :]", "_", name)[:MAX_ENTITY_KEY_LENGTH]


def truncate(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}"""
    flat: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{key}."))
        else:
            flat[key] = value
    return flat


def param_values(params: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in flatten(params).items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        out[mlflow_key(key)] = truncate(text, MAX_PARAM_VAL_LENGTH)
    return out


def git_output(*args: str) -> str | None:
    """Output of a read-only git command in the project, or None when it fails."""
    try:
        result = subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=15,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},  # `git status` must not write the index
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def path_hash(path: Path) -> str:
    """The md5 DVC records for a path: of the file's bytes, or DVC's `<md5>.dir` of a folder."""
    if path.is_file():
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "md5").hexdigest()
    entries = [
        {"md5": path_hash(file), "relpath": file.relative_to(path).as_posix()}
        for file in path.rglob("*")
        if file.is_file()
    ]
    entries.sort(key=lambda entry: entry["relpath"])
    listing = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(listing).hexdigest() + ".dir"


def _dep_tag(value: str | Path) -> tuple[str, str]:
    """(DVC_DEP_PREFIX + the path as dvc.yaml spells it, hash): relative to the project when
    possible."""
    path = project_path(value).resolve()
    name = str(path) if Path(value).is_absolute() else Path(os.path.normpath(value)).as_posix()
    with contextlib.suppress(ValueError):
        name = path.relative_to(PROJECT_ROOT).as_posix()
    return mlflow_key(tag.DVC_DEP_PREFIX + name), path_hash(path) if path.exists() else "missing"


CODE_DIRS = ("stages", "fakenews")  # a new, untracked module here changes the code that runs
_INTERPOLATION = re.compile(r"\$\{([\w.]+)\}")


def pipeline_outputs(root: Path = PROJECT_ROOT) -> list[str]:
    """dvc.lock and every out, metric and plot dvc.yaml declares (${...} resolved from
    params.yaml): the pipeline rewrites them, so they never make the code dirty."""
    import yaml

    try:
        pipeline = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8")) or {}
        params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return ["dvc.lock"]

    def lookup(match: re.Match) -> str:
        value: Any = params
        for key in match.group(1).split("."):
            value = value.get(key, {}) if isinstance(value, dict) else {}
        return str(value)

    outputs = {"dvc.lock"}
    for stage in (pipeline.get("stages") or {}).values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []) or []:
                path = entry if isinstance(entry, str) else next(iter(entry))
                outputs.add(os.path.normpath(_INTERPOLATION.sub(lookup, path)))
    return sorted(outputs)


def git_dirty() -> str:
    """ "true" when the code or params that run differ from the commit: tracked changes
    outside the pipeline's own outputs, or untracked files in the code folders; "unknown"
    outside git."""
    excluded = [f":(exclude){path}" for path in pipeline_outputs()]
    tracked = git_output("status", "--porcelain", "--untracked-files=no", "--", ".", *excluded)
    untracked = git_output("status", "--porcelain", "--untracked-files=all", "--", *CODE_DIRS)
    if tracked is None or untracked is None:
        return "unknown"
    new_code = [line for line in untracked.splitlines() if line.startswith("??")]
    return str(bool(tracked) or bool(new_code)).lower()


def run_tags(stage: str, input_paths: Sequence[str | Path]) -> dict[str, str]:
    """Tags tying a run to its code (git), its DVC stage and inputs, and its command line."""
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    tags = {
        tag.GIT_COMMIT: git_output("rev-parse", "HEAD") or "unknown",
        tag.GIT_DIRTY: git_dirty(),
        tag.GIT_BRANCH: git_output("symbolic-ref", "--short", "-q", "HEAD") or "detached",
        tag.DVC_STAGE: stage,
        tag.COMMAND: shlex.join(sys.orig_argv),  # as typed: `python -m stages.train ...`
        tag.SOURCE_NAME: (
            script.relative_to(PROJECT_ROOT).as_posix()
            if script and script.is_relative_to(PROJECT_ROOT)
            else f"stages.{stage}"
        ),
        # set by `dvc exp run` for each experiment; the baseline groups one sweep
        tag.DVC_EXP_NAME: os.environ.get("DVC_EXP_NAME"),
        tag.DVC_EXP_BASELINE: os.environ.get("DVC_EXP_BASELINE_REV"),
    }
    tags.update(_dep_tag(path) for path in input_paths)
    return {key: truncate(value, MAX_TAG_VAL_LENGTH) for key, value in tags.items() if value}
