"""params files: every wrong type, range or value is one line naming the file, the key, what
it expects and what it got, never a traceback (fakenews.data.sections, .params); and a
server host of `::1` works as 127.0.0.1 does."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakenews.data.params import ParamsError, load_params, read_params
from fakenews.processes import free_port, port_in_use
from stages import split as split_stage
from tests.support.commands import PROJECT_ROOT, write_params

DEFAULTS = read_params(PROJECT_ROOT / "params.yaml")


def leaves(tree: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path to every value of params.yaml that is not itself a section."""
    keys = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            keys += leaves(value, (*prefix, key))
        else:
            keys.append((*prefix, key))
    return keys


KEYS = leaves(DEFAULTS)


def with_value(key: str | tuple[str, ...], value: Any) -> dict:
    """params.yaml's values with `key` (dotted, or a path) set to `value`."""
    params = yaml.safe_load(yaml.safe_dump(DEFAULTS))
    *sections, last = key.split(".") if isinstance(key, str) else key
    node = params
    for name in sections:
        node = node[name]
    node[last] = value
    return params


def load_error(tmp_path: Path, params: dict) -> list[str]:
    path = write_params(tmp_path / "params.yaml", params)
    with pytest.raises(ParamsError) as raised:
        load_params(path)
    lines = str(raised.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    return [line.removeprefix(f"{path}: ") for line in lines]


@pytest.mark.parametrize(
    "key, value, says",
    [
        ("split.test_size", "abc", "split.test_size: input should be a valid number, got 'abc'"),
        ("split.seed", "seven", "split.seed: input should be a valid integer, got 'seven'"),
        ("split.val_size", [0.1, 0.2], "split.val_size: input should be a valid number, got [0.1"),
        ("train_lstm.lstm_units", [50], "train_lstm.lstm_units: input should be a valid integer"),
        (
            "ingest.max_rows_per_label",
            -3,
            "ingest.max_rows_per_label: input should be greater than or equal to 1, got -3",
        ),
        (
            "evaluate.bootstrap_resamples",
            0,
            "evaluate.bootstrap_resamples: input should be greater than or equal to 10, got 0",
        ),
        ("evaluate.seed", -1, "evaluate.seed: input should be greater than or equal to 0"),
        (
            "train_bert.learning_rate",
            float("inf"),
            "train_bert.learning_rate: input should be a finite number",
        ),
        ("ingest.csv.encoding", "utf-9", "ingest.csv.encoding: unknown text encoding 'utf-9'"),
        (
            "ingest.duplicate_ids",
            "drop",
            "ingest.duplicate_ids: input should be 'refuse' or 'keep_first', got 'drop'",
        ),
    ],
)
def test_the_wrong_types_and_ranges_of_the_issue_are_one_line_each(tmp_path, key, value, says):
    lines = load_error(tmp_path, with_value(key, value))
    assert len(lines) == 1 and lines[0].startswith(says), lines


def test_several_bad_keys_are_one_line_each_and_a_stage_stops_before_any_work(tmp_path, capsys):
    params = with_value("split.test_size", "abc")
    params["split"]["seed"] = "seven"
    params["split"]["colour"] = "red"
    assert sorted(load_error(tmp_path, params)) == [
        "split.colour: unknown key (a typo, or a setting this version does not have)",
        "split.seed: input should be a valid integer, got 'seven'",
        "split.test_size: input should be a valid number, got 'abc'",
    ]
    with pytest.raises(SystemExit) as exited:
        split_stage.main(["--params", str(tmp_path / "params.yaml")])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 3 and err.startswith("error: ")


def test_duplicate_ids_defaults_to_refuse_and_params_yaml_names_it():
    assert load_params().ingest.duplicate_ids == "refuse"
    assert DEFAULTS["ingest"]["duplicate_ids"] == "refuse"


# Any YAML value, of any type, where params.yaml has a value.
yaml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(KEYS), value=yaml_values)
def test_any_value_at_any_key_is_accepted_or_refused_in_lines_naming_file_and_key(key, value):
    with tempfile.TemporaryDirectory() as folder:
        path = write_params(Path(folder) / "params.yaml", with_value(key, value))
        try:
            load_params(path)
        except ParamsError as err:
            lines = str(err).splitlines()
            assert lines and all(line.startswith(f"{path}: ") for line in lines), lines
            # the key itself, or the section holding it for a rule across keys
            named = {".".join(key[:depth]) for depth in range(1, len(key) + 1)}
            assert any(name in line for line in lines for name in named), (key, lines)


@settings(max_examples=60, deadline=None)
@given(content=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_any_bytes_as_a_params_file_are_accepted_or_refused_naming_the_file(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "params.yaml"
        path.write_bytes(content)
        try:
            load_params(path)
        except ParamsError as err:
            assert str(err).startswith(f"{path}: ") and "Traceback" not in str(err)


# ---- a tracking host of ::1 ------------------------------------------------------------------


def test_ports_on_the_ipv6_loopback_are_found_and_probed():
    port = free_port("::1")
    assert not port_in_use("::1", port)
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as listener:
        listener.bind(("::1", port))
        listener.listen()
        assert port_in_use("::1", port)
        assert not port_in_use("127.0.0.1", port)  # another address, nothing there


@pytest.mark.slow
def test_a_tracking_server_on_ipv6_loopback_starts_and_takes_runs(tmp_path, monkeypatch):
    import mlflow

    from fakenews.tracking.connection import connect
    from fakenews.tracking.server import start_server, stop_server

    params = write_params(
        tmp_path / "params.yaml", {"tracking": {"host": "::1", "port": free_port("::1")}}
    )
    handle = start_server(tmp_path, params_path=params, timeout=120, say=lambda _: None)
    previous = mlflow.get_tracking_uri()
    try:
        assert handle.uri.startswith("http://[::1]:")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", handle.uri)
        assert connect() == handle.uri
        experiment = mlflow.set_experiment("ipv6")
        with mlflow.start_run() as run:
            mlflow.log_metric("m", 1.0)
        assert mlflow.get_run(run.info.run_id).data.metrics == {"m": 1.0}
        assert experiment.experiment_id
    finally:
        mlflow.set_tracking_uri(previous)  # process-global: leave it as it was
        stop_server(handle, say=lambda _: None)
