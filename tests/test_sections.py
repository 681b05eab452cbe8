"""params.yaml against its declared shape (fakenews/data/sections.py): the committed file is
valid and names every key, profiles are valid overlays, and a bad value is one line naming
the file, the key, what it expects and what it got."""

from __future__ import annotations

import pytest

from fakenews.data.params import PROFILES_DIR, load_params, params_from, read_params
from fakenews.data.sections import Params
from fakenews.errors import PipelineError
from fakenews.tracking.lineage import flatten
from tests.support.commands import PROJECT_ROOT
from tools.profile import merged

# Keys whose value is an open mapping (names chosen by the user): their inner keys are data.
OPEN_MAPPINGS = ("evaluate.references.", "score.spark.conf.", "train_lstm.clean_overrides.")


def declared_keys(data: dict) -> set[str]:
    return {key for key in flatten(data) if not key.startswith(OPEN_MAPPINGS)}


def test_the_committed_params_are_valid_and_name_every_key():
    params = load_params(PROJECT_ROOT / "params.yaml")
    written = declared_keys(read_params(PROJECT_ROOT / "params.yaml"))
    assert declared_keys(params.model_dump()) - written == set()


@pytest.mark.parametrize("profile", sorted(PROFILES_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_profile_is_a_valid_overlay(profile):
    overlay = read_params(profile)
    assert declared_keys(overlay) <= declared_keys(Params().model_dump())
    params_from(merged(read_params(PROJECT_ROOT / "params.yaml"), overlay), profile)


@pytest.mark.parametrize(
    "section, values, message",
    [
        (
            "split",
            {"test_size": "abc"},
            "split.test_size: input should be a valid number, got 'abc'",
        ),
        ("split", {"seed": "seven"}, "split.seed: input should be a valid integer, got 'seven'"),
        ("split", {"val_size": [0.1]}, "split.val_size: input should be a valid number, got [0.1]"),
        ("split", {"test_size": 0.6, "val_size": 0.5}, "split.test_size (0.6) and split.val_size"),
        (
            "ingest",
            {"max_rows_per_label": -3},
            "ingest.max_rows_per_label: input should be greater",
        ),
        ("evaluate", {"bootstrap_resamples": 0}, "evaluate.bootstrap_resamples: input should be"),
        ("train_lstm", {"lstm_unit": 8}, "train_lstm.lstm_unit: unknown key"),
        ("train_lstm", {"epochs": True}, "train_lstm.epochs: input should be a valid integer"),
        ("tracking", {"port": 70000}, "tracking.port: input should be less than or equal to 65535"),
    ],
)
def test_a_bad_value_is_one_line_naming_file_key_expectation_and_value(section, values, message):
    with pytest.raises(PipelineError) as err:
        params_from({section: values}, "params.yaml")
    text = str(err.value)
    assert text.startswith(f"params.yaml: {section}.") and message in text
    assert "\n" not in text and "Traceback" not in text


def test_an_unquoted_yaml_boolean_where_a_label_belongs_is_explained():
    with pytest.raises(PipelineError, match='quote it, e.g. "false"'):
        params_from({"ingest": {"csv": {"labels": {"fake": [False], "real": ["x"]}}}})
