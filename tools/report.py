"""A Markdown report of this working tree against a base revision, as a pull request needs.

    python -m tools.report                     # against the merge base with main
    python -m tools.report --base v1.2 --out report

It writes `<out>/report.md` and `<out>/plots/*.png`:
- the promotion verdict of metrics/promotion.json, with the interval it rests on;
- the test figures of each model (accuracy, ROC-AUC) at the base and now;
- `dvc metrics diff` and `dvc params diff` as tables (what changed only);
- one PNG per plot whose data changed (`dvc plots diff --json`), rendered offline
  (tools.dvc_diff).

The folder appears whole or not at all (fakenews.data.io.atomic_path). On a pull request CI
posts report.md as a comment and keeps the folder as an artifact (.github/workflows/ci.yml).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fakenews.cli import Parser
from fakenews.data.io import atomic_path
from fakenews.data.params import PROJECT_ROOT
from fakenews.errors import PipelineError, cli_errors
from tools.dvc_diff import changed_plots, command, dvc_json

MAIN_BRANCHES = ("main", "origin/main")
PROMOTION = Path("metrics/promotion.json")
EVALUATION = "metrics/evaluate.json"
HEADLINE = ("accuracy", "roc_auc")  # the figures of the first table, per model
COLLAPSE_ROWS = 12  # longer tables fold into <details>


# ---- the base revision --------------------------------------------------------------------


def resolve_base(base: str | None, repo: Path) -> tuple[str, str]:
    """(short commit, how it was chosen) of `base`, or of the merge base with main."""
    if base is not None:
        try:
            sha = command(["git", "rev-parse", "--short", "--verify", f"{base}^{{commit}}"], repo)
        except PipelineError:
            raise PipelineError(f"--base {base}: not a commit of {repo}") from None
        return sha.strip(), f"`{base}`"
    for branch in MAIN_BRANCHES:
        try:
            sha = command(["git", "merge-base", "HEAD", branch], repo).strip()
        except PipelineError:
            continue
        short = command(["git", "rev-parse", "--short", sha], repo).strip()
        return short, f"the merge base with `{branch}`"
    raise PipelineError(
        f"no branch {' or '.join(MAIN_BRANCHES)} to take the merge base with; give --base <rev>"
    )


# ---- formatting -----------------------------------------------------------------------------


def shown(value: Any, signed: bool = False) -> str:
    """A value as a table cell: numbers to four significant digits, `|` escaped."""
    if value is None:
        return "–"
    if isinstance(value, float):
        text = f"{value:+.4g}" if signed else f"{value:.4g}"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def folded(summary: str, lines: list[str], rows: int) -> list[str]:
    """A table under a heading line, folded into <details> when it is long."""
    if rows <= COLLAPSE_ROWS:
        return [f"**{summary}**", "", *lines, ""]
    summary = f"<summary>{summary} ({rows} rows)</summary>"
    return ["<details>", summary, "", *lines, "", "</details>", ""]


# ---- the sections ---------------------------------------------------------------------------


def promotion_section(repo: Path) -> list[str]:
    path = repo / PROMOTION
    if not path.is_file():
        return ["## Promotion", "", f"No `{PROMOTION}`: `evaluate` has not run here.", ""]
    report = json.loads(path.read_text(encoding="utf-8"))
    decision = report.get("decision")
    lines = ["## Promotion", ""]
    if not decision:
        return [*lines, f"**No decision:** {report.get('reason', 'no reason recorded')}", ""]
    verdict = "Promoted" if decision["promoted"] else "Not promoted"
    lines += [f"**{verdict}:** {decision['reason']}", ""]
    metric = decision["metric"]
    low, high = decision.get("difference_ci_low"), decision.get("difference_ci_high")
    rows = [
        [f"challenger v{decision['version']}", shown(decision.get("challenger_score"))],
        [f"champion v{decision['champion_version']}", shown(decision.get("champion_score"))]
        if decision.get("champion_version")
        else ["champion", "none yet"],
    ]
    if low is not None and high is not None:
        rows.append(
            [
                "difference, 95 % CI",
                f"[{shown(low, signed=True)}, {shown(high, signed=True)}] "
                f"(must lie above {shown(decision['margin'])}; "
                f"{decision['rows_compared']} test rows)",
            ]
        )
    return [*lines, *table(["", f"{metric} on the test split"], rows), ""]


def headline_section(metrics: dict[str, Any], repo: Path) -> list[str]:
    """Each model's accuracy and ROC-AUC, base → now, from evaluate.json."""
    changed = metrics.get(EVALUATION, {})
    path = repo / EVALUATION
    now = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if not now:
        return []
    rows = []
    for model, figures in now.items():
        cells = [model]
        for name in HEADLINE:
            diff = changed.get(f"{model}.{name}")
            value = figures.get(name)
            cells.append(
                f"{shown(diff['old'])} → {shown(diff['new'])} ({shown(diff['diff'], True)})"
                if diff and diff.get("old") is not None
                else shown(value)
            )
        rows.append(cells)
    return ["## Test figures", "", *table(["model", *HEADLINE], rows), ""]


def metrics_section(metrics: dict[str, Any]) -> list[str]:
    """One table per metrics file; the promotion record is the Promotion section's."""
    metrics = {path: c for path, c in metrics.items() if Path(path) != PROMOTION and c}
    lines = ["## Metrics (`dvc metrics diff`)", ""]
    if not metrics:
        return [*lines, "No metric changed.", ""]
    for path, changes in sorted(metrics.items()):
        rows = [
            [f"`{name}`", shown(c.get("old")), shown(c.get("new")), shown(c.get("diff"), True)]
            for name, c in sorted(changes.items())
        ]
        lines += folded(path, table(["metric", "base", "now", "change"], rows), len(rows))
    return lines


def params_section(params: dict[str, Any]) -> list[str]:
    lines = ["## Params (`dvc params diff`)", ""]
    if not any(params.values()):
        return [*lines, "No param changed.", ""]
    for path, changes in sorted(params.items()):
        rows = [
            [f"`{name}`", shown(c.get("old")), shown(c.get("new"))]
            for name, c in sorted(changes.items())
        ]
        lines += folded(path, table(["param", "base", "now"], rows), len(rows))
    return lines


# ---- the report -----------------------------------------------------------------------------


def plots_section(base: str, repo: Path, folder: Path) -> list[str]:
    lines = ["## Plots (`dvc plots diff`)", ""]
    drawn = changed_plots(base, repo, folder)
    if not drawn:
        return [*lines, "No plot changed.", ""]
    for plot_id, title, file_name in drawn:
        lines += [f"### {title}", "", f"![{plot_id}](plots/{file_name})", ""]
    return lines


def build_report(base: str | None, out: Path, repo: Path = PROJECT_ROOT) -> dict[str, int]:
    """Write `out`/report.md and its plots; counts of what changed."""
    sha, chosen = resolve_base(base, repo)
    head = command(["git", "rev-parse", "--short", "HEAD"], repo).strip()
    dirty = bool(command(["git", "status", "--porcelain", "--untracked-files=no"], repo).strip())
    metrics = dvc_json(["metrics", "diff", sha], repo)
    params = dvc_json(["params", "diff", sha], repo)
    with atomic_path(out) as tmp:
        (tmp / "plots").mkdir(parents=True)
        plots = plots_section(sha, repo, tmp / "plots")
        now = f"`{head}`" + (" with uncommitted changes" if dirty else "")
        lines = [
            "# Pipeline report",
            "",
            f"This tree ({now}) against `{sha}`, {chosen}.",
            "",
            *promotion_section(repo),
            *headline_section(metrics, repo),
            *metrics_section(metrics),
            *params_section(params),
            *plots,
        ]
        (tmp / "report.md").write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return {
        "metrics": sum(len(c) for c in metrics.values()),
        "params": sum(len(c) for c in params.values()),
        "plots": len(list((out / "plots").glob("*.png"))),
    }


def build_parser() -> Parser:
    parser = Parser(
        prog="python -m tools.report",
        description="Write a Markdown report of this working tree against a base revision: "
        "the promotion verdict with its interval, each model's test figures, `dvc metrics "
        "diff` and `dvc params diff` tables, and every changed plot rendered to PNG offline.",
        epilog="`make report [BASE=<rev>]` runs it; CI posts the report on each pull request.",
    )
    parser.add_argument(
        "--base",
        help="the git revision to compare with (default: the merge base of HEAD with main, "
        "or with origin/main)",
    )
    parser.add_argument(
        "--out", default="report", help="folder for report.md and plots/ (default: %(default)s)"
    )
    return parser


@cli_errors
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    counts = build_report(args.base, out if out.is_absolute() else PROJECT_ROOT / out)
    print(
        f"report: {out / 'report.md'} ({counts['metrics']} metrics and {counts['params']} params "
        f"changed, {counts['plots']} plots drawn)"
    )


if __name__ == "__main__":
    main()
