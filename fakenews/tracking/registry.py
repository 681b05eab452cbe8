"""Model registry promotion with aliases: `challenger` for new versions, `champion` for the best.

A version takes `champion` only when it beats the current champion on the promotion
metric by at least the margin, both scored on the same test split. Every decision is
recorded as tags on the version (and returned, so callers write it to a report).
The champion it replaced keeps the alias `previous-champion`, which rollback restores.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous-champion"


@dataclass
class Decision:
    model: str
    version: str
    promoted: bool
    reason: str
    metric: str
    challenger_score: float | None
    champion_version: str | None
    champion_score: float | None
    at: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return client.get_model_version_by_alias(name, alias).version
    except MlflowException:
        return None


def decide(client: MlflowClient, name: str, version: str, metric: str, margin: float,
           score_of: Callable[[str], float], higher_is_better: bool = True) -> Decision:
    """Compare `version` with the current champion; does not change anything."""
    champion = alias_version(client, name, CHAMPION)
    challenger_score = score_of(version)
    common = dict(model=name, version=str(version), metric=metric,
                  challenger_score=challenger_score, champion_version=champion,
                  at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if champion is None:
        return Decision(promoted=True, reason="no champion yet", champion_score=None, **common)
    if str(champion) == str(version):
        return Decision(promoted=False, reason="already champion",
                        champion_score=challenger_score, **common)
    champion_score = score_of(champion)
    gain = (challenger_score - champion_score) * (1 if higher_is_better else -1)
    promoted = gain >= margin
    verdict = "beats" if promoted else "does not beat"
    reason = (f"{metric} {challenger_score:.4f} vs champion v{champion} {champion_score:.4f}: "
              f"{verdict} it by the margin {margin}")
    return Decision(promoted=promoted, reason=reason, champion_score=champion_score, **common)


def apply(client: MlflowClient, decision: Decision) -> None:
    """Set aliases and record the decision as tags on the version."""
    name, version = decision.model, decision.version
    client.set_registered_model_alias(name, CHALLENGER, version)
    if decision.promoted:
        set_champion(client, name, version)
    record(client, decision)


def record(client: MlflowClient, decision: Decision) -> None:
    """The decision as `promotion.*` tags on its version."""
    for key, value in decision.as_dict().items():
        client.set_model_version_tag(decision.model, decision.version, f"promotion.{key}", str(value))


def set_champion(client: MlflowClient, name: str, version: str) -> None:
    """Move `champion` to `version`, keeping the one it replaces as `previous-champion`."""
    current = alias_version(client, name, CHAMPION)
    if current is not None and str(current) != str(version):
        client.set_registered_model_alias(name, PREVIOUS, current)
    client.set_registered_model_alias(name, CHAMPION, version)


def rollback(client: MlflowClient, name: str) -> tuple[str, str]:
    """Swap champion and previous-champion; returns (new champion, demoted version)."""
    previous = alias_version(client, name, PREVIOUS)
    current = alias_version(client, name, CHAMPION)
    if previous is None:
        raise LookupError(f"registered model {name!r} has no previous champion to roll back to")
    client.set_registered_model_alias(name, CHAMPION, previous)
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS, current)
    return previous, current


def register_and_promote(runs: dict[str, dict], results: dict[str, dict[str, float]],
                         test: pd.DataFrame, test_hash: str, params: dict[str, Any]) -> dict[str, Any]:
    """Register every deep model as a version, tag it, and run the promotion decision.

    The best new version (on the promotion metric) becomes `challenger`; the current
    champion is rescored on this same test split before the comparison.
    """
    import mlflow

    from fakenews.tracking.runs import connect
    from fakenews.training import binary_metrics

    client = MlflowClient(connect())
    name, metric = params["registered_model"], params["promotion_metric"]
    versions = {}
    for family, record in runs.items():
        training_tags = client.get_run(record["run_id"]).data.tags
        tags = {"family": family, "training_run_id": record["run_id"],
                "git.commit": training_tags.get("git.commit", "unknown"), "test_data.md5": test_hash,
                **{f"test.{k}": f"{v:.6g}" for k, v in results[family].items()}}
        version = mlflow.register_model(record["model_uri"], name, tags=tags).version
        versions[str(version)] = family

    def score_of(version: str) -> float:
        if str(version) in versions:
            return results[versions[str(version)]][metric]
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
        probs = model.predict(test[["title"]])["fake_probability"].to_numpy()
        return binary_metrics(test["label"].to_numpy(), probs)[metric]

    best = max(versions, key=score_of)
    decision = decide(client, name, best, metric, float(params["min_margin"]), score_of)
    apply(client, decision)
    return {"registered": {family: version for version, family in versions.items()},
            "decision": decision.as_dict()}


def force(client: MlflowClient, name: str, version: str, reason: str) -> Decision:
    """Make `version` champion regardless of scores; the reason is recorded on the version."""
    if not reason.strip():
        raise ValueError("a forced promotion needs a reason")
    decision = Decision(model=name, version=str(version), promoted=True, reason=f"forced: {reason}",
                        metric="", challenger_score=None,
                        champion_version=alias_version(client, name, CHAMPION), champion_score=None,
                        at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    set_champion(client, name, version)
    record(client, decision)
    return decision
