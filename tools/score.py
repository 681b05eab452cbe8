"""score: fake-probabilities for a CSV/TSV of headlines, by the registry champion or any model.

examples:
  python -m tools.score --input headlines.csv --output scored.csv
  python -m tools.score --input news.tsv --output scored.tsv --title-column headline
  python -m tools.score --input headlines.csv --output scored.csv --threshold 0.8 \\
      --model "models:/fake-news-classifier/3"
  python -m tools.score --input headlines.csv --output scored.csv --model models/bert
  make score IN=headlines.csv OUT=scored.csv

The output holds every input column, then `fake_probability` (0 to 1) and `predicted_label`
(`fake` or `real`, at the threshold the model chose on validation, or at --threshold);
columns of those names are replaced.
It appears only once complete. Every cell is read as text: `123` is the headline "123", and
an empty cell is an empty title. Titles follow the model's input rules: empty or
whitespace-only is scored as the empty headline, longer than 1,000 characters is cut,
any Unicode is accepted.

--model takes a models:/ or runs:/ URI (these need the tracking server: MLFLOW_TRACKING_URI,
or `make server`), a training output folder such as models/lstm (its mlflow_run.json names
the logged model), or a local MLflow model folder (one holding an MLmodel file; no server).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from tqdm import tqdm

from fakenews.cli import Parser
from fakenews.data.io import read_json, write_csv
from fakenews.data.params import DEFAULT_PARAMS, stage_params
from fakenews.data.schema import require_columns
from fakenews.errors import PipelineError, cli_errors
from stages.ingest import read_csv_file

SERVER_SCHEMES = ("models", "runs", "mlflow-artifacts")  # resolved through the tracking server
REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/\d+)$")


# ---- the core: a frame and a loaded model in, the scored frame out -----------------------


def checked_titles(frame: pd.DataFrame, column: str, source: Path | str) -> list[Any]:
    """The title column as a list, checked by the model's own input rules.

    Checked on the whole column at once so an error names positions (from 0) in the whole
    table, not in one batch, and comes before the slow scoring.
    """
    require_columns(frame, [column], source)
    from fakenews.tracking.pyfunc import (
        titles_from,  # here: it imports mlflow, which takes seconds
    )

    values = frame[column].tolist()
    try:
        titles_from(values)
    except PipelineError as err:
        raise PipelineError(f"{source}, column '{column}': {err}") from None
    return values


def predict_in_batches(model, titles: list[Any], batch_size: int, progress: bool | None = None
                       ) -> pd.DataFrame:
    """The model's output (fake_probability, predicted_label), `batch_size` titles per model
    call, with a progress bar on stderr; `progress=None` shows it only on a terminal."""
    from fakenews.tracking.pyfunc import LABEL, OUTPUT, TITLE

    parts = []
    with tqdm(total=len(titles), unit="title", desc="scoring", file=sys.stderr,
              disable=None if progress is None else not progress) as bar:
        for start in range(0, len(titles), batch_size):
            batch = titles[start:start + batch_size]
            # the raw titles: the model itself strips and cuts them to its own max length
            parts.append(model.predict(pd.DataFrame({TITLE: batch}))[[OUTPUT, LABEL]])
            bar.update(len(batch))
    if not parts:
        return pd.DataFrame({OUTPUT: np.zeros(0), LABEL: np.array([], dtype=object)})
    return pd.concat(parts, ignore_index=True)


def score_frame(frame: pd.DataFrame, model, title_column: str = "title", batch_size: int = 256,
                threshold: float | None = None, source: Path | str = "input",
                progress: bool | None = None) -> pd.DataFrame:
    """`frame` with `fake_probability` and `predicted_label` (fake/real) added: the model's
    own label, or the label at `threshold` when one is given.

    `model` is anything with the pyfunc `predict` (a DataFrame with a `title` column in, a
    DataFrame with `fake_probability` and `predicted_label` out), e.g.
    `mlflow.pyfunc.load_model(uri)`.
    """
    from fakenews.tracking.pyfunc import LABEL, OUTPUT

    titles = checked_titles(frame, title_column, source)
    scores = predict_in_batches(model, titles, batch_size, progress)
    probabilities, labels = scores[OUTPUT].to_numpy(), scores[LABEL].to_numpy()
    if threshold is not None:
        labels = np.where(probabilities >= threshold, "fake", "real")  # >= as in binary_metrics
    return frame.assign(**{OUTPUT: probabilities, LABEL: labels})


# ---- finding and loading the model --------------------------------------------------------


def default_model_uri(params_path: Path | str = DEFAULT_PARAMS) -> str:
    """The registry champion: models:/<evaluate.registered_model>@champion."""
    from fakenews.tracking.registry import CHAMPION

    return f"models:/{stage_params('evaluate', params_path)['registered_model']}@{CHAMPION}"


def loadable_uri(model: str) -> str:
    """A URI mlflow can load: URIs pass through; a local folder must be a model or a training output."""
    scheme = urlparse(model).scheme
    if scheme not in ("", "file"):
        return model
    folder = Path(urlparse(model).path if scheme == "file" else model).expanduser()
    if (folder / "MLmodel").is_file():
        return str(folder)
    if (folder / "mlflow_run.json").is_file():  # written by the training stages (publish_model)
        return read_json(folder / "mlflow_run.json")["model_uri"]
    what = "is neither an MLflow model folder (no MLmodel file) nor" if folder.exists() else "not found; not"
    raise PipelineError(f"{folder}: {what} a training output with mlflow_run.json; "
                        "give a models:/ or runs:/ URI, or a folder from `mlflow artifacts download`")


def load_model(model: str):
    """The pyfunc model at `model`; PipelineError naming the URI when it cannot be loaded."""
    uri = loadable_uri(model)
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    from fakenews.tracking.runs import connect

    if urlparse(uri).scheme in SERVER_SCHEMES:
        try:
            connect()
        except PipelineError as err:
            raise PipelineError(f"cannot load the model {uri}: {err}") from None
    try:
        return mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as err:
        message = getattr(err, "message", None) or str(err)
        raise PipelineError(f"cannot load the model {uri}: {message.rstrip('.')}{_registry_hint(uri)}") from None


def _registry_hint(uri: str) -> str:
    match = REGISTERED.match(uri)
    if not match:
        return ""
    return (f"; see its aliases with `python -m tools.promote --model "
            f"{match['name']} show`, or train and evaluate one with `dvc repro`")


def describe(uri: str) -> str:
    """`uri`, with the version an alias points at, so the log says which model scored."""
    match = REGISTERED.match(uri)
    if not (match and match["alias"]):
        return uri
    from mlflow.tracking import MlflowClient

    from fakenews.tracking.registry import alias_version

    version = alias_version(MlflowClient(), match["name"], match["alias"])
    return f"{uri} (version {version})" if version else uri


# ---- files and the command line -----------------------------------------------------------


def separator_for(path: Path | str) -> str:
    """Tab for .tsv/.tab files (also compressed, e.g. .tsv.gz), comma otherwise."""
    return "\t" if {".tsv", ".tab"} & {s.lower() for s in Path(path).suffixes} else ","


def write_table(frame: pd.DataFrame, target: Path, sep: str) -> None:
    if target.is_dir():  # atomic_path would replace the whole folder
        raise PipelineError(f"{target}: is a folder; give --output a file name")
    write_csv(frame, target, sep)


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
    parser = Parser(prog="python -m tools.score", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--input", required=True, type=Path, metavar="FILE", help="CSV or TSV of headlines, with a header line")
    add("--output", required=True, type=Path, metavar="FILE",
        help="where to write the scored table (CSV; TSV when it ends in .tsv)")
    add("--model", metavar="URI|FOLDER",
        help="model URI or folder (default: models:/<evaluate.registered_model from --params>@champion)")
    add("--title-column", default="title", metavar="NAME",
        help="column holding the headlines (default: %(default)s)")
    add("--sep", metavar="CHAR",
        help="field separator of input and output (default: by extension, tab for .tsv/.tab, else comma)")
    add("--encoding", default="utf-8", metavar="NAME", help="encoding of the input (default: %(default)s)")
    add("--batch-size", type=_positive_int, default=256, metavar="N",
        help="titles per model call (default: %(default)s)")
    add("--threshold", type=_probability, metavar="P",
        help="fake_probability at or above which the label is fake (default: the threshold "
        "the model chose on validation)")
    add("--params", default=str(DEFAULT_PARAMS), metavar="FILE", help="params file (default: %(default)s)")
    return parser


def summary(scored: pd.DataFrame, title_column: str, model: str, threshold: float | None) -> str:
    """Counts per label, and of empty titles, which a wrong --title-column would show up as."""
    fake = int((scored["predicted_label"] == "fake").sum())
    empty = int(scored[title_column].str.strip().eq("").sum())
    return (f"{len(scored)} titles scored with {describe(model)}: {fake} fake, {len(scored) - fake} real"
            + (f" at threshold {threshold}" if threshold is not None else " at the model's threshold")
            + (f"; {empty} empty or whitespace-only titles scored as the empty headline" if empty else ""))


@cli_errors
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    frame = read_csv_file(args.input, encoding_fix="pass --encoding", encoding=args.encoding,
                          sep=args.sep or separator_for(args.input))
    checked_titles(frame, args.title_column, args.input)  # fail before the slow model load
    uri = loadable_uri(args.model or default_model_uri(args.params))
    model = load_model(uri)
    scored = score_frame(frame, model, args.title_column, args.batch_size, args.threshold, args.input)
    write_table(scored, args.output, args.sep or separator_for(args.output))
    print(f"score: wrote {args.output} from {args.input}; "
          + summary(scored, args.title_column, uri, args.threshold))


if __name__ == "__main__":
    main()
