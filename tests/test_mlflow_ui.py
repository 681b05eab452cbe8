"""The MLflow UI in a real browser: the tiny pipeline's experiment opens on its training
runs, and comparing the LSTM and BERT evaluation runs shows test.roc_auc for both.

Headless Debian Chromium, driven by Playwright for Python (`make test-ui` installs the
browser when it is missing). Screenshots of every step go to test-output/ui/ (git-ignored),
so a failure can be looked at.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.support.commands import PROJECT_ROOT
from tests.support.tiny import TINY_REPRO_EXPERIMENT

pytestmark = [pytest.mark.slow, pytest.mark.ui]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = PROJECT_ROOT / "test-output" / "ui"
# Without the networking switches Chromium keeps trying hosts this machine cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NUMBER = re.compile(r"\d+\.\d+")


@pytest.fixture(scope="module")
def browser_page():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: `make test-ui` installs Debian's chromium")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1600, "height": 1000})
        finally:
            browser.close()


def shows_value(text: str, value: float) -> bool:
    """Whether the page text shows `value` as the UI rounds it (to three decimals)."""
    return any(abs(float(number) - value) <= 5e-4 + 1e-9 for number in NUMBER.findall(text))


def test_the_experiment_opens_on_its_runs_and_compares_the_two_models(
    tiny_repro, tracking_server, browser_page
):
    page = browser_page
    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name(TINY_REPRO_EXPERIMENT)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = {}  # the newest run of each name: the UI lists newest first
    for r in client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"]
    ):
        runs.setdefault(r.info.run_name, r)

    # The link the README gives: the experiment in the UI's model-training view.
    page.goto(
        f"{tracking_server}/#/experiments/{experiment.experiment_id}?workflowType=machine_learning"
    )
    rows = {
        name: page.get_by_role("row").filter(has_text=name).first
        for name in ("train_lstm", "train_bert", "evaluate_lstm", "evaluate_bert")
    }
    for row in rows.values():
        row.wait_for(timeout=60_000)
    page.screenshot(path=SCREENSHOTS / "1-runs.png")
    assert "/runs" in page.url  # the training runs table, not the GenAI traces overview

    for name in ("evaluate_lstm", "evaluate_bert"):
        rows[name].get_by_role("checkbox").first.check()
    page.get_by_role("button", name="Compare").first.click()
    page.get_by_text("test.accuracy", exact=True).first.wait_for(timeout=60_000)
    # The metrics table is virtualized grids (names, then each run's values) that render only
    # the rows in view: scroll them together until the row of test.roc_auc is rendered.
    metric = page.get_by_text("test.roc_auc", exact=True).first
    for _ in range(30):
        if metric.count():
            break
        page.evaluate(
            "document.querySelectorAll('.ReactVirtualized__Grid').forEach(g => g.scrollTop += 300)"
        )
        page.wait_for_timeout(300)
    metric.wait_for(timeout=10_000)
    page.wait_for_timeout(500)  # the value grids render on the scroll event after the names
    page.screenshot(path=SCREENSHOTS / "2-compare.png", full_page=True)
    assert "compare-runs" in page.url
    text = page.inner_text("body")
    for name in ("evaluate_lstm", "evaluate_bert"):
        assert runs[name].info.run_id in page.url and name in text
        assert shows_value(text, runs[name].data.metrics["test.roc_auc"]), name
