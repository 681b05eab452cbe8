"""How each family turns headlines into fake-probabilities inside its logged model; the
model's config names its scorer (fakenews.tracking.pyfunc.HeadlineModel picks it).

- `saved_model` (BERT): a TF SavedModel whose tokenizer and encoder are inside it;
- `cleaned_tokens` (LSTM): NLTK cleaning and the vocabulary, then a TF SavedModel;
- `tfidf` (TF-IDF): a scikit-learn pipeline saved with skops;
- `ensemble`: the members' own logged models, their probabilities blended
  (fakenews.models.blend).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fakenews.data.schema import OUTPUT, TITLE


class SavedModelScorer:
    """A TF SavedModel whose serving signature maps strings to fake-probabilities.

    Used for BERT, whose tokenizer and encoder live inside the SavedModel. The serving
    function cuts each batch to its longest title, so rows are batched by their exact
    word-piece count (counted with the SavedModel's own tokenizer): no batch carries any
    padding, and each row's probability is what it would be alone. `batch_size` rows at
    most per call; `inference_precision: bfloat16` runs the same graph through oneDNN's
    bfloat16 rewrite (fakenews.precision).
    """

    def __init__(self, artifacts: dict[str, str], config: dict[str, Any]) -> None:
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

        from fakenews.precision import check_precision

        loaded = tf.saved_model.load(artifacts["saved_model"])
        self.serve = loaded.signatures["serving_default"]
        # train_bert's SavedModels carry the hub preprocessor (for its vocabulary table).
        self.tokenize = getattr(getattr(loaded, "preprocessor", None), "tokenize", None)
        self.batch_size = int(config.get("batch_size", 128))
        self.bfloat16 = (
            check_precision(config.get("inference_precision", "float32"), "inference_precision")
            == "bfloat16"
        )

    def score(self, titles: list[str]) -> np.ndarray:
        import tensorflow as tf

        from fakenews.precision import bfloat16_compute

        texts = np.asarray(titles, dtype=object)
        probabilities = np.empty(len(titles))
        with bfloat16_compute(self.bfloat16):
            for rows in self.batches(titles):
                result = self.serve(tf.constant(texts[rows]))
                probabilities[rows] = next(iter(result.values())).numpy().reshape(-1)
        return probabilities

    def batches(self, titles: list[str]) -> list[np.ndarray]:
        """Row indices per call: equal word-piece counts together (similar character
        lengths for a SavedModel without a tokenizer), at most batch_size each."""
        if self.tokenize is None:
            lengths, exact = np.array([len(t) for t in titles]), False
        else:
            import tensorflow as tf

            pieces = self.tokenize(tf.constant(np.asarray(titles, dtype=object)))
            if pieces.shape.rank > 2:  # [titles, words, pieces]
                pieces = pieces.merge_dims(1, -1)
            lengths, exact = pieces.row_lengths().numpy(), True
        order = np.argsort(lengths, kind="stable")
        sorted_lengths = lengths[order]
        starts = np.flatnonzero(np.diff(sorted_lengths)) + 1 if exact else []
        return [
            chunk
            for group in np.split(order, starts)
            for chunk in np.split(group, range(self.batch_size, len(group), self.batch_size))
        ]


class CleanedTokensScorer:
    """The LSTM: NLTK cleaning and the vocabulary travel with the model."""

    def __init__(self, artifacts: dict[str, str], config: dict[str, Any]) -> None:
        import tensorflow as tf

        from fakenews.data.sections import CleanParams
        from fakenews.text import use_nltk_data

        use_nltk_data(artifacts["nltk_data"])
        self.cleaning = CleanParams.model_validate(
            {**config["clean"], "nltk_data": artifacts["nltk_data"]}
        )
        self.config = config
        vocab = Path(artifacts["vocab"]).read_text(encoding="utf-8").splitlines()
        self.index = {w: i for i, w in enumerate(vocab)}
        self.serve = tf.saved_model.load(artifacts["saved_model"]).signatures["serving_default"]
        self.batch_size = int(config.get("batch_size", 256))

    def score(self, titles: list[str]) -> np.ndarray:
        return self.probabilities(self.token_ids(titles))

    def token_ids(self, titles: list[str]) -> np.ndarray:
        """NLTK cleaning, then the vocabulary lookup, both in Python: [titles, max_length] ids."""
        from fakenews.text import clean_titles

        return self.encode(clean_titles(titles, self.cleaning))

    def encode(self, tokens: list[list[str]]) -> np.ndarray:
        from fakenews.vocabulary import encode

        spec = self.config["encode"]
        return np.array(
            [encode(t, self.index, int(spec["max_length"]), spec["padding"]) for t in tokens],
            dtype=np.int32,
        )

    def probabilities(self, ids: np.ndarray) -> np.ndarray:
        """The LSTM graph over token ids, batch_size rows per call."""
        import tensorflow as tf

        out = [
            next(iter(self.serve(tf.constant(ids[i : i + self.batch_size])).values()))
            .numpy()
            .reshape(-1)
            for i in range(0, len(ids), self.batch_size)
        ]
        return np.concatenate(out)


class TfidfScorer:
    """TF-IDF + logistic regression over the lowercased headline, as it was fitted
    (fakenews.models.tfidf.model_text)."""

    def __init__(self, artifacts: dict[str, str], config: dict[str, Any]) -> None:
        from fakenews.models import tfidf

        self.model = tfidf.load(artifacts["pipeline"])

    def score(self, titles: list[str]) -> np.ndarray:
        from fakenews.models import tfidf

        frame = pd.DataFrame({TITLE: titles})
        return self.model.predict_proba(tfidf.model_text(frame, tfidf.SERVED_TEXT))[:, 1]


class EnsembleScorer:
    """The members' logged models, each loaded from its artifact folder and scoring the
    same headlines, their probabilities blended as the blend stage fitted on validation."""

    def __init__(self, artifacts: dict[str, str], config: dict[str, Any]) -> None:
        import mlflow.pyfunc

        from fakenews.models.blend import Blend

        self.blend = Blend.from_config(config["blend"])
        self.members = {
            m: mlflow.pyfunc.load_model(artifacts[f"member_{m}"]) for m in self.blend.members
        }

    def member_probabilities(self, titles: list[str]) -> dict[str, np.ndarray]:
        frame = pd.DataFrame({TITLE: titles})
        return {
            m: model.predict(frame)[OUTPUT].to_numpy(dtype=float)
            for m, model in self.members.items()
        }

    def score(self, titles: list[str]) -> np.ndarray:
        return self.blend.scores(self.member_probabilities(titles))


SCORERS = {
    "saved_model": SavedModelScorer,
    "cleaned_tokens": CleanedTokensScorer,
    "tfidf": TfidfScorer,
    "ensemble": EnsembleScorer,
}
