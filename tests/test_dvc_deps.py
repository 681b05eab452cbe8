"""dvc.yaml lists exactly the Python files each stage runs (tools.dvc_deps), so `dvc repro`
reruns a stage when (and only when) code it imports changes. A stage that imports a new
helper without declaring it fails here instead of silently reusing a stale cache."""

from __future__ import annotations

import pytest

from tests.support.commands import PROJECT_ROOT
from tools.dvc_deps import code_closure, declared_code_deps, rewritten, stage_names

STAGES = stage_names()


@pytest.mark.parametrize("stage", STAGES)
def test_stage_declares_exactly_the_code_it_runs(stage):
    assert declared_code_deps(stage) == code_closure(f"stages.{stage}")


def test_the_closure_follows_lazy_imports():
    # train_bert imports tracking inside main(); tracking imports server at the top.
    closure = code_closure("stages.train_bert")
    assert {"fakenews/tracking/runs.py", "fakenews/tracking/server.py"} <= closure
    assert "fakenews/tracking/registry.py" not in closure
    # the file MLflow executes to load a logged model, which nothing imports
    assert "fakenews/tracking/model_code.py" in closure


def test_writing_the_deps_changes_only_the_code_lines():
    text = (PROJECT_ROOT / "dvc.yaml").read_text(encoding="utf-8")
    broken = text.replace("      - fakenews/errors.py\n", "", 1).replace(
        "      - stages/split.py\n", "      - stages/split.py\n      - fakenews/nothing.py\n", 1
    )
    assert broken != text
    assert rewritten(broken, STAGES) == rewritten(text, STAGES) == text
