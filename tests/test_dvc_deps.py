"""dvc.yaml lists exactly the Python files each stage runs, so `dvc repro` reruns a stage
when (and only when) code it imports changes.

The imports are read statically, including those inside functions, and followed through
`stages.*` and `fakenews.*` modules transitively. A stage that imports a new helper without declaring it
fails here instead of silently reusing a stale cache.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.support.commands import PROJECT_ROOT

PACKAGES = ("stages", "fakenews")
# Code a module runs without importing it: the models-from-code file logged with every model.
READS_AS_CODE = {"fakenews.tracking.pyfunc": ["fakenews.tracking.headline_model"]}
STAGES = ["ingest", "clean", "embed", "split", "train_lstm", "train_bert", "evaluate"]


def module_file(module: str) -> Path | None:
    path = PROJECT_ROOT.joinpath(*module.split("."))
    if path.is_dir():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGES):
            found.add(node.module)
            # `from fakenews.tracking import registry` imports the module fakenews.tracking.registry
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if module_file(f"{node.module}.{a.name}")}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(PACKAGES)}
    return found


def code_closure(module: str) -> set[str]:
    """Project-relative paths of every stages.*/fakenews.* file that `module` runs, itself
    and the packages' __init__ files included (they set the environment)."""
    seen, pending = set(), [module]
    while pending:
        name = pending.pop()
        path = module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        pending.extend(imported_modules(path))
        pending.extend(READS_AS_CODE.get(name, []))
        pending.extend(name.rsplit(".", depth)[0] for depth in range(1, name.count(".") + 1))
    files = {module_file(name) for name in seen}
    return {str(p.relative_to(PROJECT_ROOT)) for p in files}


def declared_code_deps(stage: str) -> set[str]:
    dvc = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    return {dep for dep in dvc["stages"][stage]["deps"] if dep.startswith(("stages/", "fakenews/"))}


@pytest.mark.parametrize("stage", STAGES)
def test_stage_declares_exactly_the_code_it_runs(stage):
    assert declared_code_deps(stage) == code_closure(f"stages.{stage}")


def test_the_closure_follows_lazy_imports():
    # train_bert imports tracking inside main(); tracking imports server at the top.
    closure = code_closure("stages.train_bert")
    assert {"fakenews/tracking/runs.py", "fakenews/tracking/server.py"} <= closure
    assert "fakenews/tracking/registry.py" not in closure
