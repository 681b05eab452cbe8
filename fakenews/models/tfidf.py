"""The TF-IDF family: word n-grams (and character n-grams within words) of the headline,
sublinear TF-IDF, logistic regression. Fitted on train, C and the decision threshold chosen
on validation; saved with skops, which loads only the scikit-learn types it expects, so a
tampered artifact cannot run code on load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fakenews.data.sections import TfidfParams, TrainTfidfParams
from fakenews.errors import PipelineError
from fakenews.evaluation import choose_threshold

# What a saved pipeline may hold: the estimators `build` makes and what they hold.
TRUSTED_TYPES = [
    "scipy.sparse._csr.csr_matrix",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.pipeline.Pipeline",
]


SERVED_TEXT = TrainTfidfParams()  # the served family reads what it was fitted on: the title


def model_text(frame: pd.DataFrame, spec: TfidfParams) -> pd.Series:
    """What the model reads: the lowercased headline, or the cleaned tokens joined."""
    if spec.text == "title":
        return frame["title"].str.lower()
    return frame["tokens"].map(" ".join)


def build(spec: TfidfParams, c: float):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = [TfidfVectorizer(ngram_range=tuple(spec.word_ngram_range), sublinear_tf=True)]
    if spec.char_ngram_range:
        features.append(
            TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=tuple(spec.char_ngram_range),
                min_df=spec.char_min_df,
                sublinear_tf=True,
            )
        )
    return make_pipeline(make_union(*features), LogisticRegression(C=c, max_iter=3000))


def fit(train: pd.DataFrame, val: pd.DataFrame, spec: TfidfParams):
    """(pipeline, threshold, C): each C of `logreg_c` fitted on train, the one with the best
    validation ROC-AUC kept, with the threshold it chooses on validation."""
    from sklearn.metrics import roc_auc_score

    x_train, x_val = model_text(train, spec), model_text(val, spec)
    y_val = val["label"].to_numpy()
    best = None
    for c in spec.logreg_c:
        model = build(spec, c).fit(x_train, train["label"])
        probabilities = model.predict_proba(x_val)[:, 1]
        score = roc_auc_score(y_val, probabilities) if len(np.unique(y_val)) == 2 else 0.0
        if best is None or score > best[0]:
            best = (score, model, probabilities, c)
    _, model, probabilities, c = best
    return model, choose_threshold(y_val, probabilities), c


def save(model, target: Path) -> None:
    import skops.io as sio

    sio.dump(model, target)


def load(path: Path | str):
    """The saved pipeline; a PipelineError when the file holds any type it should not."""
    import skops.io as sio

    untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
    if untrusted:
        raise PipelineError(
            f"{path}: refusing to load types a TF-IDF model never holds: {', '.join(untrusted)}"
        )
    return sio.load(path, trusted=TRUSTED_TYPES)
