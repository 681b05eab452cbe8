"""The MLflow pyfunc face of every model: raw headlines in, fake-probabilities out.

Models are logged from code (fakenews/tracking/model_code.py), not pickled: loading
one runs that file, which builds a HeadlineModel, and its `load_context` picks the scorer
named in the model's config (fakenews.tracking.scorers: one per family, and the ensemble).

    model = mlflow.pyfunc.load_model("models:/fake-news-bert@champion")
    model.predict(pd.DataFrame({"title": ["Aliens endorse candidate", "Senate passes budget"]}))

Input rules, the same for every model:
- a DataFrame with a `title` column (a list of strings or a Series also works);
- a missing value (None/NaN) or a non-string value is an error naming the rows;
- an empty or whitespace-only title is scored as the empty headline (the model's prior);
- titles longer than MAX_TITLE_CHARS (1,000) are cut to that length, not rejected;
- any Unicode text is accepted.
Output: a DataFrame, row for row, with `fake_probability` (float in [0, 1]) and
`predicted_label` ("fake" or "real", at the threshold the model chose on validation).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from fakenews.data.schema import LABEL, OUTPUT, TITLE, non_string_rows
from fakenews.errors import PipelineError

MAX_TITLE_CHARS = 1000


class InvalidHeadlines(MlflowException, PipelineError):
    """Bad model input. As an MlflowException, `mlflow models serve` answers HTTP 400 with
    this message; as a PipelineError, the CLIs print it as one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def titles_from(model_input: Any, max_chars: int = MAX_TITLE_CHARS) -> list[str]:
    """Validate and normalise the input described in the module docstring."""
    if isinstance(model_input, pd.DataFrame):
        if TITLE not in model_input.columns:
            found = ", ".join(map(str, model_input.columns)) or "(none)"
            raise InvalidHeadlines(f"input has no '{TITLE}' column; columns found: {found}")
        values = model_input[TITLE].tolist()
    elif isinstance(model_input, (pd.Series, list, tuple, np.ndarray)):
        values = list(model_input)
    else:
        raise InvalidHeadlines(
            f"input must be a DataFrame with a '{TITLE}' column, not {type(model_input).__name__}"
        )
    bad = non_string_rows(values)
    if bad:
        raise InvalidHeadlines(f"'{TITLE}' must be a string in every row; not in {bad}")
    return [v.strip()[:max_chars] for v in values]


def output_frame(probabilities: np.ndarray, threshold: float) -> pd.DataFrame:
    probabilities = np.asarray(probabilities, dtype="float64").reshape(-1)
    # >= as in fakenews.training.binary_metrics
    return pd.DataFrame(
        {OUTPUT: probabilities, LABEL: np.where(probabilities >= threshold, "fake", "real")}
    )


def signature_and_example():
    """The pyfunc signature (title → fake_probability, predicted_label) and an input example."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(
        inputs=Schema([ColSpec("string", TITLE)]),
        outputs=Schema([ColSpec("double", OUTPUT), ColSpec("string", LABEL)]),
    )
    example = pd.DataFrame(
        {
            TITLE: [
                "Senate passes the annual budget bill",
                "Celebrity secretly married to alien, insiders say",
            ]
        }
    )
    return signature, example


class HeadlineModel(mlflow.pyfunc.PythonModel):
    """Validates the input (module docstring), then scores with the configured scorer."""

    def load_context(self, context) -> None:
        from fakenews.tracking.scorers import SCORERS

        config = json.loads(Path(context.artifacts["config"]).read_text(encoding="utf-8"))
        config.update(getattr(context, "model_config", None) or {})  # see LOAD_OVERRIDES
        self.config = config
        self.scorer = SCORERS[config["scorer"]](context.artifacts, config)

    # The DataFrame hint tells MLflow there is nothing to infer from it (the signature is
    # explicit); a list or Series of titles is accepted all the same.
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        titles = titles_from(model_input, int(self.config.get("max_title_chars", MAX_TITLE_CHARS)))
        threshold = float(self.config.get("threshold", 0.5))
        if not titles:
            return output_frame(np.zeros(0), threshold)
        return output_frame(self.scorer.score(titles), threshold)


# Config keys a caller may override when loading a model, e.g.
# mlflow.pyfunc.load_model(uri, model_config={"inference_precision": "bfloat16"}), or for
# `mlflow models serve` through MLFLOW_PYFUNC_INFERENCE_CONFIG='{"inference_precision": ...}'.
# MLflow passes on only the keys the model was logged with (and warns about others).
LOAD_OVERRIDES = ("inference_precision", "batch_tokens")
MODEL_CODE = Path(__file__).with_name("model_code.py")


def log_headline_model(
    run, artifacts: dict[str, str], config: dict[str, Any], work_dir: Path, name: str = "model"
):
    """Log a headline model (from code) to the active run; returns its ModelInfo.

    MLflow loads the logged model back and scores the input example before it returns,
    so a model that cannot serve fails here, at training time.
    """
    from fakenews.data.params import PROJECT_ROOT
    from fakenews.tracking.scorers import SCORERS

    if config.get("scorer") not in SCORERS:
        raise ValueError(f"config['scorer'] must be one of {sorted(SCORERS)}")
    config_path = work_dir / "model_config.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    signature, example = signature_and_example()
    return run.call(
        mlflow.pyfunc.log_model,
        name=name,
        python_model=str(MODEL_CODE),
        artifacts={**artifacts, "config": str(config_path)},
        code_paths=[str(PROJECT_ROOT / "fakenews")],
        signature=signature,
        input_example=example,
        model_config={key: config[key] for key in LOAD_OVERRIDES if key in config} or None,
        pip_requirements=_model_requirements(),
    )


def _model_requirements() -> list[str]:
    """The serving subset of requirements.txt, pinned the same way."""
    from fakenews.data.params import PROJECT_ROOT

    wanted = (
        "tensorflow",
        "tf-keras",
        "tensorflow-hub",
        "tensorflow-text",
        "nltk",
        "pandas",
        "numpy",
        "mlflow",
        "pyyaml",
        "scikit-learn",
    )
    lines = (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
    return [line for line in lines if line.split("==")[0] in wanted]
