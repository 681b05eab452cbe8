"""A model is its weights, artifacts, code and signature: the content hash covers all of
them, and in-repo consumers run a model with the code it was logged with, as serving does
(fakenews.tracking.logged_code, fakenews.scoring.models.load_model)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fakenews.tracking.logged_code import content_hash, differing_code
from tests.support.commands import PROJECT_ROOT, run

SIGNATURE = {"inputs": '[{"type": "string", "name": "title"}]', "outputs": "[]", "params": None}


def model_folder(root: Path) -> Path:
    """An MLflow model folder shaped as publish_model logs one."""
    for name, text in {
        "artifacts/saved_model/variables/variables.index": "weights index",
        "artifacts/saved_model/variables/variables.data-00000-of-00001": "weights",
        "artifacts/saved_model/saved_model.pb": "graph with counter 17",
        "artifacts/model_config.json": '{"threshold": 0.5}',
        "artifacts/vocab.txt": "a\nb\n",
        "code/fakenews/__init__.py": "",
        "code/fakenews/tracking/pyfunc.py": "def score(): return 1\n",
        "model_code.py": "set_model(HeadlineModel())\n",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "MLmodel").write_text(yaml.safe_dump({"run_id": "r1", "signature": SIGNATURE}))
    return root


def test_the_content_hash_covers_code_and_signature_but_not_run_ids_or_the_graph(tmp_path):
    model = model_folder(tmp_path / "m")
    first = content_hash(model)

    def changed(edit) -> str:
        copy = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        shutil.copytree(model, copy)
        edit(copy)
        return content_hash(copy)

    def write(name: str, text: str):
        def edit(folder: Path) -> None:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)

        return edit

    def mlmodel(**fields):
        return write("MLmodel", yaml.safe_dump({"run_id": "r1", "signature": SIGNATURE, **fields}))

    # a changed scorer with the same weights is another model
    assert changed(write("code/fakenews/tracking/pyfunc.py", "def score(): return 2\n")) != first
    assert changed(write("code/fakenews/new_module.py", "")) != first
    assert changed(mlmodel(signature={**SIGNATURE, "outputs": "[1]"})) != first
    assert changed(write("artifacts/saved_model/variables/variables.index", "other")) != first
    assert changed(write("artifacts/vocab.txt", "a\n")) != first
    # what differs between two identical trainings does not count
    assert changed(mlmodel(run_id="r2", utc_time_created="later")) == first
    assert changed(write("artifacts/saved_model/saved_model.pb", "graph with counter 99")) == first
    assert changed(write("code/fakenews/__pycache__/pyfunc.cpython-311.pyc", "bytecode")) == first


def test_differing_code_names_the_files_that_differ(tmp_path):
    checkout = tmp_path / "checkout"
    shutil.copytree(model_folder(tmp_path / "m") / "code", checkout)
    assert differing_code(tmp_path / "m", checkout) == []
    (checkout / "fakenews" / "tracking" / "pyfunc.py").write_text("changed\n")
    (checkout / "fakenews" / "extra.py").write_text("")
    assert differing_code(tmp_path / "m", checkout) == [
        "fakenews/extra.py",
        "fakenews/tracking/pyfunc.py",
    ]


# ---- real models ----------------------------------------------------------------------------

CONSTANT = 0.125  # what the altered logged code answers for every headline


@pytest.fixture(scope="module")
def other_code_model(local_model, tmp_path_factory) -> Path:
    """The tiny LSTM with its logged copy of fakenews changed as a later scorer might be:
    every probability CONSTANT. The weights are the same files."""
    copy = tmp_path_factory.mktemp("other_code") / "model"
    shutil.copytree(local_model, copy)
    pyfunc = copy / "code" / "fakenews" / "tracking" / "pyfunc.py"
    line = '    probabilities = np.asarray(probabilities, dtype="float64").reshape(-1)\n'
    text = pyfunc.read_text()
    assert line in text
    pyfunc.write_text(text.replace(line, line + f"    probabilities[:] = {CONSTANT}\n"))
    return copy


@pytest.mark.slow
def test_the_published_hash_is_that_of_the_model_as_logged(local_model, tiny_trained):
    models_dir = Path(yaml.safe_load(Path(tiny_trained).read_text())["paths"]["models_dir"])
    recorded = json.loads((models_dir / "lstm" / "mlflow_run.json").read_text())["content_hash"]
    assert content_hash(local_model) == recorded
    assert differing_code(local_model) == []  # trained from this checkout


@pytest.mark.slow
def test_score_runs_a_model_with_its_logged_code_and_spark_refuses_other_code(
    other_code_model, tmp_path
):
    source = tmp_path / "in.csv"
    pd.DataFrame({"title": ["Senate passes the annual budget bill", "Aliens endorse"]}).to_csv(
        source, index=False
    )
    args = [sys.executable, "-m", "tools.score", "--input", str(source), "--model"]
    scored = tmp_path / "scored.csv"
    proc = run([*args, str(other_code_model), "--output", str(scored)], PROJECT_ROOT)
    assert pd.read_csv(scored)["fake_probability"].tolist() == [CONSTANT, CONSTANT], proc.stderr

    spark = run(
        [*args, str(other_code_model), "--output", str(tmp_path / "s"), "--engine", "spark"],
        PROJECT_ROOT,
        check=False,
    )
    assert spark.returncode == 2
    assert "was logged with other code than this checkout's (fakenews/tracking/pyfunc.py)" in (
        spark.stderr
    )
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_evaluate_rescores_a_champion_with_its_logged_code(other_code_model, tracking_uri):
    """The champion's rescore is what decides a promotion: it must be what the champion
    answers when served."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from fakenews.tracking import registry
    from fakenews.tracking import tags as tag
    from fakenews.tracking.promotion import champion_comparison

    name = "logged-code-champion"
    mlflow.set_experiment("logged-code")
    with mlflow.start_run() as logged:
        mlflow.log_artifacts(str(other_code_model), "model")
    client = MlflowClient(tracking_uri)
    version = mlflow.register_model(
        f"runs:/{logged.info.run_id}/model", name, tags={tag.SPLIT_HASH: "split-A"}
    ).version
    client.set_registered_model_alias(name, registry.CHAMPION, version)
    champion, scored = champion_comparison(client, name, "split-A", ["One", "Two", "Three"])
    assert champion == {"version": str(version)}
    assert scored.probabilities.tolist() == [CONSTANT] * 3
