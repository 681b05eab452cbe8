"""Shared fixtures: the real offline data, temp copies of the repo, and stage runners."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stages.lib.sandbox import TINY_PROFILE

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"{SHARED_DATA} is missing: the tests read the offline data in place")
    return SHARED_DATA


@pytest.fixture(scope="session")
def nltk_dir(shared_data: Path) -> Path:
    return shared_data / "nltk_data"


def subprocess_env() -> dict[str, str]:
    """The test interpreter's venv first on PATH, so `python` in dvc.yaml is ours."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["TF_USE_LEGACY_KERAS"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def run(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True,
        timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env or subprocess_env(), capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def copy_repo(dest: Path) -> Path:
    """A throwaway git+DVC repo of the project's current files, `../shared` linked beside it."""
    from stages.lib.sandbox import copy_project

    return copy_project(dest)


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


def ran_stages(output: str) -> list[str]:
    """Stage names that `dvc repro`/`dvc exp run` reported running."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


# --- a tiny pipeline run in-process, and a real tracking server -------------------

# In-process tests write the tiny profile into a temp params file; `dvc repro` tests
# apply it with `dvc exp run -S`.
TINY_STAGE_PARAMS = TINY_PROFILE


def tiny_flags() -> list[str]:
    """The tiny profile as `dvc exp run -S key=value` arguments."""
    return [arg for section, values in TINY_STAGE_PARAMS.items() for key, value in values.items()
            for arg in ("-S", f"{section}.{key}={value}")]


def tiny_params(workdir: Path, shared_data: Path) -> dict:
    """params.yaml with every path inside `workdir` and the tiny profile applied."""
    from stages.lib.params import load_params

    params = load_params(PROJECT_ROOT / "params.yaml")
    params["paths"] = {key: str(workdir / value) for key, value in params["paths"].items()}
    params["ingest"]["path"] = str(shared_data / "fakenewsnet")
    params["clean"]["nltk_data"] = str(shared_data / "nltk_data")
    params["embed"]["bert_checkpoint"] = str(shared_data / "minilm_l6_h384")
    for key in ("wordvec_handle",):
        params["embed"][key] = str(workdir / params["embed"][key])
    for key in ("preprocess_handle", "encoder_handle"):
        params["train_bert"][key] = str(workdir / params["train_bert"][key])
    for section, values in TINY_STAGE_PARAMS.items():
        params[section].update(values)
    return params


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory, shared_data):
    """ingest → clean → embed → split on 60 real headlines; returns the params file."""
    from stages import clean, embed, ingest, split

    workdir = tmp_path_factory.mktemp("tiny")
    params_file = write_params(workdir / "params.yaml", tiny_params(workdir, shared_data))
    for stage in (ingest, clean, embed, split):
        stage.main(["--params", str(params_file)])
    return params_file


@pytest.fixture(scope="session")
def tiny_trained(tiny_pipeline, tracking_server):
    """Both models trained once on the tiny profile, logged to the session's server."""
    from stages import train_bert, train_lstm

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", tracking_server)
        for stage in (train_lstm, train_bert):
            stage.main(["--params", str(tiny_pipeline)])
    return tiny_pipeline


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory):
    """A real `mlflow server` on a free loopback port for the whole session."""
    from stages.lib.server import running_server

    with running_server(tmp_path_factory.mktemp("mlflow")) as handle:
        yield handle.uri


@pytest.fixture()
def tracking_uri(tracking_server, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    mlflow.set_tracking_uri(tracking_server)  # process-global: undo what earlier tests set
    return tracking_server
