"""The references the trained families are measured against beside one another, fitted on
the training split only: any TF-IDF variant of `evaluate.references` (fakenews.models.tfidf)
and the majority class."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fakenews.data.sections import TfidfParams
from fakenews.models import tfidf

# {name: (test probabilities, threshold)}
Predictions = dict[str, tuple[np.ndarray, float]]


def reference_predictions(
    train: pd.DataFrame,
    val: pd.DataFrame,
    test: pd.DataFrame,
    references: dict[str, TfidfParams],
) -> Predictions:
    """Every TF-IDF reference of `references` and the majority class on test."""
    predictions = {}
    for name, spec in references.items():
        model, threshold, _ = tfidf.fit(train, val, spec)
        predictions[name] = (model.predict_proba(tfidf.model_text(test, spec))[:, 1], threshold)
    majority_rate = float(train["label"].mean() >= 0.5)
    predictions["majority"] = (np.full(len(test), majority_rate), 0.5)
    return predictions
