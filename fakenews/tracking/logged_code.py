"""What a logged model is made of, file by file: its content hash, and whether the code it
was logged with is this checkout's.

Every headline model is logged with this project's `fakenews` package as its code path
(fakenews.tracking.pyfunc); serving (`mlflow models serve`, Spark workers) runs that copy.
The content hash covers everything that decides what the model answers: the weights and
every other artifact, the config, the logged code and the signature. It leaves out the
graph file, whose function names carry process-wide counters, the SavedModel fingerprint
(a hash of that graph), and anything with a run id or a timestamp (the MLmodel file but
its signature). A model inside the artifacts, as an ensemble holds its members, counts by
its own content hash. Two trainings that log the same files get the same hash; a changed scorer
with the same weights gets another.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from fakenews.data.params import PROJECT_ROOT

PACKAGE = "fakenews"
UNSTABLE = {"saved_model.pb", "fingerprint.pb"}  # the graph and its fingerprint


def _digest(file: Path) -> str:
    with open(file, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def code_files(code_root: Path) -> dict[str, str]:
    """{path under code_root: sha256} of the `fakenews` package there, bytecode left out."""
    package = code_root / PACKAGE
    return {
        path.relative_to(code_root).as_posix(): _digest(path)
        for path in sorted(package.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def _artifact_files(artifacts: Path) -> dict[str, str]:
    """{path under artifacts/: sha256} of every file; a model folder among them (an
    ensemble's members) counts by its own content hash, not its run-specific files."""
    files: dict[str, str] = {}
    nested = sorted(p.parent for p in artifacts.rglob("MLmodel"))
    for folder in nested:
        files[f"artifacts/{folder.relative_to(artifacts).as_posix()}/"] = content_hash(folder)
    for path in sorted(artifacts.rglob("*")):
        inside = any(folder in path.parents for folder in nested)
        if path.is_file() and path.name not in UNSTABLE and not inside:
            files[f"artifacts/{path.relative_to(artifacts).as_posix()}"] = _digest(path)
    return files


def content_hash(model_dir: Path) -> str:
    """The content hash of the MLflow model folder `model_dir` (module docstring)."""
    digest = hashlib.sha256()
    files = _artifact_files(model_dir / "artifacts")
    files.update({f"code/{name}": sha for name, sha in code_files(model_dir / "code").items()})
    if (model_dir / "model_code.py").is_file():
        files["model_code.py"] = _digest(model_dir / "model_code.py")
    signature = yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8")).get("signature")
    digest.update(json.dumps({"files": files, "signature": signature}, sort_keys=True).encode())
    return digest.hexdigest()


def differing_code(model_dir: Path, checkout: Path = PROJECT_ROOT) -> list[str]:
    """The files of `fakenews` in which the model's logged code and the checkout's differ
    (present in one only, or with other bytes); [] when they are the same."""
    logged, here = code_files(model_dir / "code"), code_files(checkout)
    return sorted(
        name for name in logged.keys() | here.keys() if logged.get(name) != here.get(name)
    )
