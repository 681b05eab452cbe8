"""The references every model is measured against, fitted on the training split only:
TF-IDF + logistic regression (word n-grams, optionally character n-grams within words,
C and the decision threshold chosen on validation) and the majority class."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fakenews.data.sections import ReferenceParams
from fakenews.evaluation import choose_threshold

# {name: (test probabilities, threshold)}
Predictions = dict[str, tuple[np.ndarray, float]]


def reference_predictions(
    train: pd.DataFrame,
    val: pd.DataFrame,
    test: pd.DataFrame,
    references: dict[str, ReferenceParams],
) -> Predictions:
    """Every TF-IDF reference of `references` and the majority class on test."""
    predictions = {}
    for name, spec in references.items():
        model, threshold = tfidf_reference(train, val, spec)
        predictions[name] = (model.predict_proba(reference_text(test, spec))[:, 1], threshold)
    majority_rate = float(train["label"].mean() >= 0.5)
    predictions["majority"] = (np.full(len(test), majority_rate), 0.5)
    return predictions


def reference_text(frame: pd.DataFrame, spec: ReferenceParams) -> pd.Series:
    """The text a reference reads: the lowercased headline or the cleaned tokens."""
    if spec.text == "title":
        return frame["title"].str.lower()
    return frame["tokens"].map(" ".join)


def tfidf_reference(train: pd.DataFrame, val: pd.DataFrame, spec: ReferenceParams):
    """Word n-grams (plus character n-grams within words when `char_ngram_range` is set),
    sublinear TF-IDF, logistic regression: each C of `logreg_c` is fitted on train and the
    one with the best validation ROC-AUC kept, with the threshold it chooses on validation."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
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
    x_train, x_val = reference_text(train, spec), reference_text(val, spec)
    y_val = val["label"].to_numpy()
    best = None
    for c in spec.logreg_c:
        model = make_pipeline(make_union(*features), LogisticRegression(C=c, max_iter=3000))
        probabilities = model.fit(x_train, train["label"]).predict_proba(x_val)[:, 1]
        score = roc_auc_score(y_val, probabilities) if len(np.unique(y_val)) == 2 else 0.0
        if best is None or score > best[0]:
            best = (score, model, probabilities)
    _, model, probabilities = best
    return model, choose_threshold(y_val, probabilities)
