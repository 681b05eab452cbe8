"""The scorer's tables: inputs read in chunks from files or folders of part files, outputs
written chunk by chunk and renamed into place (fakenews.scoring.tables, .stream)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fakenews.errors import PipelineError
from fakenews.scoring.outputs import MARKER, check_apart, check_replaceable, mark_folder
from fakenews.scoring.stream import score_table
from fakenews.scoring.tables import check_input, input_table, table_writer


def headlines(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"h{i}" for i in range(start, start + n)],
            "title": [f"headline number {i}" for i in range(start, start + n)],
        }
    )


class LengthModel:
    """Stands in for a pyfunc model where only the streaming is under test: the probability
    is a function of the title, and it records the largest batch it was given."""

    def __init__(self) -> None:
        self.largest = 0

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        self.largest = max(self.largest, len(frame))
        p = frame["title"].str.len().to_numpy() / 100.0
        return pd.DataFrame(
            {"fake_probability": p, "predicted_label": np.where(p >= 0.18, "fake", "real")}
        )


def test_a_folder_of_csv_parts_is_read_in_chunks_with_positions_per_file(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    headlines(25).to_csv(folder / "part-0.csv", index=False)
    headlines(10, 25).to_csv(folder / "part-1.csv", index=False)
    (folder / "_SUCCESS").touch()
    (folder / ".part-0.csv.crc").write_text("x")
    table = input_table(folder)
    chunks = list(table.chunks(rows=10))
    assert [(c.file.name, c.first_row, len(c.frame)) for c in chunks] == [
        ("part-0.csv", 0, 10),
        ("part-0.csv", 10, 10),
        ("part-0.csv", 20, 5),
        ("part-1.csv", 0, 10),
    ]
    assert table.columns() == ["id", "title"] and check_input(table, "title", rows=7) == 35


def test_parquet_parts_with_a_null_title_name_the_file_and_row(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    headlines(5).to_parquet(folder / "a.parquet", index=False)
    bad = headlines(5, 5)
    bad.loc[3, "title"] = None
    bad.to_parquet(folder / "b.parquet", index=False)
    with pytest.raises(
        PipelineError, match=r"b\.parquet, column 'title': .* not in row 3 \(missing\)$"
    ):
        check_input(input_table(folder), "title", rows=2)


@pytest.mark.parametrize(
    "setup, says",
    [
        (lambda p: p.mkdir(), "an empty folder"),
        (
            lambda p: (
                p.mkdir(),
                headlines(1).to_csv(p / "a.csv"),
                headlines(1).to_parquet(p / "b.parquet"),
            ),
            "both Parquet and CSV",
        ),
        (lambda p: None, "file not found"),
    ],
)
def test_unusable_inputs_are_one_line_errors(tmp_path, setup, says):
    setup(tmp_path / "in")
    with pytest.raises(PipelineError, match=says):
        input_table(tmp_path / "in")


def test_streamed_scoring_holds_one_chunk_and_writes_every_row(tmp_path):
    source = tmp_path / "in.tsv"
    headlines(95).assign(title=lambda f: f["title"].where(f.index != 40, "  ")).to_csv(
        source, sep="\t", index=False
    )
    model = LengthModel()
    for target in (tmp_path / "out.parquet", tmp_path / "out.tsv"):
        counts = score_table(input_table(source), model, target, chunk_rows=20, batch_size=8)
        scored = (
            pd.read_parquet(target)
            if target.suffix == ".parquet"
            else pd.read_csv(target, sep="\t", dtype=str, keep_default_na=False)
        )
        assert scored["id"].tolist() == [f"h{i}" for i in range(95)]
        assert list(scored.columns) == ["id", "title", "fake_probability", "predicted_label"]
        assert counts.rows == 95 and counts.empty == 1
        assert counts.fake == int((scored["predicted_label"] == "fake").sum())
    assert model.largest == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".out.parquet.fakenews-score.json",  # the marker that lets a rerun replace it
        ".out.tsv.fakenews-score.json",
        "in.tsv",
        "out.parquet",
        "out.tsv",
    ]


def test_a_bad_row_in_a_later_chunk_leaves_no_output(tmp_path):
    source = tmp_path / "in.parquet"
    frame = headlines(50)
    frame.loc[45, "title"] = None
    frame.to_parquet(source, index=False)
    target = tmp_path / "out" / "scored.csv"
    with pytest.raises(PipelineError, match=r"not in row 45 \(missing\)"):
        score_table(input_table(source), LengthModel(), target, chunk_rows=10)
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_the_writer_refuses_a_folder_and_writes_nothing_on_failure(tmp_path):
    with pytest.raises(PipelineError, match="is a folder"):
        with table_writer(tmp_path):
            pass
    with pytest.raises(RuntimeError):
        with table_writer(tmp_path / "x.parquet") as append:
            append(headlines(3))
            raise RuntimeError("boom")
    assert not (tmp_path / "x.parquet").exists()


# ---- columns by name, nested folders, outputs that are not ours --------------------------


def test_part_files_with_columns_in_another_order_are_scored_by_name(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    headlines(3).to_csv(folder / "a.csv", index=False)
    headlines(3, 3)[["title", "id"]].to_csv(folder / "b.csv", index=False)
    for target in (tmp_path / "scored.csv", tmp_path / "scored.parquet"):
        score_table(input_table(folder), LengthModel(), target, chunk_rows=2)
        scored = (
            pd.read_parquet(target)
            if target.suffix == ".parquet"
            else pd.read_csv(target, dtype=str, keep_default_na=False)
        )
        assert list(scored.columns[:2]) == ["id", "title"]
        assert scored["title"].tolist() == [f"headline number {i}" for i in range(6)]
        assert scored["id"].tolist() == [f"h{i}" for i in range(6)]


def test_part_files_with_different_columns_are_one_error_naming_both(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    headlines(2).to_csv(folder / "a.csv", index=False)
    headlines(2).assign(source="x").drop(columns="id").to_csv(folder / "b.csv", index=False)
    with pytest.raises(
        PipelineError,
        match=r"part files a\.csv and b\.csv have different columns "
        r"\(only a\.csv has id; only b\.csv has source\)",
    ):
        input_table(folder)


def test_a_nested_folder_is_refused_not_skipped(tmp_path):
    folder = tmp_path / "parts"
    (folder / "2024").mkdir(parents=True)
    headlines(2).to_csv(folder / "a.csv", index=False)
    headlines(2).to_csv(folder / "2024" / "b.csv", index=False)
    (folder / "_temporary").mkdir()  # Spark's and Hive's own folders stay skipped
    with pytest.raises(PipelineError, match=r"parts: holds the folder\(s\) 2024; nested"):
        input_table(folder)


def test_an_output_inside_its_input_or_holding_it_is_refused(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    with pytest.raises(PipelineError, match="inside the input"):
        check_apart(folder, folder / "scored.csv")
    with pytest.raises(PipelineError, match="inside the input"):
        check_apart(tmp_path / "in.csv", tmp_path / "in.csv")
    with pytest.raises(PipelineError, match="replacing the output would delete the input"):
        check_apart(folder, tmp_path)
    check_apart(folder, tmp_path / "scored.csv")  # a sibling is fine


def test_only_an_unchanged_earlier_output_of_scoring_is_replaced(tmp_path):
    """The user's own files and folders at --output are left alone, whatever the engine."""
    source = tmp_path / "in.csv"
    headlines(4).to_csv(source, index=False)
    mine = tmp_path / "report.csv"
    mine.write_text("the user's own report\n")
    with pytest.raises(PipelineError, match="report.csv: a file that tools.score did not write"):
        score_table(input_table(source), LengthModel(), mine)
    assert mine.read_text() == "the user's own report\n"

    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "q3.txt").write_text("keep me")
    with pytest.raises(PipelineError, match="reports: a folder that tools.score did not write"):
        check_replaceable(reports)

    ours = tmp_path / "scored.csv"
    score_table(input_table(source), LengthModel(), ours)
    score_table(input_table(source), LengthModel(), ours)  # its own earlier output: replaced
    ours.write_text("edited by hand\n")
    with pytest.raises(PipelineError, match="changed or replaced since"):
        score_table(input_table(source), LengthModel(), ours)
    assert ours.read_text() == "edited by hand\n"

    mark_folder(reports)  # as the Spark engine marks its output folder
    check_replaceable(reports)
    (reports / "notes.md").write_text("added later")
    with pytest.raises(PipelineError, match=r"holds files that tools.score did not write \(notes"):
        check_replaceable(reports)
    assert (reports / MARKER).is_file() and (reports / "q3.txt").read_text() == "keep me"
