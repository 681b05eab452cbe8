"""Moving the registry's aliases crash-safely: the decision first, then the aliases, then
a mark that it is done; whatever a crash left unfinished, the next promoter finishes.

Every alias move happens under the promotion lock (fakenews.tracking.lease), in this order:
1. the decision, whole, as one JSON tag `promotion.decision` on its version: one write,
   so it is there complete or not at all (then its fields as `promotion.*` tags, to read);
2. the aliases: `challenger`, then `previous-champion` (the champion the decision was
   compared with, as the decision recorded it), then `champion`;
3. `promotion.state = applied <the decision's id>` on the version.
The next holder of the lock first runs recover(): a version with a decision but not
`applied` has its aliases moved as its decision says and is marked applied: finished,
not redone, since the decision was made against the champion of its time, which is
still champion (no one else can have moved it: the lock). Should the champion be
another version all the same (moved by hand, around the lock), the decision is not
applied and is marked `abandoned`, so a champion never replaces one it was not compared
with. A rollback records both moves on the registered model before making them.

A version registered but never decided (a crash before step 1) is decided by the next
evaluate that brings the same model (fakenews.tracking.promotion).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from mlflow.exceptions import MlflowException

from fakenews.errors import PipelineError
from fakenews.faults import fault_point
from fakenews.tracking import tags as tag
from fakenews.tracking.lease import Lease, promotion_lock
from fakenews.tracking.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    Decision,
    alias_version,
    forced_decision,
    record,
)

DECISION = tag.PROMOTION_PREFIX + "decision"  # JSON: the decision, and an id of its own
# "applied <id>" | "abandoned <id>": what became of that decision; anything else while
# unfinished (a version decided twice, e.g. forced later, keeps only the latest decision)
STATE = tag.PROMOTION_PREFIX + "state"
# On the other versions a decision was made with (registered by the same evaluate, not
# the challenger): the version that was
DECIDED_WITH = tag.PROMOTION_PREFIX + "decided_with"
ROLLBACK = tag.PROMOTION_PREFIX + "rollback"  # on the registered model, while one runs

# The fault points of a promotion (fakenews.faults), in the order it passes them
REGISTERED, DECIDED, CHALLENGER_MOVED, PREVIOUS_MOVED, CHAMPION_MOVED, ROLLING_BACK = (
    "promotion.registered",  # new versions registered; nothing decided
    "promotion.decided",  # the decision tag written; no alias moved
    "promotion.challenger",  # challenger moved
    "promotion.previous",  # previous-champion moved; champion not yet
    "promotion.champion",  # champion moved; not marked applied
    "promotion.rollback",  # a rollback's champion moved; previous-champion not yet
)
FAULT_POINTS = (REGISTERED, DECIDED, CHALLENGER_MOVED, PREVIOUS_MOVED, CHAMPION_MOVED, ROLLING_BACK)


def decided(version_tags: dict[str, str]) -> bool:
    """Whether a decision was made on this version, or with it beside the challenger
    (this journal's record, or a whole older one)."""
    return any(
        key in version_tags for key in (DECISION, DECIDED_WITH, tag.PROMOTION_PREFIX + "promoted")
    )


def unfinished(version_tags: dict[str, str]) -> bool:
    """Whether a version's latest decision was recorded but neither applied nor abandoned."""
    if DECISION not in version_tags:
        return False
    decision_id = json.loads(version_tags[DECISION]).get("id")
    return version_tags.get(STATE) not in (f"applied {decision_id}", f"abandoned {decision_id}")


def apply(
    client, lease: Lease, decision: Decision, challenger: bool = True, others: tuple = ()
) -> None:
    """Record `decision`, move the aliases it implies, mark it applied (module docstring).
    `others`: the versions registered beside the challenger, decided with it."""
    lease.renew()
    current = alias_version(client, decision.model, CHAMPION)
    if decision.promoted and str(current or "") != str(decision.champion_version or ""):
        raise PipelineError(
            f"champion of {decision.model!r} is version {current}, not version "
            f"{decision.champion_version} that version {decision.version} was compared with; "
            "nothing moved"
        )
    decision_id = uuid.uuid4().hex
    client.set_model_version_tag(
        decision.model,
        decision.version,
        DECISION,
        json.dumps({**decision.as_dict(), "id": decision_id, "others": list(others)}),
    )
    fault_point(DECIDED)
    _finish(client, lease, decision, decision_id, challenger, others)


def _finish(
    client, lease: Lease, decision: Decision, decision_id: str, challenger: bool, others
) -> None:
    name, version = decision.model, decision.version
    lease.renew()
    record(client, decision)
    for other in others:
        client.set_model_version_tag(name, other, DECIDED_WITH, version)
    if challenger:
        client.set_registered_model_alias(name, CHALLENGER, version)
        fault_point(CHALLENGER_MOVED)
    if decision.promoted and alias_version(client, name, CHAMPION) != version:
        if decision.champion_version is not None:
            lease.renew()
            client.set_registered_model_alias(name, PREVIOUS, decision.champion_version)
            fault_point(PREVIOUS_MOVED)
        lease.renew()
        client.set_registered_model_alias(name, CHAMPION, version)
        fault_point(CHAMPION_MOVED)
    client.set_model_version_tag(name, version, STATE, f"applied {decision_id}")


def recover(client, lease: Lease, name: str) -> list[dict[str, Any]]:
    """Finish what a promoter killed mid-way left (module docstring); what was done."""
    done = []
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        return done  # no such model yet: nothing to finish
    if ROLLBACK in model.tags:
        moves = json.loads(model.tags[ROLLBACK])
        _roll_back(client, lease, name, moves["champion"], moves["previous"])
        done.append({"finished": "rollback", **moves})
    for version in client.search_model_versions(f"name = '{name}'"):
        if not unfinished(version.tags):
            continue
        recorded = json.loads(version.tags[DECISION])
        decision_id, others = recorded.pop("id"), recorded.pop("others", [])
        decision = Decision(**recorded)
        current = alias_version(client, name, CHAMPION)
        expected = {str(decision.champion_version or ""), decision.version}
        if decision.promoted and str(current or "") not in expected:
            lease.renew()
            client.set_model_version_tag(name, version.version, STATE, f"abandoned {decision_id}")
            done.append({"abandoned": version.version, "champion_now": current})
            continue
        _finish(client, lease, decision, decision_id, decision.metric != "", others)
        done.append({"finished": version.version, "promoted": decision.promoted})
    return done


def force(client, name: str, version: str, reason: str) -> Decision:
    """Make `version` champion regardless of scores, under the lock; the reason recorded."""
    with promotion_lock(client, name) as lease:
        recover(client, lease, name)
        decision = forced_decision(name, version, reason, alias_version(client, name, CHAMPION))
        apply(client, lease, decision, challenger=False)
    return decision


def rollback(client, name: str) -> tuple[str, str | None]:
    """Swap champion and previous-champion under the lock; (new champion, demoted)."""
    with promotion_lock(client, name) as lease:
        recover(client, lease, name)
        previous = alias_version(client, name, PREVIOUS)
        current = alias_version(client, name, CHAMPION)
        if previous is None:
            raise LookupError(f"registered model {name!r} has no previous champion to roll back to")
        lease.renew()
        client.set_registered_model_tag(
            name, ROLLBACK, json.dumps({"champion": previous, "previous": current})
        )
        _roll_back(client, lease, name, previous, current)
    return previous, current


def _roll_back(client, lease: Lease, name: str, champion: str, previous: str | None) -> None:
    lease.renew()
    client.set_registered_model_alias(name, CHAMPION, champion)
    fault_point(ROLLING_BACK)
    if previous is not None:
        client.set_registered_model_alias(name, PREVIOUS, previous)
    client.delete_registered_model_tag(name, ROLLBACK)
