"""Promoters that race and promoters that die, against a real tracking server, and the
registry invariants they must leave intact (used by tests/test_promotion_races.py and
`make bench-faults`).

Every promoter is evaluate's own registry step (fakenews.tracking.promotion) on the tiny
LSTM: its registered versions are the real logged model, so a comparison rescores the
real champion. Candidates differ by content hash and by the test scores handed in
(the model's own, or perfect ones that beat any champion).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fakenews.faults import FAULT_ENV
from fakenews.tracking import journal
from tests.support.commands import PROJECT_ROOT, subprocess_env

SPLIT = "split-race"


@dataclass(frozen=True)
class Inputs:
    """What each promoter is given: the logged model and the test rows with two sets of
    scores for them."""

    model_uri: str
    run_id: str
    titles: list[str]
    labels: list[int]
    model_scores: list[float]  # the tiny LSTM's own, as evaluate scored it

    def scored(self, kind: str):
        from fakenews.tracking.registry import Scored

        labels = np.asarray(self.labels)
        if kind == "perfect":
            return Scored(labels.astype(float), labels)
        probabilities = np.asarray(self.model_scores)
        return Scored(probabilities, (probabilities >= 0.5).astype(int))

    def to_file(self, path: Path) -> Path:
        path.write_text(json.dumps(self.__dict__))
        return path


def promote(name: str, inputs: Inputs, candidates: dict[str, tuple[str, str]]) -> dict:
    """One evaluate's registry step: `candidates` {family: (content hash, score kind)}."""
    from fakenews.data.params import params_from
    from fakenews.tracking.promotion import HeldOut, register_and_promote

    params = params_from(
        {"evaluate": {"registered_model": name, "bootstrap_resamples": 100, "seed": 0}}
    ).evaluate
    prepared = {
        family: {
            "run_id": inputs.run_id,
            "model_uri": inputs.model_uri,
            "content_hash": content_hash,
            "metrics": {},
            "scored": inputs.scored(kind),
        }
        for family, (content_hash, kind) in candidates.items()
    }
    labels = np.asarray(inputs.labels)
    return register_and_promote(prepared, HeldOut(labels, inputs.titles, SPLIT, "data"), params)


# ---- the invariants ----------------------------------------------------------------------


def violations(client, name: str) -> list[str]:
    """What breaks the promotion guarantees in registered model `name`, in words: a content
    hash registered twice, a decision left unfinished, a champion that replaced one it was
    not compared with (or without any comparison), previous-champion not the replaced one."""
    from fakenews.tracking import tags as tag
    from fakenews.tracking.journal import DECIDED_WITH, DECISION, STATE, unfinished
    from fakenews.tracking.registry import CHAMPION, PREVIOUS, alias_version

    found = []
    versions = sorted(
        client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version)
    )
    hashes = Counter(v.tags.get(tag.CONTENT_HASH) for v in versions)
    found += [f"content hash {h} has {n} versions" for h, n in hashes.items() if n > 1]
    champion, replaced = None, None
    decided = {v.version for v in versions if DECISION in v.tags and not unfinished(v.tags)}
    for version in versions:
        if DECIDED_WITH in version.tags and version.tags[DECIDED_WITH] in decided:
            continue  # registered beside the challenger the decision was about
        if version.version not in decided:
            found.append(f"v{version.version}: no decision, or one unfinished")
            continue
        decision = json.loads(version.tags[DECISION])
        if version.tags[STATE].startswith("abandoned"):
            continue
        if not decision["promoted"]:
            continue
        if decision["champion_version"] != champion:
            found.append(
                f"v{version.version} replaced champion v{champion} but was compared with "
                f"v{decision['champion_version']}"
            )
        forced = decision["metric"] == ""
        if champion is not None and not forced and decision["difference_ci_low"] is None:
            found.append(f"v{version.version} replaced v{champion} without a comparison")
        champion, replaced = version.version, champion
    if alias_version(client, name, CHAMPION) != champion:
        found.append(
            f"champion is v{alias_version(client, name, CHAMPION)}, decisions say v{champion}"
        )
    if alias_version(client, name, PREVIOUS) != replaced:
        found.append(
            f"previous-champion is v{alias_version(client, name, PREVIOUS)}, not the replaced "
            f"v{replaced}"
        )
    return found


def locks_left(client, name: str) -> list[str]:
    from fakenews.tracking.lease import SUFFIX

    return [m.name for m in client.search_registered_models(f"name LIKE '{name}{SUFFIX}%'")]


# ---- two promoters racing -------------------------------------------------------------------


def _race_worker(worker: int, name: str, inputs: Inputs, rounds: int, barrier, results) -> None:
    for r in range(rounds):
        barrier.wait()  # both promoters start the round together
        own = "perfect" if (r + worker) % 2 == 0 else "model"
        candidates = {
            "lstm": (f"{name}-{r}-shared", "model"),
            "bert": (f"{name}-{r}-{worker}", own),
        }
        try:
            report = promote(name, inputs, candidates)
            results.put((r, worker, None, report.get("decision")))
        except Exception as err:  # reported by the driver, which checks every round
            results.put((r, worker, f"{type(err).__name__}: {err}", None))
        barrier.wait()  # the driver checks the invariants before the next round


def race(client, name: str, inputs: Inputs, rounds: int = 20) -> list[dict[str, Any]]:
    """Two promoter processes, released together `rounds` times; each round both bring
    the same new model (one content hash) and one of their own. After each round: the
    errors and the invariants' violations."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork of a process holding TensorFlow
    barrier, results = context.Barrier(3, timeout=600), context.Queue()
    workers = [
        context.Process(target=_race_worker, args=(w, name, inputs, rounds, barrier, results))
        for w in (0, 1)
    ]
    for worker in workers:
        worker.start()
    outcome = []
    try:
        for r in range(rounds):
            barrier.wait()
            barrier.wait()
            answers = [results.get(timeout=60) for _ in workers]
            outcome.append(
                {
                    "round": r,
                    "errors": [a[2] for a in answers if a[2]],
                    "decisions": [a[3] for a in answers if a[3]],
                    "violations": violations(client, name),
                }
            )
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
    return outcome


# ---- a promoter SIGKILLed at a fault point ---------------------------------------------------

KILLED = """
import json, sys
from tests.support.promoters import Inputs, promote
from fakenews.tracking import journal
from mlflow.tracking import MlflowClient
action, name, inputs_file, argument = sys.argv[1:5]
inputs = Inputs(**json.loads(open(inputs_file).read()))
if action == "promote":
    promote(name, inputs, json.loads(argument))
elif action == "force":
    journal.force(MlflowClient(), name, argument, "forced by a test that kills it")
else:
    journal.rollback(MlflowClient(), name)
"""


def start_killed(action: str, name: str, inputs_file: Path, argument: str, point: str, uri: str):
    """A promoter process that SIGKILLs itself at fault point `point` (fakenews.faults)."""
    env = {**subprocess_env(), "MLFLOW_TRACKING_URI": uri, FAULT_ENV: point}
    return subprocess.Popen(
        [sys.executable, "-c", KILLED, action, name, str(inputs_file), argument],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _again(name: str, inputs: Inputs, content_hash: str) -> dict:
    """The evaluate that comes after a killed one: the same model again, as a rerun."""
    return promote(name, inputs, {"lstm": (content_hash, "model")})


def kill_scenarios(client, inputs: Inputs, work: Path, uri: str, prefix: str) -> list[dict]:
    """A promoter SIGKILLed at each step of an evaluate's promotion (no champion yet), of a
    forced promotion and of a rollback, all at once, each on a registered model of its
    own; then the next promoter of each. Per scenario: what went wrong, in words."""
    inputs_file = inputs.to_file(work / f"{prefix}-inputs.json")
    started = {}
    for action, point in KILL_POINTS:
        name = f"{prefix}-killed-{action}-{point.split('.')[1]}"
        if action == "promote":
            argument = json.dumps({"lstm": (f"{name}-first", "perfect")})
        else:  # champion v1 and v2 beside it; force makes v2 champion, rollback undoes that
            _again(name, inputs, f"{name}-v1")
            promote(name, inputs, {"lstm": (f"{name}-v2", "model")})
            if action == "rollback":
                journal.force(client, name, "2", "set up the rollback")
            argument = "2"
        started[name] = (
            action,
            point,
            start_killed(action, name, inputs_file, argument, point, uri),
        )
    outcomes = []
    for name, (action, point, proc) in started.items():
        _, err = proc.communicate(timeout=300)
        problems = [] if proc.returncode == -signal.SIGKILL else [f"not killed: {err[-300:]}"]
        report = _again(name, inputs, f"{name}-first" if action == "promote" else f"{name}-v1")
        problems += _after_kill(client, name, action, point, report)
        outcomes.append({"name": name, "action": action, "point": point, "problems": problems})
    return outcomes


# Where a promoter is killed: every step an evaluate without a champion, a forced
# promotion over a champion and a rollback pass (fakenews.tracking.journal).
KILL_POINTS = [
    ("promote", journal.REGISTERED),
    ("promote", journal.DECIDED),
    ("promote", journal.CHALLENGER_MOVED),
    ("promote", journal.CHAMPION_MOVED),
    ("force", journal.DECIDED),
    ("force", journal.PREVIOUS_MOVED),
    ("force", journal.CHAMPION_MOVED),
    ("rollback", journal.ROLLING_BACK),
]


def _after_kill(client, name: str, action: str, point: str, report: dict) -> list[str]:
    """What is wrong with `name` once the next promoter ran after one killed at `point`."""
    from fakenews.tracking.journal import DECISION, ROLLBACK, STATE
    from fakenews.tracking.registry import CHALLENGER, CHAMPION, PREVIOUS, alias_version

    aliases = {a: alias_version(client, name, a) for a in (CHAMPION, PREVIOUS, CHALLENGER)}
    problems = [f"lock left: {lock}" for lock in locks_left(client, name)]
    if action != "rollback":  # a rollback moves champion back without a decision
        problems += violations(client, name)
    if action == "promote":
        tags = client.get_model_version(name, "1").tags
        decision = json.loads(tags.get(DECISION, "{}"))
        if not (decision.get("promoted") and tags.get(STATE) == f"applied {decision['id']}"):
            problems.append(f"{point}: v1 not decided and applied by the next promoter")
        if aliases[CHAMPION] != "1" or aliases[CHALLENGER] != "1":
            problems.append(f"{point}: aliases {aliases}, expected v1 champion and challenger")
        if point != journal.REGISTERED and not report.get("recovered"):
            problems.append(f"{point}: the next promoter reports nothing recovered")
    elif action == "force":
        if (aliases[CHAMPION], aliases[PREVIOUS]) != ("2", "1"):
            problems.append(f"{point}: aliases {aliases}, expected v2 champion, v1 previous")
    elif (aliases[CHAMPION], aliases[PREVIOUS]) != ("1", "2") or ROLLBACK in (
        client.get_registered_model(name).tags
    ):
        problems.append(f"{point}: rollback unfinished: {aliases}")
    return problems
