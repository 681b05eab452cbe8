"""split: sizes, stratification, determinism and no duplicate straddling two splits."""
from __future__ import annotations

import pandas as pd
import pytest

from fakenews.data.splits import join_splits
from fakenews.errors import PipelineError
from stages import split as split_stage

PARAMS = {"seed": 42, "test_size": 0.2, "val_size": 0.1}


def frame(n: int = 400) -> pd.DataFrame:
    return pd.DataFrame({
        "id": [f"id{i}" for i in range(n)],
        "title": [f"Headline number {i}" for i in range(n)],
        "label": [int(i % 10 < 4) for i in range(n)],  # 40 % fake
    })


def test_sizes_and_stratification():
    parts = split_stage.split(frame(), PARAMS)
    sizes = {k: len(v) for k, v in parts.items()}
    assert sizes == {"train": 280, "val": 40, "test": 80}
    for part in parts.values():
        assert part["label"].mean() == pytest.approx(0.4, abs=0.03)
    ids = [set(p["id"]) for p in parts.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set.union(*ids) == set(frame()["id"])


def test_same_seed_same_split_other_seed_other_split():
    a = split_stage.split(frame(), PARAMS)["test"]["id"].tolist()
    b = split_stage.split(frame(), PARAMS)["test"]["id"].tolist()
    c = split_stage.split(frame(), dict(PARAMS, seed=7))["test"]["id"].tolist()
    assert a == b and a != c


def test_duplicate_titles_never_straddle_splits():
    base = frame(200)
    copies = base.assign(id=base["id"] + "-copy", title=base["title"].str.upper() + "!")
    parts = split_stage.split(pd.concat([base, copies], ignore_index=True), PARAMS)
    where = {}
    for name, part in parts.items():
        for title in part["title"]:
            where.setdefault(split_stage.duplicate_key(pd.Series([title]))[0], set()).add(name)
    assert len(where) == 200
    assert all(len(names) == 1 for names in where.values())


@pytest.mark.parametrize("sizes", [{"test_size": 0.6, "val_size": 0.5}, {"test_size": 0, "val_size": 0.1}])
def test_bad_sizes_are_explained(sizes):
    with pytest.raises(PipelineError, match="split.test_size"):
        split_stage.split(frame(), dict(PARAMS, **sizes))


def test_report_counts_rows_and_balance():
    report = split_stage.split_report(split_stage.split(frame(), PARAMS))
    assert report["test"]["rows"] == 80 and report["test"]["fake_rate"] == pytest.approx(0.4, abs=0.03)


def test_the_assignment_is_ids_labels_and_splits_and_joins_back_by_id():
    parts = split_stage.split(frame(), PARAMS)
    assignment = split_stage.assignment(parts)
    assert list(assignment.columns) == ["id", "label", "split"]
    shuffled = frame().sample(frac=1, random_state=3).assign(tokens=lambda f: f["title"].str.split())
    joined = join_splits(assignment, shuffled, "cleaned.parquet")
    for name, part in parts.items():
        assert joined[name]["id"].tolist() == part["id"].tolist()
        assert joined[name]["title"].tolist() == part["title"].tolist()
        assert joined[name]["tokens"].map(" ".join).tolist() == part["title"].tolist()

    with pytest.raises(PipelineError, match=r"cleaned.parquet: 2 id\(s\) of the split assignment "
                                            r"are missing \(.+\); rerun the pipeline"):
        join_splits(assignment, shuffled.iloc[2:], "cleaned.parquet")
