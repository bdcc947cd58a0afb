"""Tests for adapters.sample, the seeded generator of sample search data."""

import csv
import random
from collections import Counter, defaultdict

import pytest

from adapters.sample import (
    RELEVANCE_VALUES,
    SAMPLE_COLUMNS,
    generate_sample,
    write_sample_csv,
)

N_ROWS = 2400
# Title phrases that occur only in categories added after the first quarter.
NEW_CATEGORY_PHRASES = ("Smart Thermostat", "Smart Plug", "Video Doorbell", "Solar Panel",
                        "Solar LED", "Vehicle Charger")


@pytest.fixture(scope="module")
def rows():
    return generate_sample(N_ROWS, seed=0)


def _quarters(rows):
    size = len(rows) // 4
    return [rows[i * size:(i + 1) * size] for i in range(4)]


def _irrelevant_share(rows):
    return sum(row["relevance"] < 2.0 for row in rows) / len(rows)


def test_same_seed_gives_identical_rows(rows):
    assert generate_sample(N_ROWS, seed=0) == rows


def test_different_seed_gives_different_rows(rows):
    assert generate_sample(N_ROWS, seed=1) != rows


def test_global_random_state_untouched():
    random.seed(123)
    expected = random.random()
    random.seed(123)
    generate_sample(200, seed=5)

    assert random.random() == expected


def test_rows_have_home_depot_columns(rows):
    assert len(rows) == N_ROWS
    for row in rows:
        assert tuple(row) == SAMPLE_COLUMNS
        assert isinstance(row["id"], int)
        assert isinstance(row["product_uid"], int)
        assert isinstance(row["product_title"], str)
        assert isinstance(row["search_term"], str)
        assert row["product_title"]
        assert row["search_term"]
        assert isinstance(row["relevance"], float)
        assert row["product_title"].isascii()
        assert row["search_term"].isascii()


def test_ids_count_up_uids_increase(rows):
    assert [row["id"] for row in rows] == list(range(1, N_ROWS + 1))
    uids = [row["product_uid"] for row in rows]
    assert uids == sorted(uids)
    assert uids[0] == 100001


def test_relevance_uses_home_depot_values(rows):
    values = {row["relevance"] for row in rows}

    assert values <= set(RELEVANCE_VALUES)
    # The three-rater means, which dominate the real data, all occur.
    assert {1.0, 1.33, 1.67, 2.0, 2.33, 2.67, 3.0} <= values


def test_label_shares_match_real_data(rows):
    relevances = [row["relevance"] for row in rows]
    irrelevant = sum(r < 2.0 for r in relevances) / N_ROWS
    partial = sum(2.0 <= r < 2.5 for r in relevances) / N_ROWS
    relevant = sum(r >= 2.5 for r in relevances) / N_ROWS

    assert irrelevant == pytest.approx(0.15, abs=0.03)
    assert partial == pytest.approx(0.37, abs=0.04)
    assert relevant == pytest.approx(0.48, abs=0.04)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_irrelevant_share_rises_over_time(seed):
    first, _, _, last = _quarters(generate_sample(N_ROWS, seed=seed))

    assert _irrelevant_share(last) > _irrelevant_share(first)


def test_irrelevant_share_by_quarter(rows):
    first, _, _, last = _quarters(rows)

    assert _irrelevant_share(first) == pytest.approx(0.14, abs=0.04)
    assert _irrelevant_share(last) == pytest.approx(0.19, abs=0.04)


def test_new_categories_arrive_later(rows):
    def new_category_rows(part):
        return sum(any(p in row["product_title"] for p in NEW_CATEGORY_PHRASES) for row in part)

    first, second, _, last = _quarters(rows)

    assert new_category_rows(first) == 0
    assert new_category_rows(second) > 0
    assert new_category_rows(last) / len(last) > 0.1
    assert any("Vehicle Charger" in row["product_title"] for row in last)


def test_queries_recur_across_products(rows):
    products_by_query = defaultdict(set)
    for row in rows:
        products_by_query[row["search_term"]].add(row["product_uid"])
    recurring = {query for query, products in products_by_query.items() if len(products) >= 2}
    rows_with_recurring_query = sum(row["search_term"] in recurring for row in rows)

    assert len(products_by_query) < N_ROWS / 2
    assert rows_with_recurring_query / N_ROWS > 0.6
    assert max(len(products) for products in products_by_query.values()) >= 20


def test_recurring_queries_have_mixed_labels(rows):
    # nDCG per query needs queries whose products differ in relevance.
    labels_by_query = defaultdict(set)
    for row in rows:
        labels_by_query[row["search_term"]].add(row["relevance"])
    mixed = [query for query, labels in labels_by_query.items() if len(labels) >= 2]

    assert len(mixed) >= 100


def test_product_queries_are_distinct(rows):
    pairs = Counter((row["product_uid"], row["search_term"]) for row in rows)

    assert max(pairs.values()) == 1


@pytest.mark.parametrize("n_rows", [0, -5, 2.5, True, "100"])
def test_invalid_row_count_rejected(n_rows):
    with pytest.raises(ValueError, match="n_rows must be a positive int"):
        generate_sample(n_rows)


def test_non_int_seed_rejected():
    with pytest.raises(ValueError, match="seed must be an int, got 1.5"):
        generate_sample(10, seed=1.5)


def test_csv_matches_home_depot_format(tmp_path):
    path = write_sample_csv(tmp_path / "nested" / "sample.csv", n_rows=50, seed=3)
    raw = path.read_bytes()
    lines = raw.decode("iso-8859-1").split("\n")

    assert path == tmp_path / "nested" / "sample.csv"
    assert b"\r" not in raw
    assert raw.endswith(b"\n")
    assert lines[0] == '"id","product_uid","product_title","search_term","relevance"'
    assert lines[1].startswith('1,100001,"')
    assert len(lines) == 52  # header, 50 rows and the empty string after the last "\n"
    assert list(tmp_path.joinpath("nested").iterdir()) == [path]


def test_csv_round_trips_rows(tmp_path):
    path = write_sample_csv(tmp_path / "sample.csv", n_rows=120, seed=7)
    with open(path, encoding="iso-8859-1", newline="") as file:
        read = list(csv.DictReader(file))

    expected = generate_sample(120, seed=7)
    assert [int(row["id"]) for row in read] == [row["id"] for row in expected]
    assert [int(row["product_uid"]) for row in read] == [row["product_uid"] for row in expected]
    assert [row["product_title"] for row in read] == [row["product_title"] for row in expected]
    assert [row["search_term"] for row in read] == [row["search_term"] for row in expected]
    assert [float(row["relevance"]) for row in read] == [row["relevance"] for row in expected]


def test_csv_writes_whole_relevance_bare(tmp_path):
    path = write_sample_csv(tmp_path / "sample.csv", n_rows=200, seed=0)
    text = path.read_text(encoding="iso-8859-1")

    assert any(line.endswith(",3") for line in text.splitlines())
    assert not any(line.endswith(",3.0") for line in text.splitlines())


def test_csv_not_written_for_invalid_rows(tmp_path):
    target = tmp_path / "sample.csv"

    with pytest.raises(ValueError, match="n_rows"):
        write_sample_csv(target, n_rows=0)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
