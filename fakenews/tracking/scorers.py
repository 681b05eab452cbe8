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
    """BERT: a TF SavedModel whose tokenizer and encoder are inside it.

    A table is tokenized in one call: every title packed into word-piece ids ([CLS],
    pieces, [SEP], cut at seq_length). Rows are then grouped by their exact word-piece
    count, so no batch carries padding and each row's probability is what it would be
    alone, and each group is cut into batches of about `batch_tokens` word pieces. Only
    numbers go through the SavedModel's `classify`: the encoder and head, without the
    tokenizer. All batches run in one TensorFlow call (a graph loop over them, a few in
    flight at once to keep both cores busy between matmuls), not one Python call each.
    `inference_precision: bfloat16` runs `classify_bfloat16` (bfloat16 matmuls, float32
    layer norms; fakenews.hub.encoder), or, for an encoder without that pass, `classify`
    through oneDNN's bfloat16 rewrite (fakenews.precision).
    """

    BATCHES_IN_FLIGHT = 10

    def __init__(self, artifacts: dict[str, str], config: dict[str, Any]) -> None:
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

        from fakenews.precision import check_precision

        # Held: its functions only reference the variables it owns.
        self.saved_model = loaded = tf.saved_model.load(artifacts["saved_model"])
        self.preprocessor = loaded.preprocessor
        self.seq_length = int(config["seq_length"])
        self.batch_tokens = int(config.get("batch_tokens", 8192))
        precision = config.get("inference_precision", "float32")
        self.bfloat16 = check_precision(precision, "inference_precision") == "bfloat16"
        native = self.bfloat16 and hasattr(loaded, "classify_bfloat16")
        self.classify = loaded.classify_bfloat16 if native else loaded.classify
        self.rewrite = self.bfloat16 and not native
        self._all_batches = None  # traced on first use, around whatever classify is then

    def score(self, titles: list[str]) -> np.ndarray:
        import tensorflow as tf

        from fakenews.precision import bfloat16_compute

        word_ids, lengths = self.encoder_inputs(titles)
        batches = self.batches(lengths)
        order = np.concatenate([rows for rows, _ in batches])
        sizes = tf.constant([len(rows) for rows, _ in batches], tf.int32)
        widths = tf.constant([length for _, length in batches], tf.int32)
        if self._all_batches is None:
            self._all_batches = self._batch_loop()
        with bfloat16_compute(self.rewrite):
            in_order = self._all_batches(tf.constant(word_ids[order]), sizes, widths)
        probabilities = np.empty(len(titles))
        probabilities[order] = in_order.numpy()
        return probabilities

    def _batch_loop(self):
        """One graph for a whole table: word ids sorted into consecutive batches (`sizes`
        rows each, the first `widths` columns) → their probabilities, in that order."""
        import tensorflow as tf

        classify, in_flight = self.classify, self.BATCHES_IN_FLIGHT

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None], tf.int32),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None], tf.int32),
            ]
        )
        def all_batches(word_ids, sizes, widths):
            starts = tf.cumsum(sizes, exclusive=True)
            out = tf.TensorArray(tf.float32, size=tf.size(sizes), infer_shape=False)
            for b in tf.range(tf.size(sizes)):
                tf.autograph.experimental.set_loop_options(parallel_iterations=in_flight)
                ids = word_ids[starts[b] : starts[b] + sizes[b], : widths[b]]
                inputs = {
                    "input_word_ids": ids,
                    "input_mask": tf.ones_like(ids),
                    "input_type_ids": tf.zeros_like(ids),
                }
                out = out.write(b, classify(inputs)["fake_probability"])
            return out.concat()

        return all_batches

    def encoder_inputs(self, titles: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """[titles, seq_length] word-piece ids, and each title's count of them with
        [CLS] and [SEP]: the tokenizer's one call for the whole table."""
        import tensorflow as tf

        pieces = self.preprocessor.tokenize(tf.constant(np.asarray(titles, dtype=object)))
        packed = self.preprocessor.bert_pack_inputs([pieces], tf.constant(self.seq_length))
        return packed["input_word_ids"].numpy(), packed["input_mask"].numpy().sum(axis=1)

    def batches(self, lengths: np.ndarray) -> list[tuple[np.ndarray, int]]:
        """(row indices, their word-piece count) per call: equal counts together, about
        batch_tokens word pieces (at least one row) each."""
        order = np.argsort(lengths, kind="stable")
        groups = np.split(order, np.flatnonzero(np.diff(lengths[order])) + 1)
        batches = []
        for group in groups:
            length = int(lengths[group[0]])
            rows = max(1, self.batch_tokens // length)
            batches += [(chunk, length) for chunk in np.split(group, range(rows, len(group), rows))]
        return batches


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
        return self.probabilities(*self.token_ids(titles))

    def token_ids(self, titles: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Cleaning (fakenews.text), then the vocabulary: [titles, max_length] padded ids
        and each title's count of ids."""
        from fakenews.text import clean_titles

        return self.encode(clean_titles(titles, self.cleaning))

    def encode(self, tokens: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        from fakenews.vocabulary import encode_many

        spec = self.config["encode"]
        return encode_many(tokens, self.index, int(spec["max_length"]), spec["padding"])

    def probabilities(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The LSTM graph over token ids, batch_size rows per call. A length-invariant
        model (fakenews.models.lstm) gets rows of similar length, each batch cut to its
        longest row: the padding columns no row uses never run through the LSTM."""
        import tensorflow as tf

        spec = self.config["encode"]
        rows, width = ids.shape
        cut = spec["cut_to_longest"]
        order = np.argsort(lengths, kind="stable") if cut else np.arange(rows)
        probabilities = np.empty(rows)
        for start in range(0, rows, self.batch_size):
            batch = order[start : start + self.batch_size]
            keep = max(1, int(lengths[batch].max())) if cut else width
            columns = slice(width - keep, None) if spec["padding"] == "pre" else slice(0, keep)
            result = self.serve(tf.constant(ids[batch, columns]))
            probabilities[batch] = next(iter(result.values())).numpy().reshape(-1)
        return probabilities


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
