"""The README cannot rot: its DAG is `dvc dag` output and its everyday commands run.

Every ```bash block preceded by a `<!-- tested -->` line is run, line by line, by
tests/test_dvc_repro.py::test_readme_commands_run in the copy that test reproduced on the
tiny profile. `make test` is the one line skipped: it is what `.ci/run` itself runs.
"""

from __future__ import annotations

import re

from tests.support.commands import PROJECT_ROOT, run

README = PROJECT_ROOT / "README.md"
MARKER = "<!-- tested -->"
NOT_RUN_HERE = {"make test"}  # .ci/run runs it; running it inside the suite would recurse


def runnable_blocks(text: str) -> list[list[str]]:
    """Command lines of each ```bash block right after a MARKER line (comments dropped)."""
    blocks = re.findall(re.escape(MARKER) + r"\s*\n```bash\n(.*?)```", text, flags=re.S)
    return [
        [
            line.split(" #")[0].strip()
            for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        for block in blocks
    ]


def test_marked_blocks_are_found():
    blocks = runnable_blocks(README.read_text(encoding="utf-8"))
    commands = [line for block in blocks for line in block]
    assert "make repro" in commands and "make test" in commands
    assert any(line.startswith("dvc exp run -S") for line in commands)


def test_dag_is_dvc_dag_output():
    dag = run(["dvc", "dag", "--md"], PROJECT_ROOT).stdout.strip()
    assert dag in README.read_text(encoding="utf-8"), "paste `dvc dag --md` into the README"
