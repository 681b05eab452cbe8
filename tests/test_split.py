"""split: sizes, stratification, determinism and no duplicate straddling two splits."""

from __future__ import annotations

import pandas as pd
import pytest

from fakenews.data.splits import join_splits
from fakenews.errors import PipelineError
from stages import split as split_stage
from tests.support.params import section

PARAMS = {"seed": 42, "test_size": 0.2, "val_size": 0.1}


def split(frame: pd.DataFrame, params: dict) -> dict[str, pd.DataFrame]:
    """The stage's core on plain params, read as a params file would be."""
    return split_stage.split(frame, section("split", **params))


def frame(n: int = 400) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"id{i}" for i in range(n)],
            "title": [f"Headline number {i}" for i in range(n)],
            "label": [int(i % 10 < 4) for i in range(n)],  # 40 % fake
        }
    )


def test_sizes_and_stratification():
    parts = split(frame(), PARAMS)
    sizes = {k: len(v) for k, v in parts.items()}
    assert sizes == {"train": 280, "val": 40, "test": 80}
    for part in parts.values():
        assert part["label"].mean() == pytest.approx(0.4, abs=0.03)
    ids = [set(p["id"]) for p in parts.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set.union(*ids) == set(frame()["id"])


def test_same_seed_same_split_other_seed_other_split():
    a = split(frame(), PARAMS)["test"]["id"].tolist()
    b = split(frame(), PARAMS)["test"]["id"].tolist()
    c = split(frame(), dict(PARAMS, seed=7))["test"]["id"].tolist()
    assert a == b and a != c


def test_duplicate_titles_never_straddle_splits():
    base = frame(200)
    copies = base.assign(id=base["id"] + "-copy", title=base["title"].str.upper() + "!")
    parts = split(pd.concat([base, copies], ignore_index=True), PARAMS)
    where = {}
    for name, part in parts.items():
        for title in part["title"]:
            where.setdefault(split_stage.duplicate_key(pd.Series([title]))[0], set()).add(name)
    assert len(where) == 200
    assert all(len(names) == 1 for names in where.values())


@pytest.mark.parametrize(
    "sizes", [{"test_size": 0.6, "val_size": 0.5}, {"test_size": 0, "val_size": 0.1}]
)
def test_bad_sizes_are_explained(sizes):
    with pytest.raises(PipelineError, match="split.test_size"):
        split(frame(), dict(PARAMS, **sizes))


def test_report_counts_rows_and_balance():
    report = split_stage.split_report(split(frame(), PARAMS))
    assert report["test"]["rows"] == 80 and report["test"]["fake_rate"] == pytest.approx(
        0.4, abs=0.03
    )


def test_the_assignment_is_ids_labels_and_splits_and_joins_back_by_id():
    parts = split(frame(), PARAMS)
    assignment = split_stage.assignment(parts)
    assert list(assignment.columns) == ["id", "label", "split"]
    shuffled = (
        frame().sample(frac=1, random_state=3).assign(tokens=lambda f: f["title"].str.split())
    )
    joined = join_splits(assignment, shuffled, "cleaned.parquet")
    for name, part in parts.items():
        assert joined[name]["id"].tolist() == part["id"].tolist()
        assert joined[name]["title"].tolist() == part["title"].tolist()
        assert joined[name]["tokens"].map(" ".join).tolist() == part["title"].tolist()

    with pytest.raises(
        PipelineError,
        match=r"cleaned.parquet: 2 id\(s\) of the split assignment "
        r"are missing \(.+\); rerun the pipeline",
    ):
        join_splits(assignment, shuffled.iloc[2:], "cleaned.parquet")


# --- the dataset's own split (split.column) ---------------------------------------------

TRUTH = ["pants-fire", "false", "barely-true", "half-true", "mostly-true", "true"]
LIAR_NAMES = ["statement_id", "truth", "statement", "subject", "speaker", "part"]


def fact_checking_tsv(path, rows: int = 36) -> list[tuple]:
    """A headerless TSV shaped like LIAR: id, six-valued truthfulness, statement, other
    columns, and the benchmark's own split in `part`. Returns its rows."""
    parts = ["train"] * 4 + ["valid", "test"]
    records = [
        (
            f"{i}.json",
            TRUTH[i % 6],
            f"Statement number {i} about taxes",
            "economy",
            f"speaker-{i % 3}",
            parts[(i // 6) % 6],
        )
        for i in range(rows)
    ]
    path.write_text("".join("\t".join(r) + "\n" for r in records), encoding="utf-8")
    return records


def test_the_datasets_own_split_is_kept_through_ingest_and_split(tmp_path):
    from stages import ingest as ingest_stage

    records = fact_checking_tsv(tmp_path / "liar.tsv")
    ingest_params = {
        "format": "csv",
        "path": str(tmp_path / "liar.tsv"),
        "max_rows_per_label": None,
        "csv": {
            "sep": "\t",
            "header": False,
            "names": LIAR_NAMES,
            "encoding": "utf-8",
            "id_column": "statement_id",
            "title_columns": ["statement"],
            "label_column": "truth",
            "keep_columns": ["part"],
            "labels": {"fake": TRUTH[:3], "real": TRUTH[3:]},
        },
    }
    ingested, _ = ingest_stage.ingest(section("ingest", **ingest_params))
    params = dict(
        PARAMS,
        column="part",
        column_values={"train": ["train"], "val": ["valid"], "test": ["test"]},
    )
    parts = split(ingested, params)

    expected = {"train": "train", "val": "valid", "test": "test"}
    for name, part in parts.items():
        ours = {(r[0], int(r[1] in TRUTH[:3])) for r in records if r[5] == expected[name]}
        assert set(zip(part["id"], part["label"], strict=False)) == ours
    assert [len(parts[n]) for n in ("train", "val", "test")] == [24, 6, 6]
    # the seed and sizes play no part: another seed gives the same split
    assert (
        split(ingested, dict(params, seed=7))["test"]["id"].tolist() == parts["test"]["id"].tolist()
    )
    assert list(split_stage.assignment(parts).columns) == ["id", "label", "split"]


def test_an_unmapped_split_value_or_a_missing_column_is_explained():
    frame_with_part = frame(12).assign(part=["train"] * 8 + ["dev"] * 2 + ["heldout"] * 2)
    mapping = {"train": ["train"], "val": ["dev"], "test": ["test"]}
    with pytest.raises(
        PipelineError,
        match=r"column 'part' has values outside split.column_values: 'heldout' \(2\)",
    ):
        split(frame_with_part, dict(PARAMS, column="part", column_values=mapping))
    with pytest.raises(PipelineError, match="no rows for split test"):
        split(frame_with_part.iloc[:10], dict(PARAMS, column="part", column_values=mapping))
    with pytest.raises(PipelineError, match="no column 'fold'.*ingest.csv.keep_columns"):
        split(frame(), dict(PARAMS, column="fold", column_values=mapping))


@pytest.mark.parametrize("side", ["assignment", "table"])
def test_a_join_by_id_is_one_to_one_or_refused(side):
    """A repeated id on either side would merge many-to-many: the same id's rows in
    train and test, some with the other row's label."""
    assignment = split_stage.assignment(split(frame(), PARAMS))
    table = frame()
    if side == "assignment":
        assignment = pd.concat([assignment, assignment.iloc[[0]]], ignore_index=True)
        where = "the split assignment"
    else:
        table = pd.concat([table, table.iloc[[7]].assign(title="Another title")])
        where = "cleaned.parquet"
    repeated = (assignment if side == "assignment" else table)["id"].iloc[-1]
    with pytest.raises(
        PipelineError,
        match=rf"{where}: 1 id\(s\) appear in more than one row: "
        rf"'{repeated}' \(2 rows\)",
    ):
        join_splits(assignment, table, "cleaned.parquet")


def test_the_split_stage_refuses_an_input_with_repeated_ids(tmp_path, capsys):
    from fakenews.data.params import read_params
    from tests.support.commands import PROJECT_ROOT, write_params

    ingested = tmp_path / "headlines.parquet"
    pd.concat([frame(), frame().iloc[:3].assign(title="Copy")]).to_parquet(ingested, index=False)
    params = read_params(PROJECT_ROOT / "params.yaml")
    params["paths"].update(
        ingested=str(ingested),
        split=str(tmp_path / "out" / "a.parquet"),
        split_metrics=str(tmp_path / "out" / "s.json"),
    )
    with pytest.raises(SystemExit):
        split_stage.main(["--params", str(write_params(tmp_path / "p.yaml", params))])
    err = capsys.readouterr().err
    assert "headlines.parquet: 3 id(s) appear in more than one row" in err
    assert not (tmp_path / "out").exists()
