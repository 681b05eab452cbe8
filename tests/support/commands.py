"""Running commands in the project and in its throwaway copies, as the tests do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from fakenews import TENSORFLOW_ENV
from fakenews.data.params import PROJECT_ROOT

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
__all__ = [
    "PROJECT_ROOT",
    "SHARED_DATA",
    "subprocess_env",
    "run",
    "write_params",
    "commit_all",
    "ran_stages",
]


def subprocess_env() -> dict[str, str]:
    """The test interpreter's venv first on PATH, so `python` in dvc.yaml is ours."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(TENSORFLOW_ENV)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def run(
    cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env or subprocess_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited "
            f"{proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


def commit_all(repo: Path, message: str) -> str:
    """`git add -A` and commit in a project copy; returns the new HEAD."""
    run(["git", "add", "-A"], repo)
    run(
        [
            "git",
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.com",
            "commit",
            "-q",
            "-m",
            message,
        ],
        repo,
    )
    return run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


def ran_stages(output: str) -> list[str]:
    """Stage names that `dvc repro`/`dvc exp run` reported running."""
    return [
        line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")
    ]
