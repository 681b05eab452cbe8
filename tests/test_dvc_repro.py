"""A real `dvc repro` in a temporary copy of the repo: caching and rerun-only-what-changed."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import TINY_PROFILE, copy_repo, ran_stages, run

pytestmark = pytest.mark.slow

DATA_STAGES = ["ingest", "clean", "embed", "split"]


def set_flags(overrides: dict) -> list[str]:
    return [arg for key, value in overrides.items() for arg in ("-S", f"{key}={value}")]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("dvc"))


EXPECTED_EDGES = {
    ("ingest", "clean"), ("clean", "embed"), ("embed", "split"),
    ("split", "train_lstm"), ("embed", "train_lstm"),
}


def dag_edges(repo) -> set[tuple[str, str]]:
    dot = run(["dvc", "dag", "--dot"], repo).stdout
    edges = set()
    for line in dot.splitlines():
        if "->" in line:
            left, right = (part.strip().strip(";").strip('"') for part in line.split("->"))
            edges.add((left, right))
    return edges


def test_dag_chains_the_stages_in_order(repo):
    assert dag_edges(repo) == EXPECTED_EDGES


def test_repro_then_noop_then_only_changed_stage(repo):
    first = run(["dvc", "exp", "run", *set_flags(TINY_PROFILE), "split"], repo)
    assert ran_stages(first.stdout) == DATA_STAGES
    train = pd.read_parquet(repo / "data/split/train.parquet")
    assert 35 <= len(train) <= 45  # 70 % of 60 headlines
    report = json.loads((repo / "metrics/split.json").read_text())
    assert sum(part["rows"] for part in report.values()) == 60

    again = run(["dvc", "repro", "split"], repo)
    assert ran_stages(again.stdout) == []
    assert "didn't change" in again.stdout or "up to date" in again.stdout

    changed = run(["dvc", "exp", "run", "-S", "split.seed=7", "split"], repo)
    assert ran_stages(changed.stdout) == ["split"]
    assert run(["dvc", "status", "split"], repo).stdout.strip().endswith("up to date.")
