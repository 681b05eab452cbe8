"""Promotion under attack on a real tracking server: two promoters racing 20 times, and a
promoter SIGKILLed at every step of a promotion, a forced promotion and a rollback.

Each time the registry must hold: no content hash registered twice, no champion that
replaced one it was not compared with, previous-champion the replaced one, no decision
left unfinished, no lock left behind (tests/support/promoters.py checks them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from fakenews.data.params import read_params
from fakenews.tracking import journal
from tests.support.promoters import KILL_POINTS, Inputs, kill_scenarios, locks_left, race

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def inputs(tiny_trained, tracking_server) -> Inputs:
    """The tiny LSTM as logged, and its own scores on the tiny repro's headlines."""
    from fakenews.scoring.models import load_model
    from fakenews.tracking.promotion import scored_by

    params = read_params(tiny_trained)
    record = json.loads((Path(params["paths"]["models_dir"]) / "lstm/mlflow_run.json").read_text())
    headlines = pd.read_parquet(params["paths"]["ingested"])
    titles = headlines["title"].tolist()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", tracking_server)
        scored = scored_by(load_model(record["model_uri"]), titles)
    return Inputs(
        record["model_uri"],
        record["run_id"],
        titles,
        headlines["label"].astype(int).tolist(),
        scored.probabilities.tolist(),
    )


def test_two_promoters_racing_twenty_times_keep_every_invariant(inputs, tracking_uri):
    client = MlflowClient(tracking_uri)
    name = "race-two-promoters"
    rounds = race(client, name, inputs, rounds=20)
    assert [r["errors"] for r in rounds] == [[]] * 20
    assert [r["violations"] for r in rounds] == [[]] * 20
    versions = client.search_model_versions(f"name = '{name}'")
    assert len(versions) == 3 * 20  # per round: the shared model once, each promoter's own
    promoted = [d for r in rounds for d in r["decisions"] if d["promoted"]]
    compared = [d for d in promoted if d["difference_ci_low"] is not None]
    assert len(compared) >= 10  # champions really were replaced, each after a comparison
    assert locks_left(client, name) == []


def test_a_promoter_killed_at_each_step_is_finished_by_the_next(inputs, tracking_uri, tmp_path):
    """All eight promoters die at once (each on a registered model of its own): at every
    step of an evaluate's promotion, of a forced one and of a rollback. The next promotion
    of each finds what it left and finishes it: the aliases where the decision put them,
    the decision marked applied, the invariants intact, no lock left."""
    client = MlflowClient(tracking_uri)
    outcomes = kill_scenarios(client, inputs, tmp_path, tracking_uri, "killed")
    assert {(o["action"], o["point"]) for o in outcomes} == set(KILL_POINTS)
    assert {point for _, point in KILL_POINTS} == set(journal.FAULT_POINTS)  # every step
    assert {o["name"]: o["problems"] for o in outcomes} == {o["name"]: [] for o in outcomes}
