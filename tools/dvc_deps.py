"""The code each DVC stage runs, found by reading imports, and dvc.yaml's deps kept equal
to it, so `dvc repro` reruns a stage when (and only when) code it runs changes.

    python -m tools.dvc_deps check   # exit 1 and name the differences
    python -m tools.dvc_deps write   # rewrite each stage's code deps in dvc.yaml

Imports are read statically, those inside functions included, and followed through the
`stages.*` and `fakenews.*` modules transitively, with every package's __init__ (they set
the environment) and the file MLflow executes to load a logged model.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import yaml

from fakenews.cli import Parser
from fakenews.data.io import atomic_path
from fakenews.data.params import PROJECT_ROOT
from fakenews.errors import cli_errors

PACKAGES = ("stages", "fakenews")
# Code a module runs without importing it: the models-from-code file logged with every model.
READS_AS_CODE = {"fakenews.tracking.pyfunc": ["fakenews.tracking.model_code"]}
DVC_YAML = PROJECT_ROOT / "dvc.yaml"


def module_file(module: str, root: Path = PROJECT_ROOT) -> Path | None:
    path = root.joinpath(*module.split("."))
    if path.is_dir():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def imported_modules(path: Path, root: Path = PROJECT_ROOT) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGES):
            found.add(node.module)
            # `from fakenews.tracking import registry` imports the module fakenews.tracking.registry
            found |= {
                f"{node.module}.{a.name}"
                for a in node.names
                if module_file(f"{node.module}.{a.name}", root)
            }
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(PACKAGES)}
    return found


def code_closure(module: str, root: Path = PROJECT_ROOT) -> set[str]:
    """Project-relative paths of every stages.*/fakenews.* file that `module` runs."""
    seen, pending = set(), [module]
    while pending:
        name = pending.pop()
        path = module_file(name, root)
        if name in seen or path is None:
            continue
        seen.add(name)
        pending.extend(imported_modules(path, root))
        pending.extend(READS_AS_CODE.get(name, []))
        pending.extend(name.rsplit(".", depth)[0] for depth in range(1, name.count(".") + 1))
    return {module_file(name, root).relative_to(root).as_posix() for name in seen}


def stage_names(dvc_yaml: Path = DVC_YAML) -> list[str]:
    return list(yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"])


def declared_code_deps(stage: str, dvc_yaml: Path = DVC_YAML) -> set[str]:
    dvc = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))
    return {dep for dep in dvc["stages"][stage]["deps"] if dep.startswith(("stages/", "fakenews/"))}


def differences(dvc_yaml: Path = DVC_YAML) -> dict[str, tuple[set[str], set[str]]]:
    """{stage: (undeclared files it runs, declared files it does not run)}, where they differ."""
    out = {}
    for stage in stage_names(dvc_yaml):
        runs, declared = code_closure(f"stages.{stage}"), declared_code_deps(stage, dvc_yaml)
        if runs != declared:
            out[stage] = (runs - declared, declared - runs)
    return out


def rewritten(text: str, stages: list[str]) -> str:
    """dvc.yaml's text with each stage's code deps (the `- fakenews/...` and `- stages/...`
    lines at the head of its deps) replaced by its closure; everything else kept as it is."""
    for stage in stages:
        block = re.compile(
            rf"(\n  {re.escape(stage)}:\n(?:    .*\n)*?    deps:\n)"
            r"((?:      - (?:fakenews|stages)/.*\n)*)"
        )
        lines = "".join(f"      - {path}\n" for path in sorted(code_closure(f"stages.{stage}")))
        text, count = block.subn(lambda m, lines=lines: m.group(1) + lines, text, count=1)
        if not count:
            raise ValueError(f"dvc.yaml: no deps list found for stage {stage}")
    return text


@cli_errors
def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="python -m tools.dvc_deps",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["check", "write"])
    args = parser.parse_args(argv)
    if args.action == "write":
        text = rewritten(DVC_YAML.read_text(encoding="utf-8"), stage_names())
        with atomic_path(DVC_YAML) as tmp:
            tmp.write_text(text, encoding="utf-8")
    found = differences()
    for stage, (missing, extra) in found.items():
        print(
            f"{stage}: runs but does not declare {sorted(missing)}; "
            f"declares but does not run {sorted(extra)}"
        )
    if not found:
        print("dvc.yaml: every stage declares exactly the code it runs")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
