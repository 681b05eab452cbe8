"""evaluate's registry step: register new model versions, then decide on the champion.

The rules live in fakenews.tracking.registry; this module gathers what they need: which
candidates are new (by content hash), how the champion scores on the same test rows, and
the paired bootstrap interval of the difference. Under `dvc exp run` nothing is
registered unless `evaluate.register_experiments` is true: an experiment must not move
production aliases.

All of it, from finding what is registered to the last alias move, runs under the
promotion lock (fakenews.tracking.lease): two evaluates cannot both register one model,
nor compare with a champion that the other then replaces. Each starts by finishing what
an interrupted one left (fakenews.tracking.journal).
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from fakenews.data.sections import EvaluateParams
from fakenews.faults import fault_point
from fakenews.scoring.models import load_model
from fakenews.tracking import journal, registry
from fakenews.tracking import tags as tag
from fakenews.tracking.lease import Lease, promotion_lock
from fakenews.tracking.registry import Scored


@dataclass(frozen=True)
class HeldOut:
    """The test rows every candidate and the champion are scored on, and the hashes that
    say which split and data they come from (recorded on each registered version)."""

    labels: np.ndarray
    titles: list[str]
    split_hash: str
    data_hash: str


# Metrics the promotion rule can use: higher is better for each.
PROMOTION_METRICS = {
    "accuracy": lambda y, s: skm.accuracy_score(y, s.labels),
    "precision": lambda y, s: skm.precision_score(y, s.labels, zero_division=0),
    "recall": lambda y, s: skm.recall_score(y, s.labels, zero_division=0),
    "f1": lambda y, s: skm.f1_score(y, s.labels, zero_division=0),
    "roc_auc": lambda y, s: skm.roc_auc_score(y, s.probabilities),
    "pr_auc": lambda y, s: skm.average_precision_score(y, s.probabilities),
}


def scored_by(model, titles: list[str]) -> Scored:
    """A pyfunc headline model's probabilities and 0/1 labels (its own threshold); a model
    running in a process of its own is stopped afterwards."""
    out = model.predict(pd.DataFrame({"title": titles}))
    getattr(model, "close", lambda: None)()
    probabilities = out["fake_probability"].to_numpy(dtype=float)
    labels = (out["predicted_label"] == "fake").to_numpy(dtype=int)
    return Scored(probabilities, labels)


def register_new(
    client, lease: Lease, name: str, candidates: dict[str, dict[str, Any]], tags: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Register each candidate whose content hash no version has yet (under the lock, so
    two promoters cannot both register one model). A version of the same hash that an
    interrupted promotion registered but never decided counts as new: it is decided now,
    tagged with this evaluation's split and test metrics.

    Returns ({family: version} of all candidates, {version: family} of those to decide).
    """
    import mlflow

    versions, new = {}, {}
    for family, candidate in candidates.items():
        version_tags = {
            tag.FAMILY: family,
            tag.TRAINING_RUN: candidate["run_id"],
            tag.CONTENT_HASH: candidate["content_hash"],
            **tags,
            **{f"test.{k}": f"{v:.6g}" for k, v in candidate["metrics"].items()},
        }
        lease.renew()
        existing = registry.version_with_hash(client, name, candidate["content_hash"])
        if existing is not None:
            versions[family] = existing
            if not journal.decided(client.get_model_version(name, existing).tags):
                for key, value in version_tags.items():
                    client.set_model_version_tag(name, existing, key, value)
                new[existing] = family
            continue
        with contextlib.redirect_stderr(io.StringIO()):  # "Successfully registered..."
            version = str(
                mlflow.register_model(candidate["model_uri"], name, tags=version_tags).version
            )
        versions[family], new[version] = version, family
    lease.renew()
    for version, family in new.items():  # an ensemble's version names its members' versions
        for member in candidates[family].get("members", {}):
            if member in versions:
                client.set_model_version_tag(
                    name, version, f"{tag.MEMBER_PREFIX}{member}.version", versions[member]
                )
    return versions, new


def champion_comparison(
    client, name: str, split_hash: str, titles: list[str]
) -> tuple[dict[str, Any] | None, Scored | None]:
    """The champion's version and whether it can be scored on this test split, with its
    predictions when it can: only when it was tested on the same split before. It runs
    with the code it was logged with (fakenews.scoring.models.load_model), as served."""

    version = registry.alias_version(client, name, registry.CHAMPION)
    if version is None:
        return None, None
    tags = client.get_model_version(name, version).tags
    recorded = tags.get(tag.SPLIT_HASH)
    if recorded != split_hash:
        why = (
            f"it was tested on split {recorded[:12]} and this evaluation uses split "
            f"{split_hash[:12]}, "
            "so its training rows may be among these test rows"
            if recorded
            else f"it records no {tag.SPLIT_HASH}, so its training rows are unknown"
        )
        return {"version": version, "why_not_comparable": why}, None
    return {"version": version}, scored_by(load_model(f"models:/{name}/{version}"), titles)


def register_and_promote(
    candidates: dict[str, dict[str, Any]],
    test: HeldOut,
    params: EvaluateParams,
) -> dict[str, Any]:
    """Under the lock: finish an interrupted promotion, register what is new, pick the
    challenger, decide and apply; the report to write.

    `candidates`: {family: {run_id, model_uri, content_hash, metrics, scored}}.
    """
    from mlflow.tracking import MlflowClient

    from fakenews.tracking.connection import connect

    client = MlflowClient(connect())
    with promotion_lock(client, params.registered_model) as lease:
        recovered = journal.recover(client, lease, params.registered_model)
        report = _decide_and_apply(client, lease, candidates, test, params)
    if recovered:
        report["recovered"] = recovered
    return report


def _decide_and_apply(
    client,
    lease: Lease,
    candidates: dict[str, dict[str, Any]],
    test: HeldOut,
    params: EvaluateParams,
) -> dict[str, Any]:
    metric_fn = PROMOTION_METRICS[params.promotion_metric]
    name, metric = params.registered_model, params.promotion_metric
    versions, new = register_new(
        client,
        lease,
        name,
        candidates,
        {tag.SPLIT_HASH: test.split_hash, tag.DATA_HASH: test.data_hash},
    )
    fault_point(journal.REGISTERED)
    report: dict[str, Any] = {
        "registered_model": name,
        "versions": versions,
        "new_versions": sorted(new, key=int),
    }
    if not new:
        report["decision"] = None
        report["reason"] = (
            "no new model: every candidate matches a registered version "
            f"({', '.join(f'{f} v{v}' for f, v in versions.items())}); no alias moved"
        )
        return report
    score = {v: metric_fn(test.labels, candidates[f]["scored"]) for v, f in new.items()}
    challenger = max(new, key=lambda v: (score[v], -int(v)))
    champion, champion_scored = champion_comparison(client, name, test.split_hash, test.titles)
    ci = None
    if champion_scored is not None:
        champion["score"] = float(metric_fn(test.labels, champion_scored))
        ci = registry.paired_difference_ci(
            test.labels,
            candidates[new[challenger]]["scored"],
            champion_scored,
            metric_fn,
            params.bootstrap_resamples,
            params.seed,
        )
    decision = registry.decide(
        name,
        challenger,
        metric,
        params.min_margin,
        float(score[challenger]),
        champion,
        ci,
        len(test.labels),
    )
    journal.apply(client, lease, decision, others=tuple(v for v in new if v != challenger))
    report["decision"] = decision.as_dict()
    report["reason"] = decision.reason
    return report


def experiment_name() -> str | None:
    """The `dvc exp run` experiment this process runs in (DVC names it in DVC_EXP_NAME)."""
    return os.environ.get("DVC_EXP_NAME") or None


def promote_unless_experiment(
    candidates: dict[str, dict[str, Any]],
    test: HeldOut,
    params: EvaluateParams,
) -> dict[str, Any]:
    """register_and_promote, except under `dvc exp run` without register_experiments: then
    the report says why nothing moved."""
    experiment = experiment_name()
    if experiment and not params.register_experiments:
        return {
            "decision": None,
            "reason": f"experiment {experiment}: nothing registered and "
            "no alias moved (evaluate.register_experiments is false); apply and commit it, "
            "then `dvc repro`, to put its model forward",
        }
    return register_and_promote(candidates, test, params)
