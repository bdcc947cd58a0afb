"""Batch scoring: input order, agreement with one-row-at-a-time inference, output formats."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from adapters.cli.main import main
from adapters.precision import resolve_precision
from conftest import synthetic_rows, write_homedepot_csv


@pytest.fixture(scope="module")
def merged_folder(tiny_bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("score")
    data = write_homedepot_csv(folder / "part.csv", synthetic_rows(90, seed=5))
    registry = folder / "registry"
    assert main(["train", "--registry", str(registry), "--data", str(data), "--preset", "homedepot", "--base", str(tiny_bert),
                 "--epochs", "1", "--batch-size", "16"]) == 0
    assert main(["merge", "--registry", str(registry), "1", "--out", str(folder / "merged"), "--base", str(tiny_bert)]) == 0
    return folder / "merged"


def test_scores_keep_input_order_and_match_single_rows(merged_folder, tmp_path, capsys):
    rows = synthetic_rows(37, seed=6)
    rows[3] = (rows[3][0], " ".join(["steel angle bracket"] * 30), "angle bracket", 3.0)
    data = write_homedepot_csv(tmp_path / "to-score.csv", rows)

    code = main(["score", str(merged_folder), "--data", str(data), "--preset", "homedepot", "--out", str(tmp_path / "scores.csv"),
                 "--batch-size", "8", "--precision", "fp32"])

    assert code == 0
    with open(tmp_path / "scores.csv", encoding="utf-8", newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [int(row["product_uid"]) for row in written] == [uid for uid, *_ in rows]
    model = AutoModelForSequenceClassification.from_pretrained(merged_folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(merged_folder)
    for row, (_, title, query, _) in zip(written, rows):
        inputs = tokenizer(query, title, truncation="longest_first", max_length=64, return_tensors="pt")
        with torch.no_grad():
            probabilities = torch.softmax(model(**inputs).logits, -1)[0]
        expected = float((probabilities * torch.arange(3)).sum())
        assert float(row["score"]) == pytest.approx(expected, abs=1e-5)
        assert float(row["p_relevant"]) == pytest.approx(float(probabilities[2]), abs=1e-5)
        assert row["label"] == ["irrelevant", "partial", "relevant"][int(probabilities.argmax())]


def test_bf16_scores_stay_close_to_float32(merged_folder, tmp_path, capsys):
    data = write_homedepot_csv(tmp_path / "to-score.csv", synthetic_rows(24, seed=9))
    written = {}
    for precision in ("fp32", "bf16", "auto"):
        out = tmp_path / f"scores-{precision}.csv"
        assert main(["score", str(merged_folder), "--data", str(data), "--preset", "homedepot", "--out", str(out), "--precision", precision]) == 0
        with open(out, encoding="utf-8", newline="") as handle:
            written[precision] = [[float(row[f"p_{label}"]) for label in ("irrelevant", "partial", "relevant")] for row in csv.DictReader(handle)]

    full, reduced = torch.tensor(written["fp32"]), torch.tensor(written["bf16"])
    # bfloat16 keeps 8 significant bits, so probabilities move by a few thousandths, well under 0.05.
    assert 0 < (full - reduced).abs().max() < 0.05
    assert written["auto"] == written[resolve_precision("auto")]
    assert f", {resolve_precision('auto')}) into" in capsys.readouterr().out


def test_jsonl_output_has_one_object_per_row(merged_folder, tmp_path):
    data = write_homedepot_csv(tmp_path / "to-score.csv", synthetic_rows(12, seed=7))

    assert main(["score", str(merged_folder), "--data", str(data), "--preset", "homedepot", "--out", str(tmp_path / "scores.jsonl")]) == 0

    lines = (tmp_path / "scores.jsonl").read_text().splitlines()
    assert len(lines) == 12
    first = json.loads(lines[0])
    assert {"search_term", "product_title", "score", "label", "p_irrelevant", "p_partial", "p_relevant"} <= set(first)


def test_unknown_output_suffix_is_rejected(merged_folder, tmp_path, capsys):
    data = write_homedepot_csv(tmp_path / "to-score.csv", synthetic_rows(5, seed=8))

    code = main(["score", str(merged_folder), "--data", str(data), "--preset", "homedepot", "--out", str(tmp_path / "scores.txt")])

    assert code == 2
    assert "scores.txt" in capsys.readouterr().err
    assert not (tmp_path / "scores.txt").exists()
