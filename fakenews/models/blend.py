"""The ensemble: the trained families' fake-probabilities combined into one, fitted on the
validation split alone (the test split is for judging it, like any model).

- `weighted_average`: Σ wᵢ·pᵢ with weights on the simplex, searched on a grid of
  `weight_step` for the best validation objective (ties go to the weights nearest equal);
- `logistic_stacking`: a logistic regression on the members' log-odds; its validation
  predictions are cross-fitted (`stacking_folds`), so the threshold is chosen on rows the
  stacker did not see.

Either way the decision threshold is chosen on validation, as every family chooses its own.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fakenews.data.sections import BlendParams
from fakenews.errors import PipelineError
from fakenews.evaluation import choose_threshold

EPSILON = 1e-6  # log-odds of 0 and 1 are infinite; members' probabilities are clipped to this


@dataclass(frozen=True)
class Blend:
    method: str
    members: list[str]
    weights: dict[str, float]  # the simplex weights, or the stacker's coefficients
    intercept: float  # the stacker's; 0 for a weighted average
    threshold: float

    def scores(self, probabilities: dict[str, np.ndarray]) -> np.ndarray:
        """The ensemble's fake-probability of each row, from each member's."""
        missing = [m for m in self.members if m not in probabilities]
        if missing:
            raise PipelineError(f"the ensemble needs the probabilities of {missing}")
        if self.method == "weighted_average":
            return sum(self.weights[m] * np.asarray(probabilities[m], float) for m in self.members)
        z = self.intercept + sum(self.weights[m] * log_odds(probabilities[m]) for m in self.members)
        return 1.0 / (1.0 + np.exp(-z))

    def as_config(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Blend:
        fields = ("method", "members", "weights", "intercept", "threshold")
        return cls(**{name: config[name] for name in fields})


def log_odds(probabilities: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probabilities, float), EPSILON, 1 - EPSILON)
    return np.log(p / (1 - p))


def simplex_grid(members: int, step: float) -> list[tuple[float, ...]]:
    """Every weight vector of `members` non-negative multiples of `step` summing to 1."""
    units = round(1 / step)
    return [
        tuple(k / units for k in (*combo, units - sum(combo)))
        for combo in itertools.product(range(units + 1), repeat=members - 1)
        if sum(combo) <= units
    ]


def objective(labels: np.ndarray, scores: np.ndarray, name: str) -> float:
    """Higher is better."""
    from sklearn import metrics as skm

    if name == "roc_auc":
        return float(skm.roc_auc_score(labels, scores))
    return -float(skm.log_loss(labels, np.clip(scores, EPSILON, 1 - EPSILON), labels=[0, 1]))


def fit_blend(
    probabilities: dict[str, np.ndarray], labels: np.ndarray, params: BlendParams
) -> Blend:
    """The ensemble of `params.members`, from their validation probabilities and labels."""
    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) < 2:
        raise PipelineError(
            "the validation split holds one class only: an ensemble cannot be fitted on it"
        )
    members = list(params.members)
    stacked = np.stack([np.asarray(probabilities[m], float) for m in members], axis=1)
    if params.method == "logistic_stacking":
        return _stacking(members, stacked, labels, params)
    if params.weights is not None:
        total = sum(params.weights.values())
        weights = np.array([params.weights[m] / total for m in members])
    else:
        weights = _searched_weights(stacked, labels, params)
    scores = stacked @ weights
    return Blend(
        "weighted_average",
        members,
        dict(zip(members, weights.tolist(), strict=True)),
        0.0,
        choose_threshold(labels, scores),
    )


def _searched_weights(stacked: np.ndarray, labels: np.ndarray, params: BlendParams) -> np.ndarray:
    equal = np.full(stacked.shape[1], 1 / stacked.shape[1])

    def rank(weights: tuple[float, ...]) -> tuple[float, float]:
        w = np.array(weights)
        return objective(labels, stacked @ w, params.objective), -float(np.abs(w - equal).sum())

    return np.array(max(simplex_grid(stacked.shape[1], params.weight_step), key=rank))


def _stacking(
    members: list[str], stacked: np.ndarray, labels: np.ndarray, params: BlendParams
) -> Blend:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    features = log_odds(stacked)
    folds = min(params.stacking_folds, int(np.bincount(labels).min()))
    if folds < 2:
        raise PipelineError("logistic stacking needs at least two validation rows of each class")
    cross_fitted = np.zeros(len(labels))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=params.seed)
    for fit_rows, held_out in splitter.split(features, labels):
        stacker = LogisticRegression(C=params.stacking_c).fit(features[fit_rows], labels[fit_rows])
        cross_fitted[held_out] = stacker.predict_proba(features[held_out])[:, 1]
    stacker = LogisticRegression(C=params.stacking_c).fit(features, labels)
    coefficients = dict(zip(members, stacker.coef_[0].tolist(), strict=True))
    return Blend(
        "logistic_stacking",
        members,
        coefficients,
        float(stacker.intercept_[0]),
        choose_threshold(labels, cross_fitted),
    )
