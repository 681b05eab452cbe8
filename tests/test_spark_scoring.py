"""Batch scoring on Apache Spark (mlflow.pyfunc.spark_udf) against the in-process engine.

Real components: the LSTM that the session's tiny repro trained and logged (its models/lstm
folder is an MLflow model, loadable with no server), a real Spark `local[2]` with Python
workers, one SparkSession for the whole module (the JVM takes 10-20 s to start).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from fakenews.data.params import read_params
from tests.support.commands import PROJECT_ROOT, run, subprocess_env

pytestmark = pytest.mark.slow

ODD_TITLES = [
    "Senate passes the annual budget bill",
    "",
    "   \t ",
    "word " * 400,
    "Ünïcödé 日本語 🚀 — «fake» news",
    "12345",
    "NA",
    'He said "no", twice',
    "two\nlines",
]


@pytest.fixture(scope="module")
def lstm_dir(tiny_repro):
    return tiny_repro.outputs / "models" / "lstm"


@pytest.fixture(scope="module")
def spark():
    from fakenews.scoring.spark import spark_session

    settings = read_params()["score"]["spark"]
    session = spark_session("local[2]", settings["conf"], int(settings["tf_threads_per_worker"]))
    yield session
    session.stop()


@pytest.fixture(scope="module")
def headlines(tiny_repro) -> pd.DataFrame:
    """The tiny repro's ingested headlines and the odd titles, with unique ids."""
    ingested = pd.read_parquet(tiny_repro.outputs / "data" / "ingested" / "headlines.parquet")
    odd = pd.DataFrame(
        {
            "id": [f"odd{i}" for i in range(len(ODD_TITLES))],
            "title": ODD_TITLES,
            "label": "",
            "source": "odd",
        }
    )
    return pd.concat([ingested.astype({"label": str}), odd], ignore_index=True)


def parts_folder(frame: pd.DataFrame, folder, parts: int, suffix: str):
    """`frame` as a folder of part files, the way Spark writes one (with _SUCCESS)."""
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(frame)), parts)):
        rows = frame.iloc[part]
        target = folder / f"part-{i:05d}{suffix}"
        rows.to_parquet(target, index=False) if suffix == ".parquet" else rows.to_csv(
            target, index=False
        )
    (folder / "_SUCCESS").touch()
    return folder


def read_output(path) -> pd.DataFrame:
    """A scored output, a file or a folder of part files, Parquet or CSV, as strings +
    probability."""
    files = (
        sorted(p for p in path.iterdir() if p.name.startswith("part-")) if path.is_dir() else [path]
    )
    frames = [
        pd.read_parquet(f)
        if f.suffix == ".parquet" or ".parquet" in path.name
        else pd.read_csv(f, dtype=str, keep_default_na=False)
        for f in files
    ]
    frame = pd.concat(frames, ignore_index=True)
    return frame.astype({c: str for c in frame.columns if c != "fake_probability"}).astype(
        {"fake_probability": "float64"}
    )


def assert_same_answers(
    in_process: pd.DataFrame, on_spark: pd.DataFrame, source: pd.DataFrame
) -> None:
    assert list(on_spark.columns) == [*source.columns, "fake_probability", "predicted_label"]
    assert sorted(on_spark["id"]) == sorted(in_process["id"]) == sorted(source["id"])
    left, right = in_process.set_index("id").sort_index(), on_spark.set_index("id").sort_index()
    for column in ("title", "label", "source", "predicted_label"):
        assert left[column].tolist() == right[column].tolist(), column
    np.testing.assert_allclose(
        right["fake_probability"], left["fake_probability"], rtol=0, atol=1e-6
    )


def test_spark_local2_gives_the_in_process_answers_for_the_same_ids(
    spark, lstm_dir, headlines, tmp_path
):
    from fakenews.scoring.models import load_model
    from fakenews.scoring.spark import score_with_spark
    from fakenews.scoring.stream import score_table
    from fakenews.scoring.tables import input_table

    table = input_table(parts_folder(headlines, tmp_path / "csv_parts", 3, ".csv"))
    in_process = tmp_path / "in_process.parquet"
    counts = score_table(table, load_model(str(lstm_dir)), in_process, chunk_rows=16, batch_size=5)
    on_spark = tmp_path / "out" / "on_spark.parquet"
    spark_counts = score_with_spark(spark, table, lstm_dir, on_spark, batch_size=7)

    assert counts == spark_counts and counts.rows == len(headlines) and counts.empty == 2
    expected = read_output(in_process)
    assert_same_answers(expected, read_output(on_spark), headlines)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [
        "on_spark.parquet"
    ]  # no temp folder left

    # Parquet part files in, CSV out, and the label at a given threshold
    threshold = float(np.median(expected["fake_probability"]))
    parquet = input_table(parts_folder(headlines, tmp_path / "parquet_parts", 2, ".parquet"))
    as_csv = tmp_path / "on_spark.csv"
    score_with_spark(spark, parquet, lstm_dir, as_csv, threshold=threshold, batch_size=64)
    scored = read_output(as_csv)
    assert_same_answers(
        expected.assign(
            predicted_label=np.where(expected["fake_probability"] >= threshold, "fake", "real")
        ),
        scored,
        headlines,
    )


def test_spark_reads_part_files_by_column_name_and_replaces_only_its_own_output(
    spark, lstm_dir, headlines, tmp_path
):
    """b.csv's columns come in another order than a.csv's: Spark's CSV reader would take
    them by position under a.csv's header. And the output folder is replaced only while it
    holds what an earlier run wrote."""
    from fakenews.errors import PipelineError
    from fakenews.scoring.spark import score_with_spark
    from fakenews.scoring.tables import input_table

    rows = headlines.iloc[:12]
    folder = tmp_path / "parts"
    folder.mkdir()
    rows.iloc[:6].to_csv(folder / "a.csv", index=False)
    rows.iloc[6:][["title", "source", "id", "label"]].to_csv(folder / "b.csv", index=False)
    target = tmp_path / "scored.parquet"
    score_with_spark(spark, input_table(folder), lstm_dir, target)
    scored = read_output(target).set_index("id").loc[rows["id"]]
    assert scored["title"].tolist() == rows["title"].tolist()
    assert scored["source"].tolist() == rows["source"].tolist()

    score_with_spark(spark, input_table(folder), lstm_dir, target)  # its own: replaced
    (target / "notes.txt").write_text("the user's")
    with pytest.raises(PipelineError, match="holds files that tools.score did not write"):
        score_with_spark(spark, input_table(folder), lstm_dir, target)
    assert (target / "notes.txt").read_text() == "the user's"


def test_the_spark_engine_leaves_a_folder_it_did_not_write_alone(lstm_dir, tmp_path):
    """`--output ~/reports`: refused in one line, before Spark starts; nothing deleted."""
    source = tmp_path / "headlines.csv"
    pd.DataFrame({"id": ["a"], "title": ["Senate passes budget"]}).to_csv(source, index=False)
    reports = tmp_path / "reports"
    (reports / "2024").mkdir(parents=True)
    (reports / "2024" / "q3.pdf").write_text("a quarter's work")
    args = ["--input", str(source), "--output", str(reports), "--model", str(lstm_dir)]
    line = error_line(score_cli([*args, "--engine", "spark"]))
    assert f"{reports}: a folder that tools.score did not write" in line
    assert (reports / "2024" / "q3.pdf").read_text() == "a quarter's work"


def test_the_ensemble_scores_on_spark_as_in_process(spark, tiny_repro, headlines, tmp_path):
    """The ensemble is one pyfunc like any model: its members load inside each worker."""
    from fakenews.scoring.models import load_model
    from fakenews.scoring.spark import score_with_spark
    from fakenews.scoring.stream import score_table
    from fakenews.scoring.tables import input_table

    ensemble = tiny_repro.outputs / "models" / "ensemble"
    table = input_table(parts_folder(headlines, tmp_path / "parts", 2, ".parquet"))
    in_process = tmp_path / "in_process.parquet"
    counts = score_table(table, load_model(str(ensemble)), in_process, batch_size=32)
    on_spark = tmp_path / "on_spark.parquet"
    assert score_with_spark(spark, table, ensemble, on_spark, batch_size=32) == counts
    assert_same_answers(read_output(in_process), read_output(on_spark), headlines)


def score_cli(args: list[str]):
    return run(
        [sys.executable, "-m", "tools.score", *args], PROJECT_ROOT, subprocess_env(), check=False
    )


def error_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_bad_input_gets_the_in_process_error_and_no_output_on_spark(lstm_dir, tmp_path):
    """Checked before Spark starts: the same one line from both engines, nothing written."""
    titles = pd.DataFrame({"id": ["a", "b", "c", "d"], "title": ["fine", None, "fine", None]})
    parts = tmp_path / "parts"
    parts.mkdir()
    titles.iloc[:2].to_parquet(parts / "part-0.parquet", index=False)
    titles.iloc[2:].to_parquet(parts / "part-1.parquet", index=False)
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"id,title\nx,caf\xe9\n")
    no_title = tmp_path / "no_title.csv"
    no_title.write_text("id,headline\nx,Senate passes budget\n")
    cases = {
        parts: "part-0.parquet, column 'title': the title must be a string in every row; "
        "not in row 1 (missing)",
        broken: "cannot be decoded as utf-8",
        no_title: "missing column(s) title; columns found: id, headline",
    }
    for source, says in cases.items():
        lines = []
        for engine in ("in-process", "spark"):
            output = tmp_path / f"out-{engine}" / "scored.parquet"
            proc = score_cli(
                [
                    "--input",
                    str(source),
                    "--output",
                    str(output),
                    "--model",
                    str(lstm_dir),
                    "--engine",
                    engine,
                ]
            )
            lines.append(error_line(proc))
            assert says in lines[-1]
            assert not output.exists() and not list(output.parent.glob("*"))
        assert lines[0] == lines[1]


def _worker_settings(_):
    import os
    import sys

    yield (
        os.environ.get("TF_NUM_INTRAOP_THREADS"),
        os.environ.get("TF_NUM_INTEROP_THREADS"),
        sys.executable,
    )


def test_python_workers_run_this_interpreter_with_limited_tensorflow_threads(spark):
    threads = str(read_params()["score"]["spark"]["tf_threads_per_worker"])
    seen = set(
        spark.sparkContext.parallelize(range(2), 2).mapPartitions(_worker_settings).collect()
    )
    assert seen == {(threads, threads, sys.executable)}
