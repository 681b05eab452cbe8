"""The folders tell the architecture: dependencies point one way (stages, tools, bench →
fakenews), every module opens with the one concern it holds, and no module grows two."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.commands import PROJECT_ROOT

RUNTIME = ("fakenews", "stages", "tools", "bench")
MAX_LINES = 320  # past ~300 lines a module usually hides a second concern


def modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (PROJECT_ROOT / folder).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Top-level package names a module imports, inside functions too."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
    return names


def relative(path: Path) -> str:
    return path.relative_to(PROJECT_ROOT).as_posix()


def test_nothing_outside_stages_and_tests_imports_a_stage():
    offenders = [
        relative(p) for p in modules("fakenews", "tools", "bench") if "stages" in imported(p)
    ]
    assert offenders == []


def test_the_library_imports_no_tool_bench_or_test_code():
    offenders = {
        relative(p): sorted(imported(p) & {"tools", "bench", "tests"}) for p in modules("fakenews")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


@pytest.mark.parametrize("path", modules(*RUNTIME), ids=relative)
def test_every_module_opens_with_its_concern(path):
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring and len(docstring.split()) >= 5, f"{relative(path)}: say what it is for"


def test_no_module_holds_two_concerns_by_size():
    long = {
        relative(p): n
        for p in modules(*RUNTIME)
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
