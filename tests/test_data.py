"""Tests of reading increments with adapters.data: column mapping, Home Depot binning, cleaning, group split and fingerprint."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import datasets
import pytest

from adapters.data import column_map, load_increment, read_table
from adapters.errors import AdaptersError
from conftest import synthetic_rows, write_homedepot_csv

HOMEDEPOT_LABELS = ["irrelevant", "partial", "relevant"]


def write_csv(path: Path, header: list[str], rows: list[tuple], encoding: str = "utf-8") -> Path:
    """Write a CSV that quotes fields only where needed."""
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def rows_by_query(increment) -> dict[str, dict]:
    """Map each query to its row, over the train and validation parts together."""
    rows = increment.train.to_list() + increment.validation.to_list()
    return {row["text"]: row for row in rows}


def grouped_rows(queries: int, titles_per_query: int) -> list[tuple]:
    """Home Depot rows in which every query is judged against several products."""
    rows = []
    for query_index in range(queries):
        for title_index in range(titles_per_query):
            uid = 1000 + query_index * titles_per_query + title_index
            relevance = (1.0, 2.33, 3.0)[(query_index + title_index) % 3]
            rows.append((uid, f"title {query_index} {title_index}", f"query {query_index}", relevance))
    return rows


# Relevance values on both sides of the 2.0 and 2.5 bin edges, one query each.
EDGE_ROWS = [
    (1, "deck paint white", "q relevance 1.0", 1.0),
    (2, "deck paint black", "q relevance 1.99", 1.99),
    (3, "drill bit steel", "q relevance 2.0", 2.0),
    (4, "drill bit brass", "q relevance 2.49", 2.49),
    (5, "door hinge black", "q relevance 2.5", 2.5),
    (6, "door hinge white", "q relevance 3", 3),
]


def test_homedepot_bins_at_two_and_two_point_five(tmp_path):
    path = write_homedepot_csv(tmp_path / "edges.csv", EDGE_ROWS)

    increment = load_increment(path, column_map("homedepot"), validation_fraction=0.5)
    rows = rows_by_query(increment)

    assert increment.labels == HOMEDEPOT_LABELS
    assert increment.labels[rows["q relevance 1.0"]["label"]] == "irrelevant"
    assert increment.labels[rows["q relevance 1.99"]["label"]] == "irrelevant"
    assert increment.labels[rows["q relevance 2.0"]["label"]] == "partial"
    assert increment.labels[rows["q relevance 2.49"]["label"]] == "partial"
    assert increment.labels[rows["q relevance 2.5"]["label"]] == "relevant"
    assert increment.labels[rows["q relevance 3"]["label"]] == "relevant"


def test_homedepot_gain_is_relevance_minus_one(tmp_path):
    path = write_homedepot_csv(tmp_path / "edges.csv", EDGE_ROWS)

    rows = rows_by_query(load_increment(path, column_map("homedepot"), validation_fraction=0.5))

    for _, _, query, relevance in EDGE_ROWS:
        assert rows[query]["gain"] == pytest.approx(relevance - 1.0, abs=1e-12)


def test_homedepot_keeps_title_as_text_pair(tmp_path):
    path = write_homedepot_csv(tmp_path / "edges.csv", EDGE_ROWS)

    increment = load_increment(path, column_map("homedepot"), validation_fraction=0.5)
    rows = rows_by_query(increment)

    assert increment.has_pairs
    assert rows["q relevance 2.5"]["text_pair"] == "door hinge black"


def test_latin1_title_reads_with_preset_encoding(tmp_path):
    rows = [(1, "caf\u00e9 table", "table", 3.0), (2, "chair", "chair", 1.0), (3, "lamp", "lamp", 2.0)]
    path = write_homedepot_csv(tmp_path / "latin1.csv", rows, encoding="iso-8859-1")

    increment = load_increment(path, column_map("homedepot"), validation_fraction=0.5)

    assert rows_by_query(increment)["table"]["text_pair"] == "caf\u00e9 table"


def test_incomplete_rows_dropped_and_counted(tmp_path):
    good = grouped_rows(queries=10, titles_per_query=2)
    missing = [
        (2001, "wood screw", "", 3.0),
        (2002, "", "wood screw", 3.0),
        (2003, "wood screw", "wood screw", ""),
        (2004, "wood screw", "   ", 2.0),
    ]
    path = write_homedepot_csv(tmp_path / "missing.csv", good + missing)

    increment = load_increment(path, column_map("homedepot"))

    assert increment.counts["read"] == 24
    assert increment.counts["dropped_missing"] == 4
    assert increment.counts["dropped_duplicates"] == 0
    assert increment.counts["kept"] == 20
    assert len(increment.train) + len(increment.validation) == 20


def test_exact_duplicates_dropped_and_counted(tmp_path):
    good = grouped_rows(queries=10, titles_per_query=2)
    # Rows that repeat query, title and relevance under other row ids are duplicates, but a new relevance is not.
    copies = [(3001, "title 0 0", "query 0", 1.0), (3002, "title 0 0", "query 0", 1.0)]
    regraded = [(3003, "title 0 0", "query 0", 3.0)]
    path = write_homedepot_csv(tmp_path / "duplicates.csv", good + copies + regraded)

    increment = load_increment(path, column_map("homedepot"))

    assert increment.counts["read"] == 23
    assert increment.counts["dropped_duplicates"] == 2
    assert increment.counts["dropped_missing"] == 0
    assert increment.counts["kept"] == 21


@pytest.mark.parametrize("query", ["100", "2x4", "007", "1.50", "NA", "nan"])
def test_numeric_looking_query_stays_string(tmp_path, query):
    rows = [(query, "good"), ("deck paint", "bad"), ("drill bit", "good"), ("faucet", "bad")]
    path = write_csv(tmp_path / "queries.csv", ["text", "label"], rows)

    increment = load_increment(path, column_map(), validation_fraction=0.5)

    assert query in rows_by_query(increment)


def test_split_is_deterministic(tmp_path):
    path = write_homedepot_csv(tmp_path / "increment.csv", synthetic_rows(120))

    first = load_increment(path, column_map("homedepot"))
    second = load_increment(path, column_map("homedepot"))

    assert first.train.to_list() == second.train.to_list()
    assert first.validation.to_list() == second.validation.to_list()


def test_query_group_lands_on_one_side(tmp_path):
    path = write_homedepot_csv(tmp_path / "grouped.csv", grouped_rows(queries=40, titles_per_query=3))

    increment = load_increment(path, column_map("homedepot"), validation_fraction=0.3)
    train_groups = set(increment.train["group"])
    validation_groups = set(increment.validation["group"])

    assert train_groups.isdisjoint(validation_groups)
    assert len(train_groups | validation_groups) == 40
    assert len(increment.train) == 3 * len(train_groups)
    assert len(increment.validation) == 3 * len(validation_groups)
    assert list(increment.train["group"]) == list(increment.train["text"])


def test_fingerprint_ignores_row_order(tmp_path):
    rows = synthetic_rows(60)
    shuffled = list(rows)
    random.Random(1).shuffle(shuffled)
    path = write_homedepot_csv(tmp_path / "ordered.csv", rows)
    shuffled_path = write_homedepot_csv(tmp_path / "shuffled.csv", shuffled)

    original = load_increment(path, column_map("homedepot"))
    reordered = load_increment(shuffled_path, column_map("homedepot"))

    assert shuffled != rows
    assert reordered.fingerprint == original.fingerprint
    assert original.fingerprint.startswith("sha256:")


def test_fingerprint_changes_with_one_label(tmp_path):
    rows = synthetic_rows(60)
    uid, title, query, _ = rows[0]
    changed = [(uid, title, query, 1.0)] + rows[1:]
    path = write_homedepot_csv(tmp_path / "original.csv", rows)
    changed_path = write_homedepot_csv(tmp_path / "changed.csv", changed)

    original = load_increment(path, column_map("homedepot"))
    relabelled = load_increment(changed_path, column_map("homedepot"))

    assert rows[0][3] == 3.0
    assert relabelled.fingerprint != original.fingerprint


def test_generic_labels_sorted_with_index_gain(tmp_path):
    rows = [("deck paint", "ok"), ("drill bit", "bad"), ("faucet", "good"), ("door hinge", "ok")]
    path = write_csv(tmp_path / "generic.csv", ["text", "label"], rows)

    increment = load_increment(path, column_map(), validation_fraction=0.5)
    by_query = rows_by_query(increment)

    assert increment.labels == ["bad", "good", "ok"]
    assert by_query["drill bit"]["gain"] == 0.0
    assert by_query["faucet"]["gain"] == 1.0
    assert by_query["deck paint"]["gain"] == 2.0
    assert by_query["deck paint"]["text_pair"] is None
    assert not increment.has_pairs


def test_unknown_label_lists_known_labels(tmp_path):
    rows = [("deck paint", "good"), ("drill bit", "bad"), ("faucet", "maybe"), ("door hinge", "good")]
    path = write_csv(tmp_path / "labels.csv", ["text", "label"], rows)

    with pytest.raises(AdaptersError) as caught:
        load_increment(path, column_map(), known_labels=["bad", "good"], validation_fraction=0.5)

    assert "'maybe'" in str(caught.value)
    assert "['bad', 'good']" in str(caught.value)


def test_known_labels_fix_label_order(tmp_path):
    rows = [("deck paint", "good"), ("drill bit", "bad"), ("faucet", "good"), ("door hinge", "bad")]
    path = write_csv(tmp_path / "labels.csv", ["text", "label"], rows)

    increment = load_increment(path, column_map(), known_labels=["good", "bad"], validation_fraction=0.5)

    assert increment.labels == ["good", "bad"]
    assert increment.labels[rows_by_query(increment)["drill bit"]["label"]] == "bad"


def test_missing_column_lists_available_columns(tmp_path):
    path = write_csv(tmp_path / "columns.csv", ["text", "label"], [("deck paint", "good")])

    with pytest.raises(AdaptersError) as caught:
        load_increment(path, column_map(text="query"))

    assert "'query'" in str(caught.value)
    assert "its columns are text, label" in str(caught.value)
    assert "--text-column" in str(caught.value)


def test_undecodable_bytes_ask_for_encoding(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ncaf\u00e9,good\nlamp,bad\n".encode("iso-8859-1"))

    with pytest.raises(AdaptersError) as caught:
        read_table(path, encoding="utf-8")

    assert "not valid utf-8" in str(caught.value)
    assert "--encoding" in str(caught.value)


def test_late_undecodable_byte_asks_encoding(tmp_path):
    # The header read decodes only the first block of the file, so datasets' CSV reader meets this byte.
    lines = "".join(f"query {index},good\n" for index in range(5000))
    path = tmp_path / "latin1.csv"
    path.write_bytes(("text,label\n" + lines + "caf\u00e9,bad\n").encode("iso-8859-1"))

    with pytest.raises(AdaptersError) as caught:
        read_table(path, encoding="utf-8")

    assert "not valid utf-8" in str(caught.value)
    assert "--encoding" in str(caught.value)


def test_unknown_suffix_rejected(tmp_path):
    path = tmp_path / "increment.txt"
    path.write_text("text,label\ndeck paint,good\n")

    with pytest.raises(AdaptersError) as caught:
        read_table(path)

    assert "'.txt'" in str(caught.value)
    assert ".csv, .jsonl, .json, .parquet" in str(caught.value)


def test_missing_file_rejected(tmp_path):
    path = tmp_path / "absent.csv"

    with pytest.raises(AdaptersError) as caught:
        read_table(path)

    assert str(path) in str(caught.value)
    assert "not found" in str(caught.value)


@pytest.mark.parametrize(
    "name",
    [
        "empty.csv",
        "empty.parquet",
        "empty.jsonl",
    ],
)
def test_empty_file_rejected(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")

    with pytest.raises(AdaptersError) as caught:
        read_table(path)

    assert str(path) in str(caught.value)


def test_empty_csv_message_says_empty(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")

    with pytest.raises(AdaptersError, match="is empty"):
        read_table(path)


def test_header_only_csv_rejected(tmp_path):
    path = write_csv(tmp_path / "header.csv", ["text", "label"], [])

    with pytest.raises(AdaptersError) as caught:
        load_increment(path, column_map())

    assert str(path) in str(caught.value)


GENERIC_COLUMNS = {
    "query": ["deck paint", "deck paint", "drill bit", "faucet", "faucet", "door hinge", "2x4", "light bulb"],
    "product": ["paint white", "paint black", "bit set", "chrome faucet", "shower kit", "brass hinge", "stud", "led bulb"],
    "grade": ["good", "bad", "good", "good", "bad", "good", "good", "bad"],
    "note": ["a", "b", "c", "d", "e", "f", "g", "h"],
}


def write_generic(path: Path) -> Path:
    """Write GENERIC_COLUMNS as CSV, JSON Lines or Parquet, chosen by the suffix."""
    if path.suffix == ".csv":
        rows = list(zip(*GENERIC_COLUMNS.values()))
        return write_csv(path, list(GENERIC_COLUMNS), rows)
    if path.suffix == ".jsonl":
        records = [dict(zip(GENERIC_COLUMNS, values)) for values in zip(*GENERIC_COLUMNS.values())]
        path.write_text("".join(json.dumps(record) + "\n" for record in records))
        return path
    datasets.Dataset.from_dict(GENERIC_COLUMNS).to_parquet(str(path))
    return path


def test_csv_jsonl_parquet_give_same_rows(tmp_path):
    columns = column_map(text="query", text_pair="product", label="grade")

    loaded = {
        suffix: load_increment(write_generic(tmp_path / f"generic{suffix}"), columns, validation_fraction=0.4)
        for suffix in (".csv", ".jsonl", ".parquet")
    }
    reference = loaded[".csv"]

    assert reference.counts["kept"] == 8
    assert reference.labels == ["bad", "good"]
    assert rows_by_query(reference)["2x4"]["text_pair"] == "stud"
    for suffix in (".jsonl", ".parquet"):
        assert loaded[suffix].train.to_list() == reference.train.to_list(), suffix
        assert loaded[suffix].validation.to_list() == reference.validation.to_list(), suffix
        assert loaded[suffix].fingerprint == reference.fingerprint, suffix
        assert loaded[suffix].counts == reference.counts, suffix


def test_all_rows_missing_leave_no_usable_rows(tmp_path):
    rows = [(1, "deck paint", "", 3.0), (2, "", "drill bit", 2.0), (3, "faucet", "faucet", "")]
    path = write_homedepot_csv(tmp_path / "missing.csv", rows)

    with pytest.raises(AdaptersError) as caught:
        load_increment(path, column_map("homedepot"))

    assert "no usable rows" in str(caught.value)
    assert "3 missing a text or label" in str(caught.value)


def test_all_rows_duplicated_leave_one_row(tmp_path):
    path = write_homedepot_csv(tmp_path / "duplicates.csv", [(1, "deck paint", "deck paint", 3.0)] * 5)

    with pytest.raises(AdaptersError) as caught:
        load_increment(path, column_map("homedepot"))

    assert "1 usable rows in 1 query groups" in str(caught.value)
    assert "too few to split" in str(caught.value)


def test_single_query_group_cannot_split(tmp_path):
    rows = [(uid, f"title {uid}", "deck paint", 3.0) for uid in range(10)]
    path = write_homedepot_csv(tmp_path / "one-query.csv", rows)

    with pytest.raises(AdaptersError) as caught:
        load_increment(path, column_map("homedepot"))

    assert "10 usable rows in 1 query groups" in str(caught.value)
    assert "too few to split" in str(caught.value)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_validation_fraction_outside_open_unit_interval(tmp_path, fraction):
    path = write_homedepot_csv(tmp_path / "increment.csv", synthetic_rows(30))

    with pytest.raises(AdaptersError) as caught:
        load_increment(path, column_map("homedepot"), validation_fraction=fraction)

    assert str(fraction) in str(caught.value)
    assert "between 0 and 1" in str(caught.value)


def test_relevance_not_a_number_rejected(tmp_path):
    path = write_homedepot_csv(tmp_path / "relevance.csv", synthetic_rows(10) + [(9, "deck paint", "paint", "high")])

    with pytest.raises(AdaptersError, match="relevance 'high' is not a number"):
        load_increment(path, column_map("homedepot"))


@pytest.mark.parametrize("relevance", ["0.99", "3.01", "nan"])
def test_relevance_outside_one_to_three_rejected(tmp_path, relevance):
    path = write_homedepot_csv(tmp_path / "relevance.csv", synthetic_rows(10) + [(9, "deck paint", "paint", relevance)])

    with pytest.raises(AdaptersError) as caught:
        load_increment(path, column_map("homedepot"))

    assert f"relevance {relevance!r} is outside [1, 3]" in str(caught.value)


def test_column_options_override_preset():
    columns = column_map("homedepot", text="query", encoding="utf-8")

    assert columns.text == "query"
    assert columns.encoding == "utf-8"
    assert columns.text_pair == "product_title"
    assert columns.label == "relevance"
    assert columns.labels == tuple(HOMEDEPOT_LABELS)


def test_no_preset_maps_text_and_label():
    columns = column_map()

    assert columns.text == "text"
    assert columns.text_pair is None
    assert columns.label == "label"
    assert columns.encoding == "utf-8"


def test_unknown_preset_lists_presets():
    with pytest.raises(AdaptersError) as caught:
        column_map("kaggle")

    assert "'kaggle'" in str(caught.value)
    assert "homedepot" in str(caught.value)
