"""Tests of adapters.split.split_file and `adapters split`, which cut one data file into ordered increments."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from adapters.cli.main import main
from adapters.errors import AdaptersError
from adapters.split import split_file
from conftest import write_homedepot_csv

LATIN1 = "iso-8859-1"


def read_part(path: Path, encoding: str = LATIN1) -> list[dict]:
    with open(path, encoding=encoding, newline="") as handle:
        return list(csv.DictReader(handle))


def uid_rows(uids: list[int]) -> list[tuple]:
    """Home Depot rows with the given product ids, titled after their position in the input."""
    return [(uid, f"title {index}", f"query {index}", 2.0) for index, uid in enumerate(uids)]


def listing(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_parts_follow_numeric_product_order(tmp_path):
    path = write_homedepot_csv(tmp_path / "train.csv", uid_rows([100, 9, 10, 1000, 2, 30]))

    parts = split_file(path, tmp_path / "parts", by="product_uid", parts=3, encoding=LATIN1)

    assert [part.name for part in parts] == ["part-1.csv", "part-2.csv", "part-3.csv"]
    assert [row["product_uid"] for row in read_part(parts[0])] == ["2", "9"]
    assert [row["product_uid"] for row in read_part(parts[1])] == ["10", "30"]
    assert [row["product_uid"] for row in read_part(parts[2])] == ["100", "1000"]


def test_equal_keys_keep_input_order(tmp_path):
    path = write_homedepot_csv(tmp_path / "train.csv", uid_rows([7, 5, 7, 5, 7, 5]))

    parts = split_file(path, tmp_path / "parts", by="product_uid", parts=2, encoding=LATIN1)

    assert [row["product_title"] for row in read_part(parts[0])] == ["title 1", "title 3", "title 5"]
    assert [row["product_title"] for row in read_part(parts[1])] == ["title 0", "title 2", "title 4"]


@pytest.mark.parametrize("rows, parts", [(10, 4), (7, 3), (13, 5), (6, 6), (9, 1), (11, 2)])
def test_parts_cover_rows_once_evenly(tmp_path, rows, parts):
    path = write_homedepot_csv(tmp_path / "train.csv", uid_rows(list(range(rows, 0, -1))))

    written = split_file(path, tmp_path / "parts", by="product_uid", parts=parts, encoding=LATIN1)
    contents = [read_part(part) for part in written]
    sizes = [len(content) for content in contents]
    ids = Counter(row["id"] for content in contents for row in content)

    assert len(written) == parts
    assert max(sizes) - min(sizes) <= 1
    assert sum(sizes) == rows
    assert ids == Counter(str(index) for index in range(1, rows + 1))


def test_part_keeps_input_encoding(tmp_path):
    rows = [(2, "caf\u00e9 table", "table", 3.0), (1, "chair", "chair", 1.0)]
    path = write_homedepot_csv(tmp_path / "train.csv", rows, encoding=LATIN1)

    parts = split_file(path, tmp_path / "parts", by="product_uid", parts=2, encoding=LATIN1)
    raw = parts[1].read_bytes()

    assert b"caf\xe9 table" in raw
    assert "caf\u00e9 table".encode("utf-8") not in raw
    assert read_part(parts[1])[0]["product_title"] == "caf\u00e9 table"


def test_part_keeps_relevance_text(tmp_path):
    rows = [(1, "deck paint", "paint", 2.33), (2, "drill bit", "bit", 3)]
    path = write_homedepot_csv(tmp_path / "train.csv", rows)

    parts = split_file(path, tmp_path / "parts", by="product_uid", parts=1, encoding=LATIN1)

    assert [row["relevance"] for row in read_part(parts[0])] == ["2.33", "3"]


def test_max_rows_keeps_first_rows(tmp_path):
    path = write_homedepot_csv(tmp_path / "train.csv", uid_rows([10, 9, 8, 7, 6, 5, 4, 3, 2, 1]))

    parts = split_file(path, tmp_path / "parts", by="product_uid", parts=2, encoding=LATIN1, max_rows=2)

    assert [row["product_uid"] for row in read_part(parts[0])] == ["1", "2"]
    assert [row["product_uid"] for row in read_part(parts[1])] == ["6", "7"]


def test_jsonl_parts_stay_json_lines(tmp_path):
    path = tmp_path / "train.jsonl"
    records = [{"product_uid": uid, "text": f"query {uid}", "label": "good"} for uid in (30, 4, 100, 2)]
    path.write_text("".join(json.dumps(record) + "\n" for record in records))

    parts = split_file(path, tmp_path / "parts", by="product_uid", parts=2)
    first = [json.loads(line) for line in parts[0].read_text().splitlines()]
    second = [json.loads(line) for line in parts[1].read_text().splitlines()]

    assert [part.name for part in parts] == ["part-1.jsonl", "part-2.jsonl"]
    assert first == [records[3], records[1]]
    assert second == [records[0], records[2]]


def test_existing_part_rejected_without_force(tmp_path):
    path = write_homedepot_csv(tmp_path / "train.csv", uid_rows([3, 2, 1, 4]))
    out = tmp_path / "parts"
    out.mkdir()
    (out / "part-2.csv").write_text("earlier split\n")
    before = listing(out)

    with pytest.raises(AdaptersError) as caught:
        split_file(path, out, by="product_uid", parts=2, encoding=LATIN1)

    assert str(out / "part-2.csv") in str(caught.value)
    assert "--force" in str(caught.value)
    assert listing(out) == before


def test_force_replaces_existing_parts(tmp_path):
    path = write_homedepot_csv(tmp_path / "train.csv", uid_rows([3, 2, 1, 4]))
    out = tmp_path / "parts"
    out.mkdir()
    (out / "part-2.csv").write_text("earlier split\n")

    parts = split_file(path, out, by="product_uid", parts=2, encoding=LATIN1, force=True)

    assert [row["product_uid"] for row in read_part(parts[1])] == ["3", "4"]
    assert sorted(entry.name for entry in out.iterdir()) == ["part-1.csv", "part-2.csv"]


def test_unknown_by_column_rejected(tmp_path):
    path = write_homedepot_csv(tmp_path / "train.csv", uid_rows([1, 2]))

    with pytest.raises(AdaptersError) as caught:
        split_file(path, tmp_path / "parts", by="uid", parts=2, encoding=LATIN1)

    assert "column 'uid' not found" in str(caught.value)
    assert "id, product_uid, product_title, search_term, relevance" in str(caught.value)
    assert not (tmp_path / "parts").exists()


def test_more_parts_than_rows_rejected(tmp_path):
    path = write_homedepot_csv(tmp_path / "train.csv", uid_rows([1, 2, 3]))

    with pytest.raises(AdaptersError) as caught:
        split_file(path, tmp_path / "parts", by="product_uid", parts=4, encoding=LATIN1)

    assert "has 3 rows, fewer than --parts 4" in str(caught.value)
    assert not (tmp_path / "parts").exists()


@pytest.mark.parametrize("options, message", [({"parts": 0}, "--parts 0"), ({"parts": 2, "max_rows": 0}, "--max-rows 0")])
def test_counts_below_one_rejected(tmp_path, options, message):
    path = write_homedepot_csv(tmp_path / "train.csv", uid_rows([1, 2]))

    with pytest.raises(AdaptersError, match=message):
        split_file(path, tmp_path / "parts", by="product_uid", encoding=LATIN1, **options)


def test_split_command_prints_part_paths(tmp_path, capsys):
    rows = [(2, "caf\u00e9 table", "table", 3.0), (1, "chair", "chair", 1.0)]
    path = write_homedepot_csv(tmp_path / "train.csv", rows)
    out = tmp_path / "parts"

    status = main(["split", str(path), "--by", "product_uid", "--parts", "2", "--out", str(out), "--preset", "homedepot"])
    printed = capsys.readouterr().out.splitlines()

    assert status == 0
    assert printed == [str(out / "part-1.csv"), str(out / "part-2.csv")]
    assert b"caf\xe9 table" in (out / "part-2.csv").read_bytes()


@pytest.mark.slow
def test_real_data_shifts_in_last_part(homedepot_csv, tmp_path):
    parts = split_file(homedepot_csv, tmp_path / "parts", by="product_uid", parts=4, encoding=LATIN1)
    contents = [read_part(part) for part in parts]
    shares = [sum(float(row["relevance"]) < 2.0 for row in content) / len(content) for content in contents]
    sizes = [len(content) for content in contents]

    assert sum(sizes) == 65598
    assert max(sizes) - min(sizes) <= 1
    assert int(contents[0][-1]["product_uid"]) < int(contents[3][0]["product_uid"])
    assert shares[3] > shares[0]
    # Cut into four by product_uid, the real file has 15% irrelevant rows in the first part and 19% in the last.
    assert shares[0] == pytest.approx(0.15, abs=0.005)
    assert shares[3] == pytest.approx(0.19, abs=0.005)
