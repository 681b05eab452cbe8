"""train_lstm: the reference LSTM (fakenews.models.lstm) on cleaned tokens and pretrained
word vectors, logged to MLflow as a pyfunc that takes raw headlines (its NLTK cleaning,
vocabulary, padding and validation-chosen threshold travel with it)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from fakenews.cli import stage_arg_parser
from fakenews.data.params import load_params, project_path
from fakenews.data.sections import CleanParams, Params, TrainLstmParams
from fakenews.data.splits import load_splits
from fakenews.errors import cli_errors
from fakenews.models import lstm

STAGE = "train_lstm"
COLUMNS = ["id", "title", "tokens"]


def train_lstm(
    parts: dict[str, pd.DataFrame],
    words: list[str],
    vectors: np.ndarray,
    params: TrainLstmParams,
    cleaning: CleanParams,
    clean_stage: CleanParams,
    callbacks: list = (),
):
    """The core: (model, history, inputs) from the train and val splits (test stays unseen
    until evaluate), tokens as the LSTM cleans them, and the embed stage's vectors."""
    parts = lstm.tokens_for(parts, cleaning, clean_stage)
    inputs = lstm.encode_inputs(parts, words, vectors, params)
    labels = {name: part["label"].to_numpy() for name, part in parts.items()}
    model, history = lstm.train(
        inputs.ids["train"],
        labels["train"],
        inputs.ids["val"],
        labels["val"],
        inputs.embeddings,
        params,
        callbacks,
    )
    return model, history, inputs


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = stage_arg_parser(STAGE, "Train the LSTM and log it to MLflow.")
    all_params: Params = load_params(parser.parse_args(argv).params)
    params, paths = all_params.train_lstm, all_params.paths
    from fakenews.distribution import chief_only, is_chief, replica_tags, strategy_for
    from fakenews.tracking.publishing import publish_keras
    from fakenews.tracking.runs import start_run
    from fakenews.training import conclude, epoch_logger

    strategy, chief = strategy_for(params, STAGE), is_chief()  # before TensorFlow runs anything
    assignment, cleaned = project_path(paths.split), project_path(paths.cleaned)
    embedded = project_path(paths.embedded_dir)
    splits = load_splits(assignment, cleaned, COLUMNS)
    parts = {name: splits[name] for name in ("train", "val")}
    words = (embedded / "words.txt").read_text(encoding="utf-8").splitlines()
    cleaning = all_params.lstm_cleaning()
    logged = {STAGE: params.model_dump(), "clean": all_params.clean.model_dump()}

    with (
        chief_only(
            chief,
            start_run(
                STAGE,
                logged,
                input_paths=[assignment, cleaned, embedded],
                datasets={"train": assignment, "val": assignment},
                extra_tags=replica_tags(strategy),
            ),
        ) as run,
        tempfile.TemporaryDirectory() as work,
    ):
        with strategy.scope():
            model, history, inputs = train_lstm(
                parts,
                words,
                np.load(embedded / "vectors.npy"),
                params,
                cleaning,
                all_params.clean,
                [epoch_logger(run)] if chief else [],
            )
        print(f"{STAGE}: {len(inputs.vocab)} words in the vocabulary (train split)")
        vocab_file = Path(work) / "vocab.txt"
        vocab_file.write_text("\n".join(inputs.vocab) + "\n", encoding="utf-8")
        artifacts = {"vocab": str(vocab_file), "nltk_data": str(project_path(cleaning.nltk_data))}
        config = {
            "scorer": "cleaned_tokens",
            "clean": cleaning.model_dump(),
            "encode": {
                "max_length": params.max_length,
                "padding": params.padding,
                "cut_to_longest": lstm.length_invariant(params),
            },
        }
        conclude(
            STAGE,
            run,
            model,
            lstm.input_spec(params),
            history,
            parts["val"]["label"].to_numpy(),
            lstm.predict(model, inputs.ids["val"]),
            lambda threshold: publish_keras(
                run,
                "lstm",
                model,
                lstm.input_spec(params),
                artifacts,
                {**config, "threshold": threshold},
                project_path(paths.models_dir) / "lstm",
            ),
            project_path(paths.metrics_dir),
        )


if __name__ == "__main__":
    main()
