"""score: fake-probabilities for a table of headlines, by the registry champion or any model.

examples:
  python -m tools.score --input headlines.csv --output scored.csv
  python -m tools.score --input news.tsv --output scored.tsv --title-column headline
  python -m tools.score --input headlines.csv --output scored.csv --threshold 0.8 \\
      --model "models:/fake-news-classifier/3"
  python -m tools.score --input headlines.csv --output scored.csv --model models/bert
  python -m tools.score --input parts/ --output scored.parquet --engine spark --master "local[2]"
  make score IN=headlines.csv OUT=scored.csv
  make score IN=headlines.parquet OUT=scored.parquet ENGINE=spark

Input: CSV, TSV or Parquet, one file or a folder of part files. The in-process engine
streams it in chunks (--chunk-rows) into one output file; the Spark engine
(mlflow.pyfunc.spark_udf) writes a folder of part files. Both check the whole input first
and write nothing when it is bad.

The output holds every input column, then `fake_probability` (0 to 1) and `predicted_label`
(`fake` or `real`, at the threshold the model chose on validation, or at --threshold);
columns of those names are replaced.
It appears only once complete, and replaces only an earlier output of this tool (a
marker is written with each): anything else at --output is left alone, with an error.
Every cell is read as text: `123` is the headline "123", and an empty cell is an empty
title. Titles follow the model's input rules: empty or
whitespace-only is scored as the empty headline, longer than 1,000 characters is cut,
any Unicode is accepted.

--model takes a models:/ or runs:/ URI (these need the tracking server: MLFLOW_TRACKING_URI,
or `make server`), a training output folder such as models/lstm (its mlflow_run.json names
the logged model), or a local MLflow model folder (one holding an MLmodel file; no server).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import get_args

from fakenews.cli import Parser
from fakenews.data.params import DEFAULT_PARAMS, load_params
from fakenews.data.tool_sections import Engine, ScoreParams
from fakenews.errors import cli_errors
from fakenews.scoring.models import (
    default_model_uri,
    download_model,
    load_model,
    loadable_uri,
    pin,
    require_checkout_code,
)
from fakenews.scoring.outputs import check_apart, check_replaceable
from fakenews.scoring.stream import Counts, score_table
from fakenews.scoring.tables import InputTable, bad_titles, check_input, input_table

ENGINES = get_args(Engine)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def build_parser() -> Parser:
    parser = Parser(
        prog="python -m tools.score",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--input",
        required=True,
        type=Path,
        metavar="PATH",
        help="CSV, TSV or Parquet of headlines (CSV with a header line), or a folder of part files",
    )
    add(
        "--output",
        required=True,
        type=Path,
        metavar="PATH",
        help="where to write the scored table: Parquet when it ends in .parquet, TSV in .tsv, else "
        "CSV; a file (in-process) or a folder of part files (spark)",
    )
    add(
        "--model",
        metavar="URI|FOLDER",
        help="model URI or folder (default: "
        "models:/<evaluate.registered_model from --params>@champion)",
    )
    add(
        "--title-column",
        default="title",
        metavar="NAME",
        help="column holding the headlines (default: %(default)s)",
    )
    add(
        "--sep",
        metavar="CHAR",
        help="field separator of input and output (default: by extension, tab for "
        ".tsv/.tab, else comma)",
    )
    add(
        "--encoding",
        default="utf-8",
        metavar="NAME",
        help="encoding of the input (default: %(default)s)",
    )
    add(
        "--engine",
        choices=ENGINES,
        help="in-process: this process, the input streamed in chunks; "
        "spark: mlflow.pyfunc.spark_udf on a Spark master (default: score.engine in --params)",
    )
    add(
        "--master",
        metavar="URL",
        help="Spark master: local[*], local[2], spark://host:7077, yarn, "
        "k8s://... (default: score.spark.master in --params)",
    )
    add(
        "--batch-size",
        type=_positive_int,
        metavar="N",
        help="titles per model call; on Spark, per Arrow batch (default: score.batch_size "
        "in --params)",
    )
    add(
        "--chunk-rows",
        type=_positive_int,
        metavar="N",
        help="rows held in memory at once, in-process (default: score.chunk_rows in --params)",
    )
    add(
        "--threshold",
        type=_probability,
        metavar="P",
        help="fake_probability at or above which the label is fake (default: the threshold "
        "the model chose on validation)",
    )
    add(
        "--params",
        default=str(DEFAULT_PARAMS),
        metavar="FILE",
        help="params file (default: %(default)s)",
    )
    return parser


def summary(counts: Counts, model: str, threshold: float | None) -> str:
    """Counts per label, and of empty titles, which a wrong --title-column would show up as;
    `model` as models.pin named it (with the version an alias pointed at)."""
    return (
        f"{counts.rows} titles scored with {model}: {counts.fake} fake, "
        f"{counts.rows - counts.fake} real"
        + (f" at threshold {threshold}" if threshold is not None else " at the model's threshold")
        + (
            f"; {counts.empty} empty or whitespace-only titles scored as the empty headline"
            if counts.empty
            else ""
        )
    )


def score_on_spark(
    table: InputTable, uri: str, args: argparse.Namespace, settings: ScoreParams
) -> Counts:
    """Check the input and fetch the model first, so bad input fails in one line before
    Spark starts."""
    from fakenews.scoring.spark import score_with_spark, spark_session

    check_input(table, args.title_column, args.chunk_rows or settings.chunk_rows)
    with tempfile.TemporaryDirectory(prefix="score-model-") as work:
        model_dir = download_model(uri, Path(work))
        require_checkout_code(model_dir, uri)
        spark = spark_session(
            args.master or settings.spark.master,
            settings.spark.conf,
            settings.spark.tf_threads_per_worker,
        )
        try:
            return score_with_spark(
                spark,
                table,
                model_dir,
                args.output,
                args.title_column,
                args.batch_size or settings.batch_size,
                args.threshold,
                args.sep,
            )
        finally:
            spark.stop()


@cli_errors
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = load_params(args.params).score
    check_apart(args.input, args.output)
    table = input_table(args.input, args.sep, args.encoding)
    check_replaceable(args.output)  # before the slow part, as the writers check again
    bad_titles(
        next(table.chunks(rows=1, limit=1)).frame, args.title_column, source=table.files[0]
    )  # fail before the slow model load
    uri, named = pin(loadable_uri(args.model or default_model_uri(args.params)))
    engine = args.engine or settings.engine
    if engine == "spark":
        counts = score_on_spark(table, uri, args, settings)
    else:
        counts = score_table(
            table,
            load_model(uri),
            args.output,
            args.title_column,
            args.batch_size or settings.batch_size,
            args.threshold,
            args.chunk_rows or settings.chunk_rows,
            args.sep,
        )
    print(
        f"score: wrote {args.output} from {args.input} ({engine}); "
        + summary(counts, named, args.threshold)
    )


if __name__ == "__main__":
    main()
