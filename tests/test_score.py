"""Batch scoring (python -m tools.score) and HTTP serving (mlflow models serve) of real models.

Everything runs for real: the LSTM trained by the tiny_trained fixture, the session's
tracking server and registry, and `mlflow models serve` in its own process group.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
import requests

from fakenews.data.params import read_params
from fakenews.errors import PipelineError
from fakenews.processes import free_port
from tests.support.commands import PROJECT_ROOT, run, subprocess_env, write_params
from tests.support.serving import served_model

CHAMPION_NAME = "score-champion"  # its own registered model, apart from test_evaluate's
ODD_TITLES = {
    "plain": "Senate passes the annual budget bill",
    "empty": "",
    "whitespace": "   \t ",
    "long": "word " * 400,  # 2,000 characters; the model cuts at 1,000
    "non_ascii": "Ünïcödé 日本語 🚀 — «fake» news",
    "numeric": "12345",
    "na_string": "NA",  # a headline, not a missing value
    "quoted": 'He said "no", twice',
}


def score_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "tools.score", *args], PROJECT_ROOT, env=env, check=False)


def env_with_tracking(uri: str) -> dict[str, str]:
    return {**subprocess_env(), "MLFLOW_TRACKING_URI": uri}


def dead_tracking_uri() -> str:
    return f"http://127.0.0.1:{free_port()}"


def odd_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"h{i}" for i in range(len(ODD_TITLES))],
            "kind": list(ODD_TITLES),
            "title": list(ODD_TITLES.values()),
        }
    )


def read_scored(path: Path, sep: str = ",") -> pd.DataFrame:
    scored = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    return scored.astype({"fake_probability": "float64"})


def assert_labels_follow_threshold(scored: pd.DataFrame, threshold: float) -> None:
    probabilities = scored["fake_probability"].to_numpy()
    expected = np.where(probabilities >= threshold, "fake", "real")
    assert scored["predicted_label"].tolist() == expected.tolist()


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


# ---- fixtures: the tiny LSTM as a registry champion (conftest: lstm_model_uri, local_model) --


@pytest.fixture(scope="module")
def champion(lstm_model_uri, tracking_server) -> tuple[str, str]:
    """The LSTM registered as CHAMPION_NAME with the alias champion; (name, version)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_server)
    version = mlflow.register_model(lstm_model_uri, CHAMPION_NAME).version
    MlflowClient(tracking_server).set_registered_model_alias(CHAMPION_NAME, "champion", version)
    return CHAMPION_NAME, str(version)


# ---- the command line, with no model involved ----------------------------------------------


def test_help_explains_the_options_with_examples():
    proc = score_cli(["--help"])
    assert proc.returncode == 0
    for text in (
        "examples:",
        "--title-column",
        "--threshold",
        "--batch-size",
        "models:/",
        "make score",
    ):
        assert text in proc.stdout


def test_missing_file_and_missing_column_fail_in_one_line_and_write_nothing(tmp_path):
    output = tmp_path / "out" / "scored.csv"
    missing = score_cli(["--input", str(tmp_path / "nope.csv"), "--output", str(output)])
    assert_one_line_error(missing, str(tmp_path / "nope.csv"), "file not found")

    source = tmp_path / "headlines.csv"
    pd.DataFrame({"id": ["a"], "headline": ["Senate passes budget"]}).to_csv(source, index=False)
    no_column = score_cli(["--input", str(source), "--output", str(output)])
    assert_one_line_error(
        no_column, str(source), "missing column(s) title", "columns found: id, headline"
    )

    bad_threshold = score_cli(
        ["--input", str(source), "--output", str(output), "--threshold", "1.5"]
    )
    assert bad_threshold.returncode == 2 and "between 0 and 1" in bad_threshold.stderr
    assert not output.parent.exists()  # not even a temp file next to the output


def test_an_output_inside_the_input_or_not_written_by_score_fails_before_any_model(
    tmp_path, capsys
):
    """In-process: both refusals come before the model is even looked up."""
    from tools import score

    parts = tmp_path / "parts"
    parts.mkdir()
    odd_frame().to_csv(parts / "part-0.csv", index=False)
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "q3.pdf").write_text("the user's")
    for output, says in (
        (parts / "scored.csv", "is inside the input"),
        (reports, "a folder that tools.score did not write"),
    ):
        with pytest.raises(SystemExit) as exited:
            score.main(["--input", str(parts), "--output", str(output), "--model", "nowhere"])
        err = capsys.readouterr().err
        assert exited.value.code == 2 and says in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in parts.iterdir()) == ["part-0.csv"]
    assert [p.name for p in reports.iterdir()] == ["q3.pdf"]


def test_unreachable_tracking_server_names_the_model_and_how_to_start_it(tmp_path):
    source = tmp_path / "headlines.csv"
    odd_frame().to_csv(source, index=False)
    uri = dead_tracking_uri()
    proc = score_cli(
        [
            "--input",
            str(source),
            "--output",
            str(tmp_path / "out" / "scored.csv"),
            "--model",
            "models:/fake-news-classifier@champion",
        ],
        env_with_tracking(uri),
    )
    assert_one_line_error(proc, "models:/fake-news-classifier@champion", uri, "make server")
    assert not (tmp_path / "out").exists()


# ---- scoring with the real model -----------------------------------------------------------


@pytest.mark.slow
def test_score_frame_keeps_rows_and_applies_the_model_input_rules(local_model, capsys):
    import mlflow.pyfunc

    from fakenews.scoring.stream import score_frame

    model = mlflow.pyfunc.load_model(str(local_model))
    frame = odd_frame()
    one_batch = score_frame(frame, model, batch_size=len(frame), progress=False)
    threshold = float(np.median(one_batch["fake_probability"]))
    scored = score_frame(frame, model, batch_size=3, threshold=threshold, progress=True)

    assert "scoring: 100%" in capsys.readouterr().err
    assert list(scored.columns) == [*frame.columns, "fake_probability", "predicted_label"]
    pd.testing.assert_frame_equal(scored[frame.columns], frame)
    assert_labels_follow_threshold(scored, threshold)
    np.testing.assert_allclose(scored["fake_probability"], one_batch["fake_probability"], atol=1e-6)
    probability = dict(zip(scored["kind"], scored["fake_probability"], strict=False))
    assert probability["empty"] == pytest.approx(
        probability["whitespace"], abs=1e-6
    )  # both the empty headline
    cut = score_frame(
        pd.DataFrame({"title": [ODD_TITLES["long"].strip()[:1000]]}), model, progress=False
    )
    assert probability["long"] == pytest.approx(cut["fake_probability"][0], abs=1e-6)

    with pytest.raises(PipelineError, match=r"column 'title'.*row 1 \(NoneType\), row 2 \(int\)"):
        score_frame(pd.DataFrame({"title": ["fine", None, 7]}), model, progress=False)


@pytest.mark.slow
def test_cli_scores_odd_titles_with_a_local_model_and_no_server(local_model, tmp_path):
    source, output = tmp_path / "odd.csv", tmp_path / "out" / "scored.csv"
    frame = odd_frame()
    frame.to_csv(source, index=False)
    proc = score_cli(
        [
            "--input",
            str(source),
            "--output",
            str(output),
            "--model",
            str(local_model),
            "--batch-size",
            "3",
        ],
        env_with_tracking(dead_tracking_uri()),
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 empty or whitespace-only titles" in proc.stdout

    scored = read_scored(output)
    assert list(scored.columns) == [*frame.columns, "fake_probability", "predicted_label"]
    pd.testing.assert_frame_equal(scored[frame.columns], frame)  # every cell written back verbatim
    model_threshold = json.loads((local_model / "artifacts" / "model_config.json").read_text())[
        "threshold"
    ]
    assert_labels_follow_threshold(scored, model_threshold)  # the model's own label
    assert sorted(p.name for p in output.parent.iterdir()) == [  # no temp left over
        ".scored.csv.fakenews-score.json",  # the marker: a rerun may replace it
        "scored.csv",
    ]


@pytest.mark.slow
def test_a_process_downloads_each_logged_model_once(
    champion, lstm_model_uri, tiny_trained, tracking_uri
):
    """A registered version, its alias and its LoggedModel are one download in a process;
    when the alias moves to another LoggedModel, that one is downloaded, not the copy."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from fakenews.scoring.models import _downloaded

    name, version = champion
    first = _downloaded(f"models:/{name}/{version}")
    assert (first / "MLmodel").is_file()
    assert _downloaded(f"models:/{name}@champion") == first
    assert _downloaded(lstm_model_uri) == first

    models_dir = Path(read_params(tiny_trained)["paths"]["models_dir"])
    tfidf_uri = json.loads((models_dir / "tfidf" / "mlflow_run.json").read_text())["model_uri"]
    client = MlflowClient(tracking_uri)
    other = mlflow.register_model(tfidf_uri, name)
    client.set_registered_model_alias(name, "champion", other.version)
    try:
        moved = _downloaded(f"models:/{name}@champion")
    finally:
        client.set_registered_model_alias(name, "champion", version)
    assert moved != first
    assert f"model_id: {tfidf_uri.removeprefix('models:/')}" in (moved / "MLmodel").read_text()


def test_default_model_is_the_registry_champion(champion, tiny_trained, tracking_server, tmp_path):
    """No --model: models:/<evaluate.registered_model>@champion, here from a TSV with
    another column name."""
    name, version = champion
    params = read_params(tiny_trained)
    params["evaluate"]["registered_model"] = name
    params_file = write_params(tmp_path / "params.yaml", params)
    source, output = tmp_path / "odd.tsv", tmp_path / "scored.tsv"
    frame = odd_frame().rename(columns={"title": "headline"})
    frame.to_csv(source, sep="\t", index=False)

    proc = score_cli(
        [
            "--input",
            str(source),
            "--output",
            str(output),
            "--params",
            str(params_file),
            "--title-column",
            "headline",
            "--threshold",
            "0",
        ],
        env_with_tracking(tracking_server),
    )
    assert proc.returncode == 0, proc.stderr
    assert f"models:/{name}@champion (version {version})" in proc.stdout
    scored = read_scored(output, sep="\t")
    assert len(scored) == len(frame) and scored["headline"].tolist() == frame["headline"].tolist()
    assert set(scored["predicted_label"]) == {"fake"}  # every probability is >= 0


@pytest.mark.slow
def test_the_summary_names_the_version_that_scored_when_a_promotion_lands_mid_run(
    champion, lstm_model_uri, tracking_uri, tmp_path, monkeypatch, capsys
):
    """The alias is resolved once: a promotion that moves champion while the model loads
    changes neither the model that scores nor the version the summary names."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from tools import score

    name, version = champion
    client = MlflowClient(tracking_uri)
    other = str(mlflow.register_model(lstm_model_uri, name).version)
    loaded, load = [], score.load_model

    def load_then_promote(uri: str):
        model = load(uri)
        loaded.append(uri)
        client.set_registered_model_alias(name, "champion", other)  # a promotion lands now
        return model

    monkeypatch.setattr(score, "load_model", load_then_promote)
    source = tmp_path / "in.csv"
    odd_frame().to_csv(source, index=False)
    try:
        score.main(["--input", str(source), "--output", str(tmp_path / "out.csv"),
                    "--model", f"models:/{name}@champion"])  # fmt: skip
    finally:
        client.set_registered_model_alias(name, "champion", version)
    out = capsys.readouterr().out
    assert loaded == [f"models:/{name}/{version}"]
    assert f"models:/{name}@champion (version {version})" in out and f"version {other}" not in out


@pytest.mark.slow
def test_unknown_alias_and_unknown_model_are_one_line_errors(champion, tracking_server, tmp_path):
    name, _ = champion
    source = tmp_path / "headlines.csv"
    odd_frame().to_csv(source, index=False)
    env = env_with_tracking(tracking_server)
    for model, says in (
        (f"models:/{name}@nope", "alias nope not found"),
        ("models:/no-such-model@champion", "no-such-model not found"),
    ):
        proc = score_cli(
            ["--input", str(source), "--output", str(tmp_path / "out.csv"), "--model", model], env
        )
        assert_one_line_error(
            proc, f"cannot load the model {model}", says, "python -m tools.promote"
        )
    assert not (tmp_path / "out.csv").exists()


# ---- HTTP serving with `mlflow models serve` -------------------------------------------------


@pytest.fixture(scope="module")
def served_champion(champion, tracking_server):
    """`mlflow models serve` of models:/<name>@champion on a free port; its base URL.
    served_model stops the whole process group and fails if anything is left behind."""
    name, _ = champion
    with served_model(
        f"models:/{name}@champion", env_with_tracking(tracking_server), timeout=300
    ) as base:
        yield base


def _invoke(base: str, body: dict) -> requests.Response:
    return requests.post(f"{base}/invocations", json=body, timeout=120)


def _probabilities(response: requests.Response) -> list[float]:
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert all(set(p) == {"fake_probability", "predicted_label"} for p in predictions), predictions
    return [p["fake_probability"] for p in predictions]


@pytest.mark.slow
def test_served_champion_gives_one_probability_per_raw_headline(served_champion):
    titles = list(ODD_TITLES.values())
    records = _probabilities(
        _invoke(served_champion, {"dataframe_records": [{"title": t} for t in titles]})
    )
    split = _probabilities(
        _invoke(
            served_champion,
            {"dataframe_split": {"columns": ["title"], "data": [[t] for t in titles]}},
        )
    )
    assert len(records) == len(titles)
    np.testing.assert_allclose(records, split, atol=1e-6)

    bad = _invoke(
        served_champion, {"dataframe_records": [{"title": "fine"}, {"title": None}, {"title": 7}]}
    )
    assert bad.status_code == 400  # docs/serving-and-spark.md's input rules document this
    assert bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "not in row 1 (NoneType), row 2 (int)" in bad.json()["message"]


# ---- the documented serving section -------------------------------------------------------

SERVING_DOC = PROJECT_ROOT / "docs" / "serving-and-spark.md"


def serving_doc_section() -> str:
    text = SERVING_DOC.read_text(encoding="utf-8")
    assert "\n## HTTP: serve the champion\n" in text
    return text.split("\n## HTTP: serve the champion\n", 1)[1].split("\n## ", 1)[0]


def documented_curl_request() -> tuple[str, dict[str, str], str, dict]:
    """(URL, headers, body, documented response) of the documented curl example, as written."""
    section = serving_doc_section()
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.S)
    index, curl = next(
        (i, code)
        for i, (lang, code) in enumerate(blocks)
        if lang == "bash" and "curl" in code and "/invocations" in code
    )
    args = shlex.split(curl.replace("\\\n", " "), comments=True)
    args = args[args.index("curl") :]
    headers = dict(
        args[i + 1].split(": ", 1) for i, arg in enumerate(args) if arg in ("-H", "--header")
    )
    body = next(args[i + 1] for i, arg in enumerate(args) if arg in ("-d", "--data", "--data-raw"))
    url = next(arg for arg in args if arg.startswith("http"))
    response = next(json.loads(code) for lang, code in blocks[index + 1 :] if lang == "json")
    return url, headers, body, response


def test_the_serving_doc_matches_the_project():
    section = serving_doc_section()
    model = read_params()["evaluate"]["registered_model"]
    serve = next(line for line in section.splitlines() if line.startswith("mlflow models serve"))
    assert f'-m "models:/{model}@champion"' in serve and "--env-manager local" in serve
    url, headers, body, response = documented_curl_request()
    assert urlparse(url).port == int(shlex.split(serve)[shlex.split(serve).index("-p") + 1])
    assert headers.get("Content-Type") == "application/json"
    records = json.loads(body)["dataframe_records"]
    assert records and all(set(r) == {"title"} for r in records)
    assert len(response["predictions"]) == len(records)


@pytest.mark.slow
def test_the_documented_curl_example_works_against_the_served_model(served_champion):
    url, headers, body, documented = documented_curl_request()
    response = requests.post(
        served_champion + urlparse(url).path,
        data=body.encode("utf-8"),
        headers=headers,
        timeout=120,
    )
    values = _probabilities(response)
    assert len(values) == len(json.loads(body)["dataframe_records"])
    assert set(response.json()) == set(documented)  # the documented response shape
