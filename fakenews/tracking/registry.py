"""Model registry: register what is new, and promote only on a real win.

- A version is registered only when its model differs from every registered version:
  the content hash of its weights, config and vocabulary is kept as the version tag
  `model.content_hash`. Rerunning evaluate on unchanged models registers nothing.
- The best newly registered version (on the promotion metric) becomes `challenger`.
- `champion` moves to it only when the paired bootstrap 95 % interval of
  (challenger − champion), both scored on the same test rows, lies entirely above
  `min_margin`: ties and noise never promote.
- The champion is rescored only on a test split it was tested on before (tag
  `data.split_hash`), so it is never scored on rows it trained on. Otherwise the decision
  says the comparison cannot be made and does not promote; `promote --force --reason` can.
- Every decision is recorded as `promotion.*` tags on the challenger (and returned, for
  metrics/promotion.json). The champion it replaces keeps `previous-champion`.
Registration and every alias move happen under the promotion lock
(fakenews.tracking.lease), decision first, aliases after (fakenews.tracking.journal).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from fakenews.tracking import tags as tag

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous-champion"


@dataclass(frozen=True)
class Scored:
    """A model's predictions on the test rows: fake-probabilities and 0/1 labels."""

    probabilities: np.ndarray
    labels: np.ndarray


@dataclass
class Decision:
    model: str
    version: str
    promoted: bool
    reason: str
    metric: str
    margin: float
    challenger_score: float | None
    champion_version: str | None
    champion_score: float | None
    difference_ci_low: float | None
    difference_ci_high: float | None
    rows_compared: int
    at: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return client.get_model_version_by_alias(name, alias).version
    except MlflowException:
        return None


def version_with_hash(client: MlflowClient, name: str, content_hash: str) -> str | None:
    """The registered version of `name` whose model has this content hash, if any."""
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    found = [v.version for v in versions if v.tags.get(tag.CONTENT_HASH) == content_hash]
    return min(found, key=int) if found else None


def paired_difference_ci(
    labels: np.ndarray,
    challenger: Scored,
    champion: Scored,
    metric: Callable[[np.ndarray, Scored], float],
    resamples: int,
    seed: int,
) -> tuple[float, float]:
    """95 % percentile interval of metric(challenger) − metric(champion) over resamples of
    the same test rows (each resample scores both models on identical rows)."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    differences = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        if len(np.unique(labels[idx])) < 2:
            continue
        pick = lambda s, idx=idx: Scored(s.probabilities[idx], s.labels[idx])  # noqa: E731
        differences.append(
            metric(labels[idx], pick(challenger)) - metric(labels[idx], pick(champion))
        )
    if not differences:
        return float("nan"), float("nan")
    return float(np.percentile(differences, 2.5)), float(np.percentile(differences, 97.5))


def decide(
    name: str,
    version: str,
    metric: str,
    margin: float,
    challenger_score: float,
    champion: dict[str, Any] | None,
    ci: tuple[float, float] | None,
    rows: int,
) -> Decision:
    """The promotion rule; changes nothing. `champion` is None when there is none yet, and
    holds `version`, `score` (None when not comparable) and `why_not_comparable`."""
    common = dict(
        model=name,
        version=str(version),
        metric=metric,
        margin=margin,
        challenger_score=challenger_score,
        rows_compared=rows,
        at=_now(),
        champion_version=champion and champion["version"],
        champion_score=champion and champion.get("score"),
        difference_ci_low=ci[0] if ci else None,
        difference_ci_high=ci[1] if ci else None,
    )
    if champion is None:
        return Decision(promoted=True, reason="no champion yet", **common)
    if champion.get("why_not_comparable"):
        return Decision(
            promoted=False,
            reason=f"not compared with champion v{champion['version']}: "
            f"{champion['why_not_comparable']}; only `promote --force --reason` can "
            "promote it",
            **common,
        )
    low, high = ci
    if math.isnan(low) or math.isnan(high):
        return Decision(
            promoted=False,
            reason=f"not compared with champion v{champion['version']}: no bootstrap resample "
            f"of the {rows} test rows held both labels, so there is no interval for the "
            f"difference in {metric}; a test split with both labels is needed",
            **common,
        )
    promoted = bool(low > margin)
    verdict = "beats" if promoted else "does not beat"
    reason = (
        f"{metric} {challenger_score:.4f} vs champion v{champion['version']} "
        f"{champion['score']:.4f} on the same {rows} test rows: difference 95 % CI "
        f"[{low:+.4f}, {high:+.4f}] {verdict} the margin {margin} (it must lie entirely above)"
    )
    return Decision(promoted=promoted, reason=reason, **common)


def record(client: MlflowClient, decision: Decision) -> None:
    """The decision as `promotion.*` tags on its version."""
    for key, value in decision.as_dict().items():
        client.set_model_version_tag(
            decision.model, decision.version, tag.PROMOTION_PREFIX + key, str(value)
        )


def forced_decision(name: str, version: str, reason: str, champion: str | None) -> Decision:
    """A decision to make `version` champion regardless of scores (`promote --force`)."""
    if not reason.strip():
        raise ValueError("a forced promotion needs a reason")
    return Decision(
        model=name,
        version=str(version),
        promoted=True,
        reason=f"forced: {reason}",
        metric="",
        margin=0.0,
        challenger_score=None,
        champion_version=champion,
        champion_score=None,
        difference_ci_low=None,
        difference_ci_high=None,
        rows_compared=0,
        at=_now(),
    )
