"""What DVC says changed between a git revision and the working tree: `dvc metrics diff`,
`dvc params diff` and `dvc plots diff` through their JSON output, and each changed plot drawn
offline to PNG: DVC's vega-lite specs by vl-convert, DVC's image plots (the training curves)
side by side with matplotlib. tools.report puts them into the pull request report.

The plots of dvc.yaml's top-level `plots:` are drawn as defined there; an output file one of
them already draws (each metrics/evaluate_plots/*.csv) is not drawn again on its own.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from fakenews.errors import PipelineError

PNG_SCALE = 1.5


def command(args: list[str], repo: Path) -> str:
    """Run git or dvc in `repo`; its stdout, or a PipelineError with its last error line."""
    try:
        done = subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise PipelineError(f"`{args[0]}` not found; run `make venv` (or activate .venv)") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise PipelineError(f"`{' '.join(args)}` failed: {lines[-1] if lines else 'no output'}")
    return done.stdout


def dvc_json(args: list[str], repo: Path) -> Any:
    return json.loads(command(["dvc", *args, "--json"], repo) or "{}")


def defined_plot_files(repo: Path) -> set[str]:
    """The files the top-level `plots:` of dvc.yaml draw from."""
    plots = (yaml.safe_load((repo / "dvc.yaml").read_text(encoding="utf-8")) or {}).get("plots")
    files = set()
    for entry in plots or []:
        for name, spec in entry.items() if isinstance(entry, dict) else [(entry, None)]:
            y = (spec or {}).get("y")
            files.update(y if isinstance(y, dict) else [name])
    return files


def plot_ids(plots: dict[str, list], repo: Path) -> list[str]:
    """The plots to draw: every top-level definition, and each output file none draws."""
    drawn = defined_plot_files(repo)
    return [plot_id for plot_id in plots if plot_id not in drawn]


def vega_changed(content: dict[str, Any], base: str) -> bool:
    rows: dict[str, list] = {}
    for row in content.get("data", {}).get("values", []):
        rest = {k: v for k, v in row.items() if k != "rev"}
        rows.setdefault(row.get("rev"), []).append(rest)
    return len(rows) != 2 or rows.get(base) != rows.get("workspace")


def image_changed(renderers: list[dict[str, Any]]) -> bool:
    contents = {Path(r["url"]).read_bytes() for r in renderers if Path(r["url"]).is_file()}
    return len(renderers) != 2 or len(contents) != 1


def render_vega(spec: dict[str, Any], path: Path) -> None:
    import vl_convert

    path.write_bytes(vl_convert.vegalite_to_png(spec, scale=PNG_SCALE))


def render_images(renderers: list[dict[str, Any]], path: Path) -> None:
    """DVC's image plots of each revision side by side, each titled with its revision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(renderers), figsize=(6 * len(renderers), 4.5), squeeze=False)
    for ax, renderer in zip(axes[0], renderers, strict=True):
        ax.imshow(matplotlib.image.imread(renderer["url"]))
        ax.set_title(", ".join(renderer["revisions"]))
        ax.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def slug(plot_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name_of(plot_id)).strip("_")


def changed_plots(base: str, repo: Path, folder: Path) -> list[tuple[str, str, str]]:
    """Each plot whose data differ between `base` and the working tree, drawn as a PNG in
    `folder`: (plot id, title, file name)."""
    with tempfile.TemporaryDirectory() as work:
        # -o keeps DVC's copies of image plots out of the working tree
        plots = dvc_json(["plots", "diff", base, "-o", work], repo).get("data", {})
        drawn = []
        for plot_id in plot_ids(plots, repo):
            renderers = plots[plot_id]
            png = folder / f"{slug(plot_id)}.png"
            if renderers[0]["type"] == "vega":
                content = renderers[0]["content"]
                if vega_changed(content, base):
                    render_vega(content, png)
                    title = content.get("title", {})
                    title = title.get("text") if isinstance(title, dict) else title
                    drawn.append((plot_id, title or name_of(plot_id), png.name))
            elif image_changed(renderers):
                render_images(renderers, png)
                drawn.append((plot_id, name_of(plot_id), png.name))
    return drawn


def name_of(plot_id: str) -> str:
    return plot_id.removeprefix("dvc.yaml::")
