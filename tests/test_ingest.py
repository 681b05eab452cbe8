"""ingest: the real FakeNewsNet files, both reference CSV shapes, and every bad input."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest

from fakenews.data.params import read_params
from fakenews.errors import PipelineError
from stages import ingest as ingest_stage
from tests.support.commands import PROJECT_ROOT, write_params
from tests.support.params import section

DEFAULTS = read_params(PROJECT_ROOT / "params.yaml")


def ingest(params: dict):
    """The stage's core on plain params, read as a params file would be."""
    return ingest_stage.ingest(section("ingest", **params))


def csv_params(path: Path, **csv_overrides) -> dict:
    params = copy.deepcopy(DEFAULTS["ingest"])
    params.update(format="csv", path=str(path))
    params["csv"].update(csv_overrides)
    return params


def test_real_fakenewsnet_files(shared_data):
    params = dict(DEFAULTS["ingest"], path=str(shared_data / "fakenewsnet"))
    frame, report = ingest(params)
    assert list(frame.columns) == ["id", "title", "label", "source"]
    assert 5500 <= len(frame) <= 5545
    assert frame["title"].is_unique
    assert set(frame["source"]) == {"gossipcop", "politifact"}
    assert set(frame["label"]) == {0, 1}
    assert report["rows_read"] == 5779
    assert report["rows_kept"] == len(frame)
    assert report["rows_read"] - report["rows_kept"] == sum(report["dropped"].values())
    assert 0.45 < frame["label"].mean() < 0.55


def test_fakenewsnet_labels_come_from_file_names(tmp_path):
    (tmp_path / "gossipcop_fake.csv").write_text("id,news_url,title,tweet_ids\na,u,Aliens land,1\n")
    (tmp_path / "politifact_real.csv").write_text(
        "id,news_url,title,tweet_ids\nb,u,Budget passes,2\n"
    )
    frame, _ = ingest(dict(DEFAULTS["ingest"], path=str(tmp_path)))
    rows = frame.set_index("id")
    assert rows.loc["a", "label"] == 1 and rows.loc["a", "source"] == "gossipcop"
    assert rows.loc["b", "label"] == 0 and rows.loc["b", "source"] == "politifact"


def test_tidy_drops_and_counts_empty_duplicate_and_conflicting_titles():
    raw = pd.DataFrame(
        {
            "id": list("abcdefg"),
            "title": ["One", "  ", "One", "Two  words", "Two words", "Mixed", "Mixed"],
            "label": [1, 0, 1, 0, 0, 1, 0],
            "source": "s",
        }
    )
    frame, report = ingest_stage.tidy(raw, "raw")
    assert frame["title"].tolist() == ["One", "Two words"]
    assert report["dropped"] == {
        "empty_title": 1,
        "duplicate_title": 2,
        "conflicting_label": 2,
        "duplicate_id": 0,
    }


def test_kaggle_news_articles_shape(tmp_path):
    path = tmp_path / "news_articles.csv"
    pd.DataFrame(
        {
            "author": ["x", "y", "z"],
            "published": ["2016", "2016", "2016"],
            "title": ["Muslims BUSTED", "Senate votes on bill", ""],
            "text": ["...", "...", "..."],
            "language": ["english"] * 3,
            "label": ["Fake", "Real", "Fake"],
            "hasImage": ["1", "0", "1"],
        }
    ).to_csv(path, index=False)
    frame, report = ingest(csv_params(path))
    assert frame["title"].tolist() == ["Muslims BUSTED", "Senate votes on bill"]
    assert frame["label"].tolist() == [1, 0]
    assert frame["source"].unique().tolist() == ["news_articles"]
    assert report["dropped"]["empty_title"] == 1


def test_fake_or_real_news_shape_with_joined_title_and_text_tsv(tmp_path):
    path = tmp_path / "fake_or_real_news.tsv"
    pd.DataFrame(
        {
            "Unnamed: 0": ["8476", "10294"],
            "title": ["You Can Smell Hillary's Fear", "Kerry to go to Paris"],
            "text": ["Daniel Greenfield", "US Secretary of State"],
            "label": ["FAKE", "REAL"],
        }
    ).to_csv(path, index=False, sep="\t")
    params = csv_params(
        path, sep="\t", title_columns=["title", "text"], title_joiner=" | ", id_column="Unnamed: 0"
    )
    frame, _ = ingest(params)
    assert frame["id"].tolist() == ["8476", "10294"]
    assert frame["title"].tolist() == [
        "You Can Smell Hillary's Fear | Daniel Greenfield",
        "Kerry to go to Paris | US Secretary of State",
    ]
    assert frame["label"].tolist() == [1, 0]


def test_headerless_csv_with_names(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("Moon made of cheese,FAKE\nRain expected,REAL\n")
    frame, _ = ingest(csv_params(path, header=False, names=["title", "label"]))
    assert frame["label"].tolist() == [1, 0]


# --- bad input: a clear one-paragraph error naming the file, and no output ---------


def run_main_expecting_error(tmp_path: Path, ingest_params: dict, capsys) -> str:
    out = tmp_path / "out"
    params = copy.deepcopy(DEFAULTS)
    params["ingest"] = ingest_params
    params["paths"].update(
        ingested=str(out / "headlines.parquet"), ingest_report=str(out / "ingest.json")
    )
    params_file = write_params(tmp_path / "params.yaml", params)
    with pytest.raises(SystemExit) as exit_info:
        ingest_stage.main(["--params", str(params_file)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not out.exists() or not any(out.iterdir()), "a failed run left output behind"
    return err


def test_missing_file(tmp_path, capsys):
    err = run_main_expecting_error(tmp_path, csv_params(tmp_path / "nope.csv"), capsys)
    assert "nope.csv" in err and "not found" in err


def test_unreadable_encoding(tmp_path, capsys):
    path = tmp_path / "latin.csv"
    path.write_bytes("title,label\nCaf\xe9 owner arrested,Fake\n".encode("latin-1"))
    err = run_main_expecting_error(tmp_path, csv_params(path), capsys)
    assert "latin.csv" in err and "utf-8" in err and "encoding" in err
    frame, _ = ingest(csv_params(path, encoding="latin-1"))
    assert frame["title"].tolist() == ["Café owner arrested"]


def test_missing_column_lists_columns_found(tmp_path, capsys):
    path = tmp_path / "cols.csv"
    path.write_text("headline,label\nSomething,Fake\n")
    err = run_main_expecting_error(tmp_path, csv_params(path), capsys)
    assert "cols.csv" in err and "title" in err and "headline, label" in err


def test_unmapped_labels_listed_with_counts(tmp_path, capsys):
    path = tmp_path / "labels.csv"
    path.write_text("title,label\nA,Fake\nB,satire\nC,satire\nD,unknown\n")
    err = run_main_expecting_error(tmp_path, csv_params(path), capsys)
    assert "labels.csv" in err and "'satire' (2)" in err and "'unknown' (1)" in err
    assert "row 3" in err


def test_zero_usable_rows(tmp_path, capsys):
    path = tmp_path / "empty_titles.csv"
    path.write_text("title,label\n ,Fake\n\t,Real\n")
    err = run_main_expecting_error(tmp_path, csv_params(path), capsys)
    assert "empty_titles.csv" in err and "zero usable rows" in err


def test_empty_file(tmp_path, capsys):
    path = tmp_path / "blank.csv"
    path.write_text("")
    err = run_main_expecting_error(tmp_path, csv_params(path), capsys)
    assert "blank.csv" in err and "empty" in err


def test_main_writes_table_and_report(tmp_path, shared_data):
    out = tmp_path / "out"
    params = copy.deepcopy(DEFAULTS)
    params["ingest"]["path"] = str(shared_data / "fakenewsnet")
    params["ingest"]["max_rows_per_label"] = 10
    params["paths"].update(ingested=str(out / "h.parquet"), ingest_report=str(out / "r.json"))
    ingest_stage.main(["--params", str(write_params(tmp_path / "p.yaml", params))])
    frame = pd.read_parquet(out / "h.parquet")
    assert len(frame) == 20 and frame["label"].sum() == 10
    assert (out / "r.json").read_text().count("rows_kept") == 1
    assert sorted(p.name for p in out.iterdir()) == ["h.parquet", "r.json"]


# --- ids: unique from ingest on -----------------------------------------------------------


def repeated_ids_csv(path: Path) -> Path:
    """The issue's file: 400 headlines, the last 100 reusing the ids of the first 100."""
    ids = [f"n{i}" for i in range(300)] + [f"n{i}" for i in range(100)]
    pd.DataFrame(
        {
            "id": ids,
            "title": [f"Distinct headline number {i}" for i in range(400)],
            "label": ["Fake" if i % 3 else "Real" for i in range(400)],
        }
    ).to_csv(path, index=False)
    return path


def test_repeated_ids_are_refused_naming_the_file_the_id_and_both_rows(tmp_path, capsys):
    path = repeated_ids_csv(tmp_path / "news.csv")
    err = run_main_expecting_error(tmp_path, csv_params(path, id_column="id"), capsys)
    assert "id 'n0' names two different headlines" in err
    assert "news.csv row 2 ('Distinct headline number 0')" in err
    assert "news.csv row 302 ('Distinct headline number 300')" in err
    assert "(99 more id(s) repeat)" in err and "ingest.duplicate_ids: keep_first" in err


def test_two_source_files_sharing_an_id_are_refused_naming_both_files(tmp_path):
    (tmp_path / "gossipcop_fake.csv").write_text("id,title\nx1,Aliens land in Ohio\n")
    (tmp_path / "gossipcop_real.csv").write_text("id,title\nx1,Senate passes budget\n")
    with pytest.raises(
        PipelineError, match=r"gossipcop_fake.csv row 2 .* gossipcop_real.csv row 2"
    ):
        ingest(dict(DEFAULTS["ingest"], path=str(tmp_path)))


def test_keep_first_drops_and_counts_repeats_and_no_id_reaches_two_splits(tmp_path):
    from fakenews.data.splits import join_splits
    from stages import split as split_stage

    path = repeated_ids_csv(tmp_path / "news.csv")
    params = dict(csv_params(path, id_column="id"), duplicate_ids="keep_first")
    frame, report = ingest(params)
    assert report["dropped"]["duplicate_id"] == 100 and report["rows_kept"] == 300
    assert frame["id"].is_unique and "Distinct headline number 300" not in set(frame["title"])
    parts = split_stage.split(frame, section("split"))
    joined = join_splits(split_stage.assignment(parts), frame, "ingested")
    placed = pd.concat([part.assign(split=name) for name, part in joined.items()])
    assert len(placed) == 300 and placed["id"].is_unique


def test_the_real_data_holds_no_repeated_id_once_conflicting_titles_go(shared_data):
    """politifact14940 is both a fake and a real row with one title: dropped as a
    conflicting label, so the real data passes the default refuse."""
    frame, report = ingest(dict(DEFAULTS["ingest"], path=str(shared_data / "fakenewsnet")))
    assert frame["id"].is_unique and report["dropped"]["duplicate_id"] == 0
    assert "politifact14940" not in set(frame["id"])
