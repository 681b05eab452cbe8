"""python -m tools.trace against a real tracking server and real git + DVC repos.

A temp copy of the project (copy_repo) gets a history: commit A with the ingest output
for 30 rows a label, a run logged there through fakenews.tracking.runs.start_run, then
commit B with 20 rows. Tracing the run prints what A holds; --checkout brings back A's
params.yaml (git) and A's ingest output (DVC cache). A second copy checks that a run
made by `dvc exp run` comes back through `dvc exp apply`, params included.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from fakenews.errors import PipelineError
from fakenews.tracking.lineage import path_hash
from fakenews.tracking.provenance import RunTrace, describe
from tests.support.commands import commit_all, run, subprocess_env
from tools import trace as trace_cli

pytestmark = pytest.mark.slow

INGESTED = "data/ingested/headlines.parquet"
# Logs one run the way every stage does, from the repo it runs in; prints its id (mlflow
# prints lines of its own too).
LOG_RUN = """\
from fakenews.data.params import read_params
from fakenews.tracking.runs import start_run

with start_run("ingest", {"ingest": read_params()["ingest"]},
               ["data/ingested/headlines.parquet", "params.yaml"]) as run:
    print("run_id=" + run.run_id)
"""


@pytest.fixture(scope="module")
def env(tracking_server) -> dict[str, str]:
    return {
        **subprocess_env(),
        "MLFLOW_TRACKING_URI": tracking_server,
        "MLFLOW_EXPERIMENT_NAME": "trace-test",
    }


def set_rows(repo: Path, rows: int | str) -> None:
    params = repo / "params.yaml"
    lines = [
        f"  max_rows_per_label: {rows}" if line.startswith("  max_rows_per_label:") else line
        for line in params.read_text(encoding="utf-8").splitlines()
    ]
    params.write_text("\n".join(lines) + "\n", encoding="utf-8")


def head(repo: Path) -> str:
    return run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


def log_run(repo: Path, env: dict) -> str:
    out = run([sys.executable, "log_run.py"], repo, env).stdout
    return next(line.split("=", 1)[1] for line in out.splitlines() if line.startswith("run_id="))


def trace(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, from the repo (so PROJECT_ROOT is the repo)."""
    return run([sys.executable, "-m", "tools.trace", *args], repo, env, check=False)


def new_repo(project_copy, name: str) -> Path:
    repo = project_copy(name)
    (repo / "log_run.py").write_text(LOG_RUN, encoding="utf-8")
    return repo


@pytest.fixture(scope="module")
def history(project_copy, env) -> dict:
    """Commit A (30 rows, run logged, a run from a dirty tree too), then commit B (20 rows)."""
    repo = new_repo(project_copy, "trace")
    set_rows(repo, 30)
    run(["dvc", "repro", "ingest"], repo, env)
    commit_a = commit_all(repo, "A: 30 rows a label")
    run_a = log_run(repo, env)
    ingested_a = path_hash(repo / INGESTED)
    params_a = (repo / "params.yaml").read_text(encoding="utf-8")

    with open(repo / "README.md", "a", encoding="utf-8") as readme:
        readme.write("\nan uncommitted edit\n")
    dirty_run = log_run(repo, env)
    run(["git", "checkout", "--", "README.md"], repo)

    set_rows(repo, 20)
    run(["dvc", "repro", "ingest"], repo, env)
    commit_b = commit_all(repo, "B: 20 rows a label")
    assert path_hash(repo / INGESTED) != ingested_a
    return {
        "repo": repo,
        "a": commit_a,
        "b": commit_b,
        "run_a": run_a,
        "dirty_run": dirty_run,
        "ingested_a": ingested_a,
        "params_a": params_a,
    }


def test_prints_commit_dirty_flag_inputs_params_and_command(history, env):
    result = trace(history["repo"], env, history["run_a"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"commit   {history['a']}" in out
    assert "dirty    false" in out
    assert f"  {INGESTED}  {history['ingested_a']}" in out
    assert "  ingest.max_rows_per_label = 30" in out
    assert "command  " in out and "log_run.py" in out
    assert head(history["repo"]) == history["b"]  # reading changes nothing


def test_dry_run_prints_the_commands_only(history, env):
    result = trace(history["repo"], env, history["run_a"], "--checkout", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == [f"git checkout {history['a']}", "dvc checkout"]
    assert head(history["repo"]) == history["b"]


def test_refuses_a_dirty_working_tree(history, env):
    repo = history["repo"]
    (repo / "params.yaml").write_text(history["params_a"] + "# local edit\n", encoding="utf-8")
    try:
        result = trace(repo, env, history["run_a"], "--checkout")
    finally:
        run(["git", "checkout", "--", "params.yaml"], repo)
    assert result.returncode == 2
    assert "uncommitted changes" in result.stderr and "params.yaml" in result.stderr
    assert head(repo) == history["b"]


def test_refuses_a_run_made_from_a_dirty_tree(history, env):
    result = trace(history["repo"], env, history["dirty_run"], "--checkout")
    assert "dirty    true" in result.stdout
    assert result.returncode == 2
    assert (
        "may not give the code that ran" in result.stderr and "--allow-dirty-run" in result.stderr
    )
    allowed = trace(
        history["repo"], env, history["dirty_run"], "--checkout", "--dry-run", "--allow-dirty-run"
    )
    assert allowed.returncode == 0 and "warning:" in allowed.stderr
    assert head(history["repo"]) == history["b"]


def test_unknown_run_is_a_clear_error(history, env):
    result = trace(history["repo"], env, "0" * 32)
    assert result.returncode == 2
    assert "no run '" + "0" * 32 in result.stderr and "Traceback" not in result.stderr


def test_checkout_restores_the_runs_code_and_data(history, env):
    """Last in this module: it moves the repo's HEAD to A."""
    repo = history["repo"]
    result = trace(repo, env, history["run_a"], "--checkout")
    assert result.returncode == 0, result.stdout + result.stderr
    assert head(repo) == history["a"]
    assert (repo / "params.yaml").read_text(encoding="utf-8") == history["params_a"]
    assert path_hash(repo / INGESTED) == history["ingested_a"]
    assert "restored: 2 recorded input(s) match" in result.stdout
    # only ingest ever ran here, so `dvc checkout` fails on the other stages' outputs;
    # the run's own inputs decide
    assert "all of this run's inputs are back" in result.stderr


def test_an_experiment_run_comes_back_through_dvc_exp_apply(project_copy, env, tracking_server):
    repo = new_repo(project_copy, "trace-exp")
    run(
        [
            "dvc",
            "stage",
            "add",
            "-n",
            "log_run",
            "-p",
            "ingest.max_rows_per_label",
            "-d",
            INGESTED,
            "python log_run.py",
        ],
        repo,
        env,
    )
    set_rows(repo, 30)
    run(["dvc", "repro", "ingest"], repo, env)  # a dvc.lock for the baseline, and no run yet
    baseline = commit_all(repo, "baseline with a stage that logs a run")
    run(["dvc", "exp", "run", "log_run", "-S", "ingest.max_rows_per_label=25"], repo, env)
    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name("trace-test")
    (logged,) = client.search_runs(
        [experiment.experiment_id], f"tags.`dvc.exp.baseline_rev` = '{baseline}'"
    )
    exp_name = logged.data.tags["dvc.exp.name"]
    # `-S` edits params.yaml before the stage runs, so the commit alone cannot restore it
    assert logged.data.tags["git.dirty"] == "true"
    ingested_exp = path_hash(repo / INGESTED)

    refused = trace(repo, env, logged.info.run_id, "--checkout")  # exp results in the workspace
    assert refused.returncode == 2 and "uncommitted changes" in refused.stderr
    run(["git", "reset", "-q", "--hard"], repo)
    run(["dvc", "checkout", "--force", "ingest"], repo, env)
    assert "max_rows_per_label: 30" in (repo / "params.yaml").read_text(encoding="utf-8")

    result = trace(repo, env, logged.info.run_id, "--checkout")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"dvc exp  {exp_name}" in result.stdout and "the experiment holds" in result.stdout
    assert f"$ dvc exp apply {exp_name}" in result.stdout
    assert "max_rows_per_label: 25" in (repo / "params.yaml").read_text(encoding="utf-8")
    assert path_hash(repo / INGESTED) == ingested_exp
    assert head(repo) == baseline


def test_git_dirty_ignores_the_pipelines_outputs_and_sees_a_new_module(project_copy, env):
    repo = new_repo(project_copy, "dirty")
    (repo / "metrics" / "evaluate.json").write_text('{"accuracy": 0.5}\n', encoding="utf-8")
    commit_all(repo, "log_run.py and committed metrics")
    (repo / "metrics" / "evaluate.json").write_text('{"accuracy": 0.9}\n', encoding="utf-8")
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    assert client.get_run(log_run(repo, env)).data.tags["git.dirty"] == "false"
    (repo / "stages" / "new_module.py").write_text("ANSWER = 42\n", encoding="utf-8")  # untracked
    assert client.get_run(log_run(repo, env)).data.tags["git.dirty"] == "true"


COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_core_without_a_server():
    """restore_commands and describe from tags alone."""
    plain = RunTrace(
        "r1",
        "train_lstm",
        "FINISHED",
        COMMIT,
        "false",
        "python -m x",
        None,
        {"data/split": "d41d8.dir"},
        {"train_lstm.seed": "42"},
    )
    assert trace_cli.restore_commands(plain) == [["git", "checkout", COMMIT], ["dvc", "checkout"]]
    text = describe(plain)
    assert "  data/split  d41d8.dir" in text and "  train_lstm.seed = 42" in text
    experiment = RunTrace(
        "r2", "train_lstm", "FINISHED", COMMIT, "true", "python -m x", "exp-1a2b", {}, {}
    )
    assert not experiment.code_may_differ  # the experiment holds its own code and params
    assert trace_cli.restore_commands(experiment)[1] == ["dvc", "exp", "apply", "exp-1a2b"]
    unknown = RunTrace("r3", "x", "FINISHED", None, "unknown", "?", None, {}, {})
    with pytest.raises(PipelineError, match="not logged from a git checkout"):
        trace_cli.restore_commands(unknown)


@pytest.mark.parametrize("commit", ["abc", "--orphan=x", "HEAD~1", COMMIT.upper(), COMMIT + "0"])
def test_only_a_full_hexadecimal_commit_reaches_git(commit):
    tagged = RunTrace("r4", "x", "FINISHED", commit, "false", "?", None, {}, {})
    with pytest.raises(PipelineError, match="not a full 40-digit hexadecimal commit"):
        trace_cli.restore_commands(tagged)


def test_only_a_plain_experiment_name_reaches_dvc():
    tagged = RunTrace("r5", "x", "FINISHED", COMMIT, "true", "?", "--force", {}, {})
    with pytest.raises(PipelineError, match="not a DVC experiment name"):
        trace_cli.restore_commands(tagged)
