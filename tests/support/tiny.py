"""The tiny profile as the suite runs it: the params, the `dvc exp run -S` flags, and
what the session's one tiny `dvc repro` (tests/conftest.py) leaves for the tests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from fakenews.data.params import read_params
from tests.support.commands import PROJECT_ROOT, SHARED_DATA
from tests.support.sandbox import TINY_PROFILE

# `dvc repro` tests apply the tiny profile with `dvc exp run -S`; in-process tests read a
# params file with the same values. The offline data at absolute paths: queued experiments
# run in a temporary workspace where `../shared` does not resolve, and copies that share
# DVC's run cache must agree on every param to restore each other's stages.
TINY_STAGE_PARAMS = {
    **TINY_PROFILE,
    "ingest": {**TINY_PROFILE["ingest"], "path": str(SHARED_DATA / "fakenewsnet")},
    "clean": {**TINY_PROFILE.get("clean", {}), "nltk_data": str(SHARED_DATA / "nltk_data")},
    "embed": {**TINY_PROFILE["embed"], "bert_checkpoint": str(SHARED_DATA / "minilm_l6_h384")},
}
TINY_REPRO_EXPERIMENT = "dvc-repro-test"
TINY_REPRO_MODEL = "dvc-repro"
DATA_PATHS = (
    "ingested",
    "ingest_report",
    "cleaned",
    "hub_dir",
    "embedded_dir",
    "embed_metrics",
    "split",
    "split_metrics",
)


def tiny_flags() -> list[str]:
    """The tiny profile as `dvc exp run -S key=value` arguments."""
    return [
        arg
        for section, values in TINY_STAGE_PARAMS.items()
        for key, value in values.items()
        for arg in ("-S", f"{section}.{key}={value}")
    ]


@dataclass(frozen=True)
class TinyRepro:
    repo: Path  # the copy, which later tests may change
    env: dict[str, str]
    result: subprocess.CompletedProcess  # the `dvc repro` that reproduced all seven stages
    outputs: Path  # data/, models/, metrics/ and params.yaml as that run left them


def tiny_params(outputs: Path, workdir: Path, shared_data: Path) -> dict:
    """params.yaml with the tiny profile, reading the upstream data of the session's tiny
    repro (`outputs`) and writing models and metrics into `workdir`."""
    params = read_params(PROJECT_ROOT / "params.yaml")
    params["paths"] = {
        key: str((outputs if key in DATA_PATHS else workdir) / value)
        for key, value in params["paths"].items()
    }
    params["embed"]["wordvec_handle"] = str(outputs / params["embed"]["wordvec_handle"])
    for key in ("preprocess_handle", "encoder_handle"):
        params["train_bert"][key] = str(outputs / params["train_bert"][key])
    for section, values in TINY_STAGE_PARAMS.items():
        params[section].update(values)
    return params
