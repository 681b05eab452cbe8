"""The MLflow UI in a real browser: the tiny pipeline's experiment opens on its training
runs, comparing the LSTM and BERT evaluation runs shows roc_auc for both, the Models tab
lists the trained models with their test figures, and the champion version leads to its
model's test figures.

Headless Debian Chromium, driven by Playwright for Python (`make test-ui` installs the
browser when it is missing). Screenshots of every step go to test-output/ui/ (git-ignored),
so a failure can be looked at; with UPDATE_DOCS_IMAGES=1 the ones the README shows are
also written to docs/images/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.support.commands import PROJECT_ROOT
from tests.support.tiny import TINY_REPRO_EXPERIMENT, TINY_REPRO_MODEL

pytestmark = [pytest.mark.slow, pytest.mark.ui]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = PROJECT_ROOT / "test-output" / "ui"
DOCS_IMAGES = PROJECT_ROOT / "docs" / "images"
TOP_OF_PAGE = {"x": 0, "y": 0, "width": 1600, "height": 640}  # the docs' crop of a page
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


def save_screenshot(page, name: str, for_docs: bool = False, **options) -> None:
    """To test-output/ui/; one the README shows also to docs/images/ with UPDATE_DOCS_IMAGES=1."""
    page.screenshot(path=SCREENSHOTS / name, **options)
    if for_docs and os.environ.get("UPDATE_DOCS_IMAGES") == "1":
        DOCS_IMAGES.mkdir(exist_ok=True)
        shutil.copyfile(SCREENSHOTS / name, DOCS_IMAGES / name)


def close_assistant(page) -> None:
    """The UI opens an assistant panel beside the page on a first visit; it hides columns."""
    close = page.get_by_role("button", name="Close")
    if close.count():
        close.first.click()


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
    save_screenshot(page, "1-runs.png")
    assert "/runs" in page.url  # the training runs table, not the GenAI traces overview

    for name in ("evaluate_lstm", "evaluate_bert"):
        rows[name].get_by_role("checkbox").first.check()
    page.get_by_role("button", name="Compare").first.click()
    page.get_by_text("accuracy_score", exact=True).first.wait_for(timeout=60_000)
    # The metrics table is virtualized grids (names, then each run's values) that render only
    # the rows in view: scroll them together until the row of roc_auc is rendered.
    metric = page.get_by_text("roc_auc", exact=True).first
    for _ in range(30):
        if metric.count():
            break
        page.evaluate(
            "document.querySelectorAll('.ReactVirtualized__Grid').forEach(g => g.scrollTop += 300)"
        )
        page.wait_for_timeout(300)
    metric.wait_for(timeout=10_000)
    page.wait_for_timeout(500)  # the value grids render on the scroll event after the names
    save_screenshot(page, "2-compare.png", full_page=True)
    assert "compare-runs" in page.url
    text = page.inner_text("body")
    for name in ("evaluate_lstm", "evaluate_bert"):
        assert runs[name].info.run_id in page.url and name in text
        assert shows_value(text, runs[name].data.metrics["roc_auc"]), name


# Columns the Models tab screenshot leaves out, so the test figures fit beside the names
HIDDEN_COLUMNS = (
    "Status",
    "Logged from",
    "Dataset",
    "No dataset",
    "Parameters",
    "true_negatives",
    "false_positives",
    "false_negatives",
    "true_positives",
    "example_count",
    "recall_score",
    "precision_score",
    "log_loss",
)


def hide_columns(page, titles: tuple[str, ...]) -> None:
    """Untick columns in the Models tab's column chooser (a tree; metrics under their dataset)."""
    page.get_by_role("button", name="Columns").click()
    tree = page.get_by_role("tree").locator("xpath=..")
    dataset = tree.locator('xpath=.//span[starts-with(@title, "Dataset: ")]').first
    dataset.locator("xpath=../span[contains(@class, 'switcher')]").click()  # unfold its metrics
    for title in titles:
        tree.locator(f'xpath=.//span[@title="{title}"]').first.click()
    page.keyboard.press("Escape")


def grid_row_text(page, name: str, model_id: str) -> str:
    """The text of the table row of LoggedModel `model_id`, whose link reads `name`: the grid
    renders each row as one element per section (the pinned name columns, then the rest),
    joined by row-index. By id, because tests sharing the server may log newer models of
    the same name to this experiment."""
    link = page.locator(f'a[href*="{model_id}"]').filter(has_text=re.compile(f"^{name}$"))
    index = page.get_by_role("row").filter(has=link).first.get_attribute("row-index")
    return " ".join(page.locator(f'[role="row"][row-index="{index}"]').all_inner_texts())


def test_the_models_tab_lists_each_trained_model_with_its_test_figures(
    tiny_repro, tracking_server, browser_page
):
    page = browser_page
    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name(TINY_REPRO_EXPERIMENT)
    models = {}
    for family in ("lstm", "bert", "tfidf", "ensemble"):
        record = json.loads(
            (tiny_repro.outputs / "models" / family / "mlflow_run.json").read_text()
        )
        model = client.get_logged_model(record["model_uri"].removeprefix("models:/"))
        models[family] = (model.model_id, {m.key: m.value for m in model.metrics if m.dataset_name})

    page.goto(
        f"{tracking_server}/#/experiments/{experiment.experiment_id}/models"
        "?workflowType=machine_learning"
    )
    page.get_by_role("link", name="ensemble", exact=True).first.wait_for(timeout=60_000)
    close_assistant(page)
    hide_columns(page, HIDDEN_COLUMNS)
    for metric in ("accuracy_score", "roc_auc"):
        page.get_by_text(metric, exact=True).first.wait_for(timeout=10_000)
    page.get_by_text("Dataset: assignment-test", exact=False).first.wait_for(timeout=10_000)
    for family, (model_id, figures) in models.items():
        text = grid_row_text(page, family, model_id)
        for metric in ("accuracy_score", "roc_auc"):
            assert shows_value(text, figures[metric]), (family, metric, text)
    save_screenshot(page, "models-tab.png", for_docs=True, clip=TOP_OF_PAGE)


def test_the_champion_version_leads_to_its_models_test_figures(
    tiny_repro, tracking_server, browser_page
):
    page = browser_page
    client = MlflowClient(tracking_server)
    champion = client.get_model_version_by_alias(TINY_REPRO_MODEL, "champion")
    family = champion.tags["family"]
    page.goto(f"{tracking_server}/#/models/{TINY_REPRO_MODEL}/versions/{champion.version}")
    page.get_by_text(f"Version {champion.version}", exact=True).first.wait_for(timeout=60_000)
    close_assistant(page)
    page.get_by_text("@ champion", exact=False).first.wait_for(timeout=10_000)
    save_screenshot(page, "champion-version.png")

    page.get_by_role("link", name=family, exact=True).first.click()  # its Source Model
    search = page.get_by_placeholder("Search metrics")
    search.wait_for(timeout=60_000)
    search.fill("roc_auc")  # leaves val.roc_auc of the no-dataset figures, then the test ones
    model = client.get_logged_model(page.url.rsplit("/", 1)[-1].split("?")[0])
    assert model.name == family and model.model_id in champion.source
    expected = {m.key: m.value for m in model.metrics if m.dataset_name}["roc_auc"]
    row = (
        page.get_by_role("row")
        .filter(has_text=re.compile(r"^\s*roc_auc(?!_)"))  # not roc_auc_ci_*
        .filter(has_text="assignment-test")
        .first
    )
    row.wait_for(timeout=10_000)
    row.scroll_into_view_if_needed()
    assert shows_value(row.inner_text(), expected), row.inner_text()
    save_screenshot(page, "champion-model.png", for_docs=True, clip=TOP_OF_PAGE)
