"""Inference figures: batch throughput through mlflow.pyfunc and `mlflow models serve` latency."""

from __future__ import annotations

import statistics
import time

import pandas as pd


def pyfunc_throughput(model_uri: str, titles: list[str], repeats: int) -> dict[str, float]:
    """Headlines per second through mlflow.pyfunc, batch of the whole test split."""
    import mlflow.pyfunc

    load_started = time.monotonic()
    model = mlflow.pyfunc.load_model(model_uri)
    load_seconds = time.monotonic() - load_started
    frame = pd.DataFrame({"title": titles})
    model.predict(frame.head(8))  # warm-up: graph tracing is not throughput
    timings = []
    for _ in range(repeats):
        started = time.monotonic()
        model.predict(frame)
        timings.append(time.monotonic() - started)
    single = []
    for title in titles[:20]:
        started = time.monotonic()
        model.predict(pd.DataFrame({"title": [title]}))
        single.append(time.monotonic() - started)
    return {
        "headlines_per_second": round(len(titles) / statistics.median(timings), 1),
        "batch_rows": len(titles),
        "single_row_ms": round(1000 * statistics.median(single), 1),
        "load_seconds": round(load_seconds, 1),
    }


def serve_latency(model_uri: str, env: dict[str, str], titles: list[str]) -> dict[str, float]:
    """Median and p95 latency of one-headline requests to `mlflow models serve`."""
    import requests

    from tests.support.serving import served_model

    with served_model(model_uri, env) as url:
        requests.post(
            f"{url}/invocations", json={"dataframe_records": [{"title": titles[0]}]}, timeout=60
        ).raise_for_status()  # warm-up
        latencies = []
        for title in titles:
            started = time.monotonic()
            response = requests.post(
                f"{url}/invocations", json={"dataframe_records": [{"title": title}]}, timeout=60
            )
            latencies.append(1000 * (time.monotonic() - started))
            response.raise_for_status()
    latencies.sort()
    return {
        "requests": len(latencies),
        "median_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 1),
    }
