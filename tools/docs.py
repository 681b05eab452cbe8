"""The figures in README.md and docs/ come from the files the pipeline wrote, never from a
hand: each figure block is generated here from metrics/*.json (or the params schema), and
a test regenerates every block and fails when a page differs.

    python -m tools.docs check   # exit 1 and name the pages whose blocks are stale
    python -m tools.docs write   # regenerate every block in place

A block is the text between `<!-- generated: NAME -->` and `<!-- end generated -->`; NAME
picks the generator below. Everything outside the blocks is prose, and carries no figure.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from fakenews.cli import Parser
from fakenews.data.io import atomic_path
from fakenews.data.params import PROJECT_ROOT
from fakenews.data.sections import Params
from fakenews.errors import PipelineError, cli_errors
from tools import bench_figures

PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(.*?)(<!-- end generated -->)", re.S)
METRICS = PROJECT_ROOT / "metrics"

# The models of the results tables, in order, with the name a reader knows them by.
MODEL_NAMES = {
    "ensemble": "Ensemble of the families (weights chosen on validation)",
    "bert": "BERT (MiniLM-L6, fine-tuned)",
    "lstm": "LSTM (GloVe 6B 50d, bidirectional)",
    "tfidf": "TF-IDF + logistic regression (trained family)",
    "tfidf_logreg": "TF-IDF + logistic regression, word + char n-grams (reference)",
    "tfidf_unigram": "TF-IDF + logistic regression, cleaned-token unigrams (older reference)",
    "majority": "majority class",
}
HEADLINE_MODELS = ("ensemble", "bert", "lstm", "tfidf", "tfidf_logreg", "majority")
# The reference design's own figures (accuracy on its 2,095 headlines): other data, shown for
# context only, never compared as if measured here.
ARTICLE_ACCURACY = {"LSTM": 0.594, "BERT": 0.613}


def read_metrics(name: str) -> dict[str, Any]:
    path = METRICS / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(
            f"{path}: not found; run `make repro` (or `make bench`) first"
        ) from None


def interval(scores: dict[str, float], metric: str) -> str:
    low, high = scores.get(f"{metric}_ci_low"), scores.get(f"{metric}_ci_high")
    value = f"{scores[metric]:.3f}"
    return f"{value} ({low:.3f}–{high:.3f})" if low is not None and high is not None else value


def results_rows(evaluation: dict[str, Any], models: tuple[str, ...]) -> list[str]:
    rows = [
        "| model | accuracy (95 % CI) | ROC-AUC (95 % CI) | Brier | ECE | threshold |",
        "|---|---|---|---|---|---|",
    ]
    for name in (m for m in models if m in evaluation):
        s = evaluation[name]
        rows.append(
            f"| {MODEL_NAMES.get(name, name)} | {interval(s, 'accuracy')} | "
            f"{interval(s, 'roc_auc')} | {s['brier']:.3f} | {s['ece']:.3f} | "
            f"{s['threshold']:.3f} |"
        )
    return rows


def split_line() -> str:
    test = read_metrics("split.json")["test"]
    return (
        f"Test split: {test['rows']:,} headlines, {test['fake_rate']:.1%} fake; 95 % "
        "bootstrap intervals in brackets, each model at the threshold it chose on validation."
    )


def results() -> list[str]:
    """The README's table: the headline models on the test split, and the article's figures."""
    article = ", ".join(f"{name} {value:.3f}" for name, value in ARTICLE_ACCURACY.items())
    return [
        split_line(),
        "",
        *results_rows(read_metrics("evaluate.json"), HEADLINE_MODELS),
        "",
        f"For context only, on other data: the reference article's accuracy ({article}) "
        "on its own 2,095 headlines.",
    ]


def results_full() -> list[str]:
    """Every model of metrics/evaluate.json."""
    evaluation = read_metrics("evaluate.json")
    order = tuple(MODEL_NAMES) + tuple(sorted(set(evaluation) - set(MODEL_NAMES)))
    return [split_line(), "", *results_rows(evaluation, order)]


def results_by_source() -> list[str]:
    evaluation = read_metrics("evaluate.json")
    order = [m for m in MODEL_NAMES if m in evaluation]
    sources = sorted({s for m in order for s in evaluation[m]["by_source"]})
    rows = [
        "| model | " + " | ".join(f"{s}: rows, accuracy, ROC-AUC" for s in sources) + " |",
        "|---|" + "---|" * len(sources),
    ]
    for name in order:
        cells = []
        for source in sources:
            s = evaluation[name]["by_source"].get(source)
            cells.append(f"{s['rows']}, {s['accuracy']:.3f}, {s['roc_auc']:.3f}" if s else "–")
        rows.append(f"| {MODEL_NAMES.get(name, name)} | " + " | ".join(cells) + " |")
    return rows


def paired() -> list[str]:
    """Each trained model's paired difference against the one evaluate compares them with."""
    evaluation = read_metrics("evaluate.json")
    rows = [
        "| model | against | accuracy difference (95 % CI) | ROC-AUC difference (95 % CI) |",
        "|---|---|---|---|",
    ]
    for name in (m for m in MODEL_NAMES if m in evaluation):
        for key, d in evaluation[name].items():
            if key.startswith("paired_vs_"):
                against = key.removeprefix("paired_vs_")
                rows.append(
                    f"| {MODEL_NAMES.get(name, name)} | {against} | "
                    f"{d['accuracy_difference']:+.3f} ({d['accuracy_difference_ci_low']:+.3f} to "
                    f"{d['accuracy_difference_ci_high']:+.3f}) | {d['roc_auc_difference']:+.4f} "
                    f"({d['roc_auc_difference_ci_low']:+.4f} to "
                    f"{d['roc_auc_difference_ci_high']:+.4f}) |"
                )
    return rows


def promotion() -> list[str]:
    report = read_metrics("promotion.json")
    versions = ", ".join(
        f"{family} v{v}" for family, v in sorted(report.get("versions", {}).items())
    )
    return [
        f"Registered model `{report.get('registered_model', '?')}` ({versions or 'none'}): "
        f"{report['reason']}"
    ]


# ---- the params reference ------------------------------------------------------------------


def type_text(annotation: Any) -> str:
    """A reader's name for a field's type, ranges included: `int ≥ 1`, `pre | post`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        bounds = [bound_text(m) for m in args[1:]]
        return " ".join([type_text(args[0]), *[b for b in bounds if b]])
    if origin is typing.Literal:
        return " \\| ".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else type_text(a) for a in args)
    if origin in (list, dict):
        return f"{origin.__name__} of " + ", ".join(type_text(a) for a in args)
    return getattr(annotation, "__name__", str(annotation))


def bound_text(meta: Any) -> str:
    for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
        if getattr(meta, attr, None) is not None:
            return f"{sign} {getattr(meta, attr)}"
    for field in getattr(meta, "metadata", []) or []:
        text = bound_text(field)
        if text:
            return text
    return ""


def field_rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key, annotation = f"{prefix}{name}", field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += field_rows(annotation, f"{key}.")
            continue
        kind = type_text(annotation)
        extra = " ".join(bound_text(m) for m in field.metadata).strip()
        default = json.dumps(field.get_default(call_default_factory=True), default=plain)
        rows.append(f"| `{key}` | {kind}{' ' + extra if extra else ''} | `{default}` |")
    return rows


def plain(value: Any) -> Any:
    """JSON for a default that is itself a section."""
    return value.model_dump() if isinstance(value, BaseModel) else str(value)


def params_reference() -> list[str]:
    rows = ["| key | type | default |", "|---|---|---|"]
    for name, field in Params.model_fields.items():
        rows += field_rows(field.annotation, f"{name}.")
    return rows


GENERATORS: dict[str, Callable[[], list[str]]] = {
    "results": results,
    "results-full": results_full,
    "results-by-source": results_by_source,
    "promotion": promotion,
    "paired": paired,
    "team-load": bench_figures.team_load,
    "team-doors": bench_figures.team_doors,
    "throughput": bench_figures.throughput,
    "ensemble-cost": bench_figures.ensemble_cost,
    "faults": bench_figures.faults,
    "suite": bench_figures.suite,
    "params-reference": params_reference,
}


def regenerate(text: str, page: Path) -> str:
    def block(match: re.Match) -> str:
        name = match["name"]
        if name not in GENERATORS:
            raise PipelineError(
                f"{page}: unknown generated block {name!r}; known: {', '.join(GENERATORS)}"
            )
        return match.group(1) + "\n".join(GENERATORS[name]()) + "\n" + match.group(4)

    return BLOCK.sub(block, text)


def stale_pages() -> list[Path]:
    return [
        p
        for p in PAGES
        if regenerate(p.read_text(encoding="utf-8"), p) != p.read_text(encoding="utf-8")
    ]


@cli_errors
def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="python -m tools.docs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["check", "write"])
    args = parser.parse_args(argv)
    if args.action == "write":
        for page in PAGES:
            text = page.read_text(encoding="utf-8")
            new = regenerate(text, page)
            if new != text:
                with atomic_path(page) as tmp:
                    tmp.write_text(new, encoding="utf-8")
                print(f"rewrote the figures of {page.relative_to(PROJECT_ROOT)}")
        return 0
    stale = stale_pages()
    for page in stale:
        print(
            f"{page.relative_to(PROJECT_ROOT)}: figures differ from metrics/; "
            "run `python -m tools.docs write`"
        )
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
