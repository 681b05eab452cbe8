"""Serving a logged model: `mlflow models serve` as a context manager (for the serving test
and the benchmark), and the check that a logged model serves what its training measured.

    with served_model("models:/fake-news-classifier@champion", env) as url:
        requests.post(f"{url}/invocations", json={"dataframe_records": [{"title": "..."}]})
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping

import requests

from fakenews.errors import PipelineError
from fakenews.processes import free_port, stop_group


def serve_command(model_uri: str, host: str, port: int) -> list[str]:
    # --env-manager local: the model's dependencies are this venv; no conda/virtualenv build.
    return [
        "mlflow",
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "-h",
        host,
        "-p",
        str(port),
    ]


@contextlib.contextmanager
def served_model(
    model_uri: str,
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    timeout: float = 180.0,
) -> Iterator[str]:
    """Serve `model_uri` until the block ends; yields the base URL. Stops the whole
    process group (the server forks workers), so nothing outlives the block."""
    port = port or free_port(host)
    url = f"http://{host}:{port}"
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            serve_command(model_uri, host, port),
            env=dict(env or os.environ),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_until_ready(proc, url, timeout, log)
            yield url
        finally:
            stop_group(proc, "mlflow models serve")


def _wait_until_ready(proc: subprocess.Popen, url: str, timeout: float, log) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise PipelineError(
                f"mlflow models serve exited {proc.returncode}:\n{log.read()[-3000:]}"
            )
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise PipelineError(f"mlflow models serve did not answer {url}/ping within {timeout:.0f} s")


def assert_serves_as_trained(params: dict, run, record: dict) -> None:
    """No train/serve skew: the logged pyfunc, loaded back and given the raw validation
    titles, reproduces the validation metrics its training stage logged."""
    import mlflow
    import pytest

    from fakenews.data.splits import load_splits
    from fakenews.training import binary_metrics

    val = load_splits(params["paths"]["split"], params["paths"]["ingested"], ["id", "title"])["val"]
    served = mlflow.pyfunc.load_model(record["model_uri"]).predict(val[["title"]])
    served_metrics = binary_metrics(val["label"], served["fake_probability"], record["threshold"])
    logged = {
        key.removeprefix("val."): value
        for key, value in run.data.metrics.items()
        if key.startswith("val.")
    }
    assert logged.keys() == {*served_metrics, "threshold"}
    for key, value in served_metrics.items():
        assert value == pytest.approx(logged[key], abs=1e-6, nan_ok=True), key
    assert (served["predicted_label"] == "fake").mean() == pytest.approx(
        (served["fake_probability"] >= logged["threshold"]).mean()
    )
