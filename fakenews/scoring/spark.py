"""The Spark engine: the same pyfunc model, run by `mlflow.pyfunc.spark_udf` on Spark.

Spark reads the input (CSV/TSV with the in-process engine's rules: a header line, every
cell text, an empty cell the empty string; or Parquet), each executor's Python workers
load the model once and score Arrow batches of `batch_size` titles, and the output is a
folder of part files (Parquet, or CSV/TSV by the target's name) written to a temporary
sibling and renamed into place. The master is a setting: `local[*]` here, `spark://…`,
`yarn` or `k8s://…` on a cluster, whose executors must have the project's Python
environment (env_manager="local": nothing is installed at run time).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from fakenews import TENSORFLOW_ENV
from fakenews.data.io import atomic_path
from fakenews.data.schema import LABEL, OUTPUT
from fakenews.logs import LOG_LEVEL_ENV, verbose
from fakenews.scoring import outputs
from fakenews.scoring.stream import Counts
from fakenews.scoring.tables import InputTable, format_of, separator_for

PREDICTION = "__fakenews_prediction"  # a temporary column; dropped before writing
RESULT_TYPE = f"{OUTPUT} double, {LABEL} string"


QUIET_LOG4J = Path(__file__).with_name("log4j2-quiet.properties")


def worker_environment(tf_threads: int) -> dict[str, str]:
    """Environment of each Python worker: TensorFlow (and OpenMP) limited to `tf_threads`
    threads, so N concurrent tasks share the cores instead of each taking all of them, and
    the driver's log settings (fakenews.logs)."""
    threads = str(tf_threads)
    return {
        "TF_NUM_INTRAOP_THREADS": threads,
        "TF_NUM_INTEROP_THREADS": threads,
        "OMP_NUM_THREADS": threads,
        **TENSORFLOW_ENV,
        **{k: os.environ[k] for k in ("TF_CPP_MIN_LOG_LEVEL", LOG_LEVEL_ENV) if k in os.environ},
    }


def quiet_settings() -> dict[str, str]:
    """Spark's JVM logs and console progress off unless --verbose (fakenews.logs)."""
    if verbose():
        return {}
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    # env_manager="local" is deliberate (the executors run the project's environment)
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    return {
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{QUIET_LOG4J}",
        "spark.ui.showConsoleProgress": "false",
    }


def spark_session(
    master: str, conf: dict[str, Any], tf_threads: int, app_name: str = "fakenews-score"
):
    """A SparkSession on `master` with `conf` (params `score.spark.conf`) on top of what
    the engine needs: this interpreter as every worker's Python, Arrow transfers, and the
    worker environment above."""
    os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    if "spark.driver.bindAddress" in conf:  # else Spark warns that the hostname is loopback
        os.environ.setdefault("SPARK_LOCAL_IP", str(conf["spark.driver.bindAddress"]))
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(app_name)
    settings = {
        "spark.pyspark.python": sys.executable,
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        **{f"spark.executorEnv.{k}": v for k, v in worker_environment(tf_threads).items()},
        **quiet_settings(),
        **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in conf.items()},
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def read_input(spark, table: InputTable):
    """The input as a Spark DataFrame, read by the rules of the in-process engine: columns
    by name. Spark's CSV reader takes every file's columns by position, under the first
    file's header, so files whose columns come in another order are read apart and
    joined by name, in the first file's order."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for file, columns in zip(
        table.files, table.file_columns or [()] * len(table.files), strict=True
    ):
        groups.setdefault(columns, []).append(str(file))
    frames = [_read_files(spark, table, files) for files in groups.values()]
    frame = frames[0]
    for other in frames[1:]:
        frame = frame.unionByName(other)
    return frame


def _read_files(spark, table: InputTable, files: list[str]):
    if table.format == "parquet":
        return spark.read.parquet(*files)
    frame = (
        spark.read.option("header", True)
        .option("sep", table.sep)
        .option("encoding", table.encoding)
        .option("multiLine", True)
        .option("quote", '"')
        .option("escape", '"')
        .option("mode", "FAILFAST")
        .csv(files)
    )
    return frame.fillna("")  # pandas with keep_default_na=False: an empty cell is ""


def score_with_spark(
    spark,
    table: InputTable,
    model_dir: Path,
    target: Path,
    title_column: str = "title",
    batch_size: int = 256,
    threshold: float | None = None,
    sep: str | None = None,
) -> Counts:
    """Score `table` with the model in `model_dir` into the folder `target`; the counts of
    the closing summary. Check the input first (tables.check_input): Spark's own errors are
    not one line. What stands at `target` is replaced only when it is an earlier output of
    scoring (fakenews.scoring.outputs)."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    outputs.check_replaceable(target)

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_size))
    predict = mlflow.pyfunc.spark_udf(
        spark, str(model_dir), result_type=RESULT_TYPE, env_manager="local"
    )
    frame = read_input(spark, table)
    scored = frame.withColumn(PREDICTION, predict(F.struct(F.col(title_column).alias("title"))))
    probability = F.col(f"{PREDICTION}.{OUTPUT}")
    label = (
        F.when(probability >= threshold, "fake").otherwise("real")
        if threshold is not None
        else F.col(f"{PREDICTION}.{LABEL}")
    )
    kept = [F.col(c) for c in frame.columns if c not in (OUTPUT, LABEL)]
    scored = scored.select(*kept, probability.alias(OUTPUT), label.alias(LABEL))
    with atomic_path(target) as tmp:
        _write(scored, tmp, target, sep)
        counts = _counts(spark, tmp, target, title_column, sep)
        outputs.mark_folder(tmp)
    outputs.forget_file_marker(target)
    return counts


def _write(scored, tmp: Path, target: Path, sep: str | None) -> None:
    if format_of(target) == "parquet":
        scored.write.parquet(str(tmp))
    else:
        # as pandas writes CSV: doubled quotes inside quoted cells, spaces kept
        (
            scored.write.option("header", True)
            .option("sep", sep or separator_for(target))
            .option("escape", '"')
            .option("ignoreLeadingWhiteSpace", False)
            .option("ignoreTrailingWhiteSpace", False)
            .csv(str(tmp))
        )


def _counts(spark, written: Path, target: Path, title_column: str, sep: str | None) -> Counts:
    """Counted from the written output: scoring again for the summary would double the cost."""
    from pyspark.sql import functions as F

    if format_of(target) == "parquet":
        frame = spark.read.parquet(str(written))
    else:
        frame = (
            spark.read.option("header", True)
            .option("sep", sep or separator_for(target))
            .option("multiLine", True)
            .option("escape", '"')
            .csv(str(written))
            .fillna("")
        )
    row = frame.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum((F.col(LABEL) == "fake").cast("long")).alias("fake"),
        F.sum(F.col(title_column).rlike(r"^\s*$").cast("long")).alias("empty"),
    ).first()
    return Counts(int(row["rows"]), int(row["fake"] or 0), int(row["empty"] or 0))
