"""`make report`: a pull request's report, built on a real git + DVC repository.

The repository is a copy of the project holding what the session's tiny repro measured
(commit one, on `main`), then a branch that weakens the tfidf_unigram reference (C 1.0 ->
0.05) and reruns the real `evaluate` stage (commit two). The report against the merge base
holds both values of the param, the metric deltas as DVC computes them, one PNG per plot
whose data changed (decided here from git, independently of the tool) and parses as
Markdown with every table and image in place. CI's report step runs as ci.yml writes it.
The promotion verdict's rendering, and the tool's refusals, are checked without a server.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from markdown_it import MarkdownIt

from fakenews.data.params import read_params
from fakenews.errors import PipelineError
from fakenews.tracking import registry
from tests.support.commands import commit_all, run, write_params
from tests.test_ci_workflow import post_step, report_step
from tools.dvc_diff import defined_plot_files
from tools.report import build_report, promotion_section, shown

# metrics/evaluate_plots/<prefix>_<model>.csv is drawn by the top-level plot of dvc.yaml
PLOT_OF_PREFIX = {"roc": "roc", "pr": "precision_recall", "calibration": "calibration"}
PLOT_OF_PREFIX["confusion"] = "confusion"
MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable("table")


def git_json(repo: Path, rev: str, path: str) -> dict:
    return json.loads(run(["git", "show", f"{rev}:{path}"], repo).stdout)


@pytest.fixture(scope="module")
def two_commits(project_copy, tiny_repro):
    repo = project_copy("report")
    for name in ("data", "models", "metrics"):
        shutil.rmtree(repo / name, ignore_errors=True)
        shutil.copytree(tiny_repro.outputs / name, repo / name)
    shutil.copy2(tiny_repro.outputs / "params.yaml", repo / "params.yaml")
    run(["git", "branch", "-M", "main"], repo)
    base = commit_all(repo, "the tiny profile and what its repro measured")
    run(["git", "checkout", "-q", "-b", "weaker-reference"], repo)
    params = read_params(repo / "params.yaml")
    params["evaluate"]["references"]["tfidf_unigram"]["logreg_c"] = [0.05]
    write_params(repo / "params.yaml", params)
    # its own experiment: the tiny repro's is counted by tests/test_dvc_repro.py
    env = {**tiny_repro.env, "MLFLOW_EXPERIMENT_NAME": "report-test"}
    run([sys.executable, "-m", "stages.evaluate"], repo, env)
    head = commit_all(repo, "tfidf_unigram reference: C 0.05")
    # after the commits: git would take the link for a file to commit
    (repo / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return {"repo": repo, "base": base, "head": head, "env": env}


@pytest.fixture(scope="module")
def made_report(two_commits) -> str:
    run(["make", "report"], two_commits["repo"], two_commits["env"])
    return (two_commits["repo"] / "report/report.md").read_text(encoding="utf-8")


def changed_plots(repo: Path, base: str) -> set[str]:
    """The top-level plots whose data files differ between `base` and HEAD, by git."""
    changed = run(["git", "diff", "--name-only", base, "HEAD", "--", "metrics/"], repo).stdout
    plots = set()
    for path in map(Path, changed.split()):
        if path.parent.name == "evaluate_plots":
            plots.add(PLOT_OF_PREFIX[path.stem.split("_")[0]])
        elif path.suffix in (".csv", ".png"):
            plots.add(path.stem)
    return plots


@pytest.mark.slow
def test_the_report_holds_both_values_of_the_param_and_the_metric_deltas(two_commits, made_report):
    repo, base = two_commits["repo"], two_commits["base"]
    short = run(["git", "rev-parse", "--short", base], repo).stdout.strip()
    assert f"against `{short}`, the merge base with `main`" in made_report
    assert "| `evaluate.references.tfidf_unigram.logreg_c` | [1.0] | [0.05] |" in made_report

    before = git_json(repo, base, "metrics/evaluate.json")["tfidf_unigram"]
    after = json.loads((repo / "metrics/evaluate.json").read_text())["tfidf_unigram"]
    moved = [k for k, v in after.items() if isinstance(v, float) and v != before[k]]
    assert "log_loss" in moved  # a weaker C moves every probability
    for key in moved:
        old, new = before[key], after[key]
        row = f"| `tfidf_unigram.{key}` | {shown(old)} | {shown(new)} | {shown(new - old, True)} |"
        assert row in made_report, key
    headline = f"| tfidf_unigram | {shown(before['accuracy'])}"
    assert headline in made_report or f"| tfidf_unigram | {shown(after['accuracy'])} |" in (
        made_report
    )


@pytest.mark.slow
def test_one_png_per_changed_plot_and_valid_markdown(two_commits, made_report):
    repo, base = two_commits["repo"], two_commits["base"]
    expected = changed_plots(repo, base)
    assert {"roc", "precision_recall", "calibration"} <= expected  # the reference's curves moved
    pngs = sorted((repo / "report/plots").iterdir())
    assert {p.stem for p in pngs} == expected
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000

    tokens = MARKDOWN.parse(made_report)
    images = [t.attrGet("src") for t in tokens if t.type == "inline" for t in t.children or []]
    images = [src for src in images if src]
    assert sorted(images) == [f"plots/{p.name}" for p in pngs]
    delimiter_rows = [
        line for line in made_report.splitlines() if re.fullmatch(r"\|(---\|)+", line)
    ]
    assert sum(t.type == "table_open" for t in tokens) == len(delimiter_rows) >= 3
    for block in re.split(r"\n\s*\n", made_report):  # every row as wide as its header
        rows = [line for line in block.splitlines() if line.startswith("|")]
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
        assert len(widths) <= 1, block
    headings = [t.tag for t in tokens if t.type == "heading_open"]
    assert headings.count("h1") == 1 and headings.count("h2") >= 4
    screenshot_of(MARKDOWN.render(made_report), repo / "report")


def screenshot_of(html: str, folder: Path) -> None:
    """The rendered report in headless Chromium: the README's picture of it."""
    from playwright.sync_api import sync_playwright

    from tests.test_mlflow_ui import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, save_screenshot

    # roughly GitHub's look; the plots side by side (their titles are in the images)
    style = (
        "body{font-family:sans-serif;max-width:860px;margin:24px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}"
        "h3{display:none}p:has(>img){display:inline-block;margin:0}img{width:280px}"
    )
    page_file = folder / "report.html"
    page_file.write_text(f"<style>{style}</style>{html}", encoding="utf-8")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1100})
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            assert page.evaluate("[...document.images].every(i => i.naturalWidth > 0)")
            save_screenshot(page, "pr-report.png", for_docs=True, full_page=True)
        finally:
            browser.close()


@pytest.mark.slow
def test_cis_report_step_writes_the_file_its_post_step_sends(two_commits):
    """ci.yml's report step, run as written with the base it would get from GitHub; the
    post (cml, the GitHub API) is the one thing not run."""
    repo, base = two_commits["repo"], two_commits["base"]
    shutil.rmtree(repo / "report", ignore_errors=True)
    env = {**two_commits["env"], "BASE": base}
    run(["bash", "-c", report_step()["run"]], repo, env)
    sent = repo / shlex.split(post_step()["run"])[-1]
    short = run(["git", "rev-parse", "--short", base], repo).stdout.strip()
    assert f"against `{short}`, `{base}`" in sent.read_text(encoding="utf-8")


# ---- without a server ------------------------------------------------------------------


def promotion_json(folder: Path, report: dict) -> Path:
    (folder / "metrics").mkdir(parents=True, exist_ok=True)
    (folder / "metrics/promotion.json").write_text(json.dumps(report), encoding="utf-8")
    return folder


def test_the_verdict_shows_its_interval(tmp_path):
    decide = registry.decide  # the decision evaluate writes, made by the real rule
    win = decide("m", "5", "roc_auc", 0.0, 0.91, {"version": "4", "score": 0.88}, (0.01, 0.05), 300)
    section = "\n".join(promotion_section(promotion_json(tmp_path, {"decision": win.as_dict()})))
    assert f"**Promoted:** {win.reason}" in section
    assert "| challenger v5 | 0.91 |" in section and "| champion v4 | 0.88 |" in section
    assert "| difference, 95 % CI | [+0.01, +0.05] (must lie above 0; 300 test rows) |" in section

    tie = decide("m", "6", "roc_auc", 0.0, 0.9, {"version": "4", "score": 0.9}, (-0.02, 0.02), 300)
    section = "\n".join(promotion_section(promotion_json(tmp_path, {"decision": tie.as_dict()})))
    assert section.count("**Not promoted:**") == 1 and "[-0.02, +0.02]" in section
    none = {"decision": None, "reason": "no new model: every candidate matches"}
    section = "\n".join(promotion_section(promotion_json(tmp_path, none)))
    assert "**No decision:** no new model: every candidate matches" in section


def test_a_base_that_is_no_commit_or_no_main_branch_is_one_line(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q", "-b", "feature"], repo)
    (repo / "a.txt").write_text("a")
    commit_all(repo, "one commit, no main")
    with pytest.raises(PipelineError, match="no branch main or origin/main .* give --base"):
        build_report(None, tmp_path / "out", repo)
    with pytest.raises(PipelineError, match=r"--base nope: not a commit of"):
        build_report("nope", tmp_path / "out", repo)
    assert not (tmp_path / "out").exists()
    cli = subprocess.run(
        [sys.executable, "-m", "tools.report", "--base", "nope", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    assert cli.returncode == 2 and cli.stderr.startswith("error: --base nope: not a commit")
    assert len(cli.stderr.splitlines()) == 1


def test_each_output_file_a_top_level_plot_draws_is_not_drawn_again():
    from tests.support.commands import PROJECT_ROOT

    files = defined_plot_files(PROJECT_ROOT)
    spec = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())
    roc = next(e["roc"] for e in spec["plots"] if "roc" in e)
    assert set(roc["y"]) <= files and "metrics/train_lstm_history.csv" in files
    assert "metrics/train_lstm_curve.png" not in files  # an output only: drawn on its own
