"""The whole pipeline under a real `dvc repro` in a temporary copy of the repo.

Against a real tracking server: all seven stages run on the tiny profile, MLflow holds
the runs and a champion, a second repro runs nothing, re-evaluating unchanged models
registers nothing, and the README's experiment reruns only what depends on its params and
leaves the registry alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.support.commands import ran_stages, run
from tests.support.tiny import TINY_REPRO_EXPERIMENT, TINY_REPRO_MODEL
from tests.test_docs import NOT_RUN_HERE, documented_commands

pytestmark = pytest.mark.slow

ALL_STAGES = [
    "ingest",
    "clean",
    "embed",
    "split",
    "train_lstm",
    "train_bert",
    "train_tfidf",
    "blend",
    "evaluate",
]
# split reads only ids and labels; each consumer joins the columns it needs by id
EXPECTED_EDGES = {
    ("ingest", "clean"),
    ("clean", "embed"),
    ("ingest", "split"),
    ("split", "train_lstm"),
    ("clean", "train_lstm"),
    ("embed", "train_lstm"),
    ("split", "train_bert"),
    ("ingest", "train_bert"),
    ("embed", "train_bert"),
    ("split", "evaluate"),
    ("clean", "evaluate"),
    ("ingest", "evaluate"),
    ("split", "train_tfidf"),
    ("ingest", "train_tfidf"),
    ("split", "blend"),
    ("ingest", "blend"),
    ("train_lstm", "blend"),
    ("train_bert", "blend"),
    ("train_tfidf", "blend"),
    ("train_lstm", "evaluate"),
    ("train_bert", "evaluate"),
    ("train_tfidf", "evaluate"),
    ("blend", "evaluate"),
}


@pytest.fixture(scope="module")
def repo(tiny_repro):
    return tiny_repro.repo


@pytest.fixture(scope="module")
def env(tiny_repro):
    return tiny_repro.env


def dag_edges(repo) -> set[tuple[str, str]]:
    dot = run(["dvc", "dag", "--dot"], repo).stdout
    edges = set()
    for line in dot.splitlines():
        if "->" in line:
            left, right = (part.strip().strip(";").strip('"') for part in line.split("->"))
            edges.add((left, right))
    return edges


def test_dag_chains_the_nine_stages(repo):
    assert dag_edges(repo) == EXPECTED_EDGES


@pytest.fixture(scope="module")
def first_run(tiny_repro):
    """The session's tiny profile run through all nine stages (conftest.tiny_repro)."""
    return tiny_repro.result


def test_full_repro_then_noop(repo, env, tracking_server, first_run):
    first = first_run
    assert ran_stages(first.stdout) == ALL_STAGES
    split = json.loads((repo / "metrics/split.json").read_text())
    assert sum(part["rows"] for part in split.values()) == 60

    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name(TINY_REPRO_EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    by_stage = {}
    for r in runs:
        by_stage.setdefault(r.data.tags["dvc.stage"], []).append(r)
    trained = ("train_lstm", "train_bert", "train_tfidf", "blend")
    assert [len(by_stage[stage]) for stage in trained] == [1, 1, 1, 1]
    # the four trained models, the older TF-IDF reference and the majority class
    assert len(by_stage["evaluate"]) == 6
    lstm = by_stage["train_lstm"][0]
    assert lstm.data.tags["command"].endswith("-m stages.train_lstm")
    head = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    for r in runs:  # a repro of a clean checkout: the pipeline's own outputs do not count
        assert (r.data.tags["git.commit"], r.data.tags["git.dirty"]) == (head, "false")
        assert "dvc.exp.name" not in r.data.tags
    name = yaml.safe_load((repo / "params.yaml").read_text())["evaluate"]["registered_model"]
    assert name == TINY_REPRO_MODEL
    versions = client.search_model_versions(f"name = '{name}'")
    assert sorted(v.tags["family"] for v in versions) == ["bert", "ensemble", "lstm", "tfidf"]
    promotion = json.loads((repo / "metrics/promotion.json").read_text())
    champion = client.get_model_version_by_alias(name, "champion").version
    assert promotion["decision"]["promoted"] and promotion["decision"]["version"] == champion

    status = run(["dvc", "status"], repo, env).stdout
    assert "up to date" in status, status
    again = run(["dvc", "repro"], repo, env)
    assert ran_stages(again.stdout) == []


def registry_state(client: MlflowClient, name: str) -> tuple[list[str], dict[str, str]]:
    versions = sorted(
        (v.version for v in client.search_model_versions(f"name = '{name}'")), key=int
    )
    return versions, client.get_registered_model(name).aliases


def test_reevaluating_unchanged_models_registers_nothing(repo, env, tracking_server, first_run):
    client = MlflowClient(tracking_server)
    before = registry_state(client, TINY_REPRO_MODEL)
    forced = run(["dvc", "repro", "--force", "--single-item", "evaluate"], repo, env)
    assert ran_stages(forced.stdout) == ["evaluate"]
    assert registry_state(client, TINY_REPRO_MODEL) == before
    promotion = json.loads((repo / "metrics/promotion.json").read_text())
    assert promotion["decision"] is None and promotion["new_versions"] == []
    assert promotion["versions"] == {
        v.tags["family"]: v.version
        for v in client.search_model_versions(f"name = '{TINY_REPRO_MODEL}'")
    }


@pytest.fixture(scope="module")
def readme_outputs(repo, env, first_run) -> dict[str, str]:
    """The README's quick start and everyday workflow, run as written in the reproduced copy.

    Blocks marked `<!-- tested -->` run line by line; `make test` is skipped because it is
    what `.ci/run` itself runs. MLFLOW_TRACKING_URI points at the session's server, as a
    team's shared server would, so `make repro` starts none.
    """
    # sys.prefix is the venv itself; resolving sys.executable would lead to the base Python
    (repo / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    outputs = {
        "registry before": registry_state(
            MlflowClient(env["MLFLOW_TRACKING_URI"]), TINY_REPRO_MODEL
        )
    }
    for command in documented_commands():
        if command not in NOT_RUN_HERE:
            outputs[command] = run(["bash", "-c", command], repo, env).stdout
    outputs["repo"] = repo
    return outputs


def test_documented_commands_run(readme_outputs, tracking_server):
    champion = MlflowClient(tracking_server).get_model_version_by_alias(
        TINY_REPRO_MODEL, "champion"
    )
    shown = next(out for cmd, out in readme_outputs.items() if "promote show" in cmd)
    assert f"champion: version {champion.version}" in shown
    assert ran_stages(readme_outputs["make repro"]) == []  # first_run already reproduced everything
    forced = next(
        out for cmd, out in readme_outputs.items() if "promote promote --version 1" in cmd
    )
    assert forced.strip() == (
        f"version 1 of {TINY_REPRO_MODEL} is already champion; nothing to do"
        if champion.version == "1"
        else f"would make version 1 champion (now {champion.version})"
    )
    traced = readme_outputs["python -m tools.trace models/lstm"]
    lstm_run = json.loads((readme_outputs["repo"] / "models/lstm/mlflow_run.json").read_text())[
        "run_id"
    ]
    # the README's experiment retrained the LSTM in the workspace: its params differ from HEAD
    assert (
        f"run      {lstm_run}  (stage train_lstm, FINISHED)" in traced and "dirty    true" in traced
    )


def test_readme_spark_scoring_wrote_every_headline(readme_outputs):
    """The README's Spark command scored the ingested table into a folder of Parquet parts."""
    import pandas as pd

    command = next(
        cmd for cmd in readme_outputs if isinstance(cmd, str) and "--engine spark" in cmd
    )
    repo = readme_outputs["repo"]
    ingested = pd.read_parquet(repo / "data/ingested/headlines.parquet")
    scored = pd.read_parquet(repo / "scored.parquet")  # the folder of part files
    assert f"{len(ingested)} titles scored" in readme_outputs[command]
    assert list(scored.columns) == [*ingested.columns, "fake_probability", "predicted_label"]
    assert sorted(scored["id"]) == sorted(ingested["id"])
    assert scored["fake_probability"].between(0, 1).all()


def experiment_command(outputs: dict) -> str:
    return next(cmd for cmd in outputs if cmd.startswith("dvc exp run -S clean."))


def test_a_param_change_reruns_only_what_depends_on_it(readme_outputs):
    """The README's experiment changes a clean and a train_lstm param: BERT, which joins
    raw titles by id, is not retrained, and nothing upstream of clean reruns."""
    assert ran_stages(readme_outputs[experiment_command(readme_outputs)]) == [
        "clean",
        "embed",
        "train_lstm",
        "blend",
        "evaluate",
    ]


def test_an_experiment_leaves_the_registry_untouched(readme_outputs, tracking_server):
    client = MlflowClient(tracking_server)
    assert registry_state(client, TINY_REPRO_MODEL) == readme_outputs["registry before"]
    assert (
        "nothing registered and no alias moved"
        in readme_outputs[experiment_command(readme_outputs)]
    )
