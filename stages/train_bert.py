"""train_bert: fine-tune a BERT encoder on raw headlines through TF Hub layers
(fakenews.models.bert), logged to MLflow as a pyfunc that takes raw headlines (tokenizer
and encoder travel inside its SavedModel; the decision threshold is chosen on validation).
`inference_precision` is the logged model's default for scoring."""

from __future__ import annotations

import pandas as pd

from fakenews.cli import stage_arg_parser
from fakenews.data.params import load_params, project_path
from fakenews.data.sections import TrainBertParams
from fakenews.data.splits import load_splits
from fakenews.errors import cli_errors
from fakenews.models import bert

STAGE = "train_bert"
COLUMNS = ["id", "title"]


def train_bert(parts: dict[str, pd.DataFrame], params: TrainBertParams, callbacks: list = ()):
    """The core: (model, history) from the train and val splits; test stays unseen."""
    return bert.train(parts["train"], parts["val"], params, callbacks)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = stage_arg_parser(STAGE, "Fine-tune BERT and log it to MLflow.")
    all_params = load_params(parser.parse_args(argv).params)
    params, paths = all_params.train_bert, all_params.paths
    from fakenews.distribution import chief_only, is_chief, replica_tags, strategy_for
    from fakenews.tracking.publishing import publish_keras
    from fakenews.tracking.runs import start_run
    from fakenews.training import conclude, epoch_logger

    strategy, chief = strategy_for(params, STAGE), is_chief()  # before TensorFlow runs anything
    assignment, ingested = project_path(paths.split), project_path(paths.ingested)
    splits = load_splits(assignment, ingested, COLUMNS)
    parts = {name: splits[name] for name in ("train", "val")}
    hub_inputs = [
        project_path(handle)
        for handle in (params.preprocess_handle, params.encoder_handle)
        if "://" not in handle
    ]
    config = {
        "scorer": "saved_model",
        "seq_length": params.seq_length,
        "batch_tokens": params.scoring_batch_tokens,
        "inference_precision": params.inference_precision,
    }

    with chief_only(
        chief,
        start_run(
            STAGE,
            {STAGE: params.model_dump()},
            input_paths=[assignment, ingested, *hub_inputs],
            datasets={"train": assignment, "val": assignment},
            extra_tags=replica_tags(strategy),
        ),
    ) as run:
        with strategy.scope():
            model, history = train_bert(parts, params, [epoch_logger(run)] if chief else [])
        conclude(
            STAGE,
            run,
            model,
            bert.input_spec(),
            history,
            parts["val"]["label"].to_numpy(),
            bert.predict(model, parts["val"]["title"].tolist()),
            lambda threshold: publish_keras(
                run,
                "bert",
                model,
                bert.input_spec(),
                {},
                {**config, "threshold": threshold},
                project_path(paths.models_dir) / "bert",
            ),
            project_path(paths.metrics_dir),
        )


if __name__ == "__main__":
    main()
