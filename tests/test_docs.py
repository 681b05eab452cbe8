"""README.md and docs/ cannot rot: every command block is run or names what runs it, every
figure is generated from the metrics files, the DAG is `dvc dag` output, and every link lands.

Blocks marked `<!-- tested -->` run line by line in the tiny repro's copy
(tests/test_dvc_repro.py::test_documented_commands_run); `make test` is the one line skipped:
it is what `.ci/run` itself runs. A block marked `<!-- tested-by: tests/<file> -->` is run in
substance by that test module; `<!-- example: why -->` marks the few that need outside
infrastructure (a cloud, a second host).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.commands import PROJECT_ROOT, run
from tools.docs import PAGES, stale_pages

README = PROJECT_ROOT / "README.md"
TESTED = "<!-- tested -->"
NOT_RUN_HERE = {"make test"}  # .ci/run runs it; running it inside the suite would recurse
README_MAX_LINES = 250
FENCE = re.compile(r"(?P<marker><!--[^\n]*-->\s*\n)?```bash\n(?P<body>.*?)```", re.S)


def relative(path: Path) -> str:
    return path.relative_to(PROJECT_ROOT).as_posix()


def command_lines(body: str) -> list[str]:
    return [
        line.split(" #")[0].strip()
        for line in body.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def program(command: str) -> str:
    """What a command line runs, as a test would spell it: `tools.score` for
    `python -m tools.score ...`, the target for `make score ...`, else the first word."""
    words = [w for w in command.split() if "=" not in w or w.startswith("-")]
    if words[:2] == ["python", "-m"]:
        return words[2]
    if words[0] == "make" and len(words) > 1:
        return words[1]
    return words[0]


def runnable_blocks(text: str) -> list[list[str]]:
    """Command lines of each ```bash block right after a `<!-- tested -->` line."""
    return [
        command_lines(m["body"])
        for m in FENCE.finditer(text)
        if (m["marker"] or "").strip() == TESTED
    ]


def documented_commands() -> list[str]:
    """Every tested command line of README.md and docs/, in page order."""
    return [
        line
        for page in PAGES
        for block in runnable_blocks(page.read_text(encoding="utf-8"))
        for line in block
    ]


def test_the_tested_blocks_hold_the_two_commands_and_an_experiment():
    commands = documented_commands()
    assert "make repro" in commands and "make test" in commands
    assert any(line.startswith("dvc exp run -S") for line in commands)


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_every_command_block_is_run_or_names_what_runs_it(page):
    for block in FENCE.finditer(page.read_text(encoding="utf-8")):
        marker = (block["marker"] or "").strip()
        where = f"{relative(page)}: the block starting {block['body'].splitlines()[0]!r}"
        if marker == TESTED:
            continue
        tested_by = re.fullmatch(r"<!-- tested-by: (\S+) -->", marker)
        example = re.fullmatch(r"<!-- example: (.{10,}) -->", marker)
        assert tested_by or example, f"{where} needs a tested, tested-by or example marker"
        if tested_by:
            test_file = PROJECT_ROOT / tested_by.group(1)
            assert test_file.is_file(), f"{where} names a missing test: {test_file}"
            text = test_file.read_text(encoding="utf-8")
            programs = {program(line) for line in command_lines(block["body"])}
            assert any(p in text for p in programs), f"{where}: {test_file} runs none of {programs}"


def test_every_figure_is_generated_from_the_metrics():
    assert [relative(p) for p in stale_pages()] == []


def test_the_readme_stays_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= README_MAX_LINES


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_every_relative_link_lands(page):
    links = re.findall(
        r"\]\((?!https?://|#)([^)#]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")
    )
    missing = [link for link in links if not (page.parent / link).exists()]
    assert missing == []


def test_dag_is_dvc_dag_output():
    dag = run(["dvc", "dag", "--md"], PROJECT_ROOT).stdout.strip()
    assert dag in README.read_text(encoding="utf-8"), "paste `dvc dag --md` into the README"


def test_every_test_the_readme_cites_as_proof_exists():
    """The "What is guaranteed" list names the test behind each promise: each must exist."""
    cited = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", README.read_text(encoding="utf-8"))
    assert len(cited) >= 8
    for module, name in cited:
        source = (PROJECT_ROOT / module).read_text(encoding="utf-8")
        assert re.search(rf"^def {name}\(", source, re.M), f"{module}::{name} is not a test"
