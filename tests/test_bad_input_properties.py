"""Property-based attacks on what reads user files: ingest and batch scoring get random
bytes, broken quoting, NUL, mixed encodings, 100 kB cells, empty and header-only files.
Whatever they get: never a traceback, never a partial output, and every error names the
file (Hypothesis; params files have theirs in test_params.py)."""

from __future__ import annotations

import contextlib
import copy
import io
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakenews.data.params import read_params
from fakenews.errors import PipelineError
from fakenews.scoring.stream import score_table
from fakenews.scoring.tables import check_input, input_table
from stages import ingest as ingest_stage
from tests.support.commands import PROJECT_ROOT, write_params

DEFAULTS = read_params(PROJECT_ROOT / "params.yaml")
EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Cells a hostile or broken file holds: quotes that never close, separators and line
# breaks inside cells, NUL, the label values, and any other text.
CELLS = (
    st.sampled_from(['"', '""', '"open, never closed', "a,b", "line\nbreak", "\x00", "NUL\x00in"])
    | (st.sampled_from(["Fake", "Real", "FAKE", "1", "0", "", " ", "satire"]))
    | st.text(max_size=12)
)


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    """Joined by commas with no quoting: what a broken exporter writes."""
    return "\n".join(",".join(row) for row in [header, *rows]) + "\n"


def encoded(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace")


HEADERS = st.sampled_from([["title", "label"], ["label", "title"], ["id", "title", "label"]]) | (
    st.lists(CELLS, max_size=3)
)
TABLES = st.builds(csv_text, HEADERS, st.lists(st.lists(CELLS, max_size=4), max_size=6))
FILES = st.one_of(
    st.binary(max_size=300),  # random bytes
    st.builds(encoded, TABLES, st.sampled_from(["utf-8", "latin-1", "utf-16", "cp1252"])),
    st.just(b""),  # empty
    st.sampled_from([b"title,label\n", b"title\n", b"\n\n"]),  # header only, or blank lines
    # a 100 kB cell, valid or with a byte that is not UTF-8
    st.builds(
        lambda c: b"title,label\n" + c * 100_000 + b",Fake\nshort,Real\n",
        st.sampled_from([b"x", b"\xe9"]),
    ),
    # mixed encodings: a UTF-8 line, then a Latin-1 one
    st.just("title,label\nCafé owner,Fake\n".encode() + "Café arrested,Real\n".encode("latin-1")),
)


def outputs_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@EXAMPLES
@given(content=FILES, id_column=st.sampled_from([None, "id"]))
def test_ingest_refuses_in_one_line_naming_the_file_or_writes_a_whole_table(content, id_column):
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        source, out = work / "raw.csv", work / "out"
        source.write_bytes(content)
        params = copy.deepcopy(DEFAULTS)
        params["ingest"].update(format="csv", path=str(source), duplicate_ids="refuse")
        params["ingest"]["csv"]["id_column"] = id_column
        params["paths"].update(
            ingested=str(out / "headlines.parquet"), ingest_report=str(out / "ingest.json")
        )
        params_file = write_params(work / "params.yaml", params)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                ingest_stage.main(["--params", str(params_file)])
                status = 0
            except SystemExit as exited:
                status = exited.code
        if status:
            lines = err.getvalue().strip().splitlines()
            assert status == 2 and len(lines) == 1 and str(source) in lines[0], err.getvalue()
            assert not out.exists() or outputs_of(out) == [], "a refused input left output"
        else:
            frame = pd.read_parquet(out / "headlines.parquet")
            report = pd.read_json(out / "ingest.json", typ="series")
            assert len(frame) == report["rows_kept"] > 0 and frame["id"].is_unique


class LengthModel:
    """A stand-in where only reading and writing tables is under attack."""

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        p = np.clip(frame["title"].str.len().to_numpy() / 100.0, 0, 1)
        return pd.DataFrame(
            {"fake_probability": p, "predicted_label": np.where(p >= 0.5, "fake", "real")}
        )


@EXAMPLES
@given(
    parts=st.lists(FILES, min_size=1, max_size=3),
    suffix=st.sampled_from([".csv", ".tsv", ".parquet"]),
    output=st.sampled_from(["scored.csv", "scored.parquet"]),
)
def test_scoring_refuses_naming_the_file_or_writes_every_row(parts, suffix, output):
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        source = work / "in" if len(parts) > 1 else work / f"in{suffix}"
        if len(parts) > 1:
            source.mkdir()
            for i, content in enumerate(parts):
                (source / f"part-{i}{suffix}").write_bytes(content)
        else:
            source.write_bytes(parts[0])
        target = work / "out" / output
        try:
            table = input_table(source)
            rows = check_input(table, "title", rows=4)
            counts = score_table(table, LengthModel(), target, chunk_rows=3, batch_size=2)
        except PipelineError as err:
            assert str(source) in str(err), str(err)  # the file, or the folder holding it
            assert "\n" not in str(err).strip(), str(err)  # one line
            assert not target.parent.exists() or outputs_of(target.parent) == []
            return
        scored = (
            pd.read_parquet(target)
            if output.endswith(".parquet")
            else pd.read_csv(target, dtype=str, keep_default_na=False, sep=",")
        )
        assert counts.rows == rows == len(scored)


@pytest.mark.parametrize("cell", [b"x", b"\xe9"])
def test_a_100_kb_cell_is_read_whole_or_refused_for_its_encoding(tmp_path, cell):
    source = tmp_path / "big.csv"
    source.write_bytes(b"id,title\na," + cell * 100_000 + b"\n")
    if cell == b"x":
        assert check_input(input_table(source), "title", rows=10) == 1
    else:
        with pytest.raises(PipelineError, match=r"big\.csv: cannot be decoded as utf-8"):
            check_input(input_table(source), "title", rows=10)


def test_a_row_with_more_cells_than_the_header_is_refused_not_shifted(tmp_path):
    """pandas takes an unnamed first column as the index and shifts every cell left: the
    title would be read from the label column. Found by the properties above."""
    source = tmp_path / "shifted.csv"
    source.write_text("title,label\nAliens land,Fake,extra\nBudget passes,Real,extra\n")
    with pytest.raises(PipelineError, match=r"shifted\.csv: some rows have more cells"):
        check_input(input_table(source), "title", rows=10)
    params = copy.deepcopy(DEFAULTS["ingest"])
    params.update(format="csv", path=str(source))
    from tests.support.params import section

    with pytest.raises(PipelineError, match=r"shifted\.csv: some rows have more cells"):
        ingest_stage.ingest(section("ingest", **params))


def test_a_column_name_with_a_line_break_keeps_the_error_on_one_line(tmp_path):
    source = tmp_path / "odd.csv"
    source.write_text('"head\nline",label\nx,Fake\n')
    with pytest.raises(PipelineError) as raised:
        check_input(input_table(source), "title", rows=10)
    assert "columns found: 'head\\nline', label" in str(raised.value)
    assert "\n" not in str(raised.value)
