"""The helpers of the scripts in benchmarks/: seed parsing, the ablations' summaries and their page sections."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pytest

# The scripts import each other as top-level modules, as they do when run from benchmarks/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import ablation  # noqa: E402
import run_benchmarks  # noqa: E402


def runs_of(fast: list[float], plain: list[float], first_seed: int = 42) -> dict:
    runs = {}
    for index, (a, b) in enumerate(zip(fast, plain)):
        seed = first_seed + index
        runs[f"FastDropout, seed {seed}"] = {"seed": seed, "accuracy": a, "precision": "fp32"}
        runs[f"torch.nn.Dropout, seed {seed}"] = {"seed": seed, "accuracy": b, "precision": "fp32"}
    return runs


DROPOUT_ARMS = ["FastDropout", "torch.nn.Dropout"]


@pytest.mark.parametrize("text, seeds", [("42-45", [42, 43, 44, 45]), ("42,47", [42, 47]), ("7", [7])])
def test_seed_list_parses_ranges_and_lists(text, seeds):
    assert run_benchmarks.seed_list(text) == seeds


@pytest.mark.parametrize("text", ["", "a-b", "42,42", "45-42", "-1"])
def test_seed_list_rejects_bad_input(text):
    with pytest.raises(argparse.ArgumentTypeError, match="invalid seeds"):
        run_benchmarks.seed_list(text)


def test_summary_pairs_seeds_and_averages_differences():
    runs = runs_of([0.50, 0.52, 0.49], [0.51, 0.50, 0.49])
    del runs["torch.nn.Dropout, seed 44"]

    result = ablation.summary(runs, DROPOUT_ARMS)

    assert result["seeds"] == [42, 43]
    assert result["differences_points"] == pytest.approx([-1.0, 2.0])
    assert result["mean_difference_points"] == pytest.approx(0.5)
    # Sample standard deviation of (-1, 2) is 3 / sqrt(2); over sqrt(2) seeds that is 1.5.
    assert result["standard_error_points"] == pytest.approx(1.5)
    assert result["means"]["FastDropout"] == pytest.approx(0.51)
    assert result["accuracies"]["torch.nn.Dropout"] == [0.51, 0.50]


def test_summary_of_no_pairs_is_empty():
    runs = runs_of([0.50], [0.51])
    del runs["torch.nn.Dropout, seed 42"]

    assert ablation.summary(runs, DROPOUT_ARMS)["seeds"] == []


def page_of(runs: dict, factor: str = "dropout") -> str:
    stored = {"factor": factor, "date": "2026-12-05T04:00:00+00:00", "commands": ["ablation.py --seeds 42-45"], "rows": 4000,
              "validation_rows": 1000, "config": {"epochs": 3, "group_window": 50},
              "machine": {"cpu_model": "Test CPU", "usable_cpus": 2, "torch": "2.13.0+cpu"},
              "runs": runs, "summary": ablation.summary(runs, list(ablation.FACTORS[factor]))}
    return "\n".join(run_benchmarks.ablation_lines(stored))


def test_ablation_section_says_when_no_cost_is_measurable():
    page = page_of(runs_of([0.50, 0.52, 0.49, 0.51], [0.51, 0.50, 0.49, 0.53]))

    assert "| 43 | 0.5200 | 0.5000 | +2.0 |" in page
    assert "difference of -0.25 points (standard error 0.85; two standard errors either side span -1.96 to +1.46 points)" in page
    assert "no difference in accuracy between FastDropout and torch.nn.Dropout is measurable" in page
    assert "length-grouped batches (windows of 50 batches)" in page


def test_ablation_section_gives_no_verdict_on_one_seed():
    page = page_of(runs_of([0.49], [0.51]))

    assert "no verdict yet" in page
    assert "costs accuracy" not in page


def test_ablation_section_says_when_fast_dropout_costs_accuracy():
    page = page_of(runs_of([0.49, 0.50, 0.48, 0.49], [0.51, 0.51, 0.50, 0.51]))

    assert math.isclose(ablation.summary(runs_of([0.49, 0.50, 0.48, 0.49], [0.51, 0.51, 0.50, 0.51]), DROPOUT_ARMS)["mean_difference_points"],
                        -1.75)
    assert "FastDropout costs accuracy against torch.nn.Dropout here" in page


def test_window_section_names_both_windows():
    runs = {}
    for index, (small, large) in enumerate([(0.52, 0.50), (0.51, 0.50), (0.50, 0.49)]):
        runs[f"window 8, seed {42 + index}"] = {"seed": 42 + index, "accuracy": small, "group_window": 8, "precision": "bf16"}
        runs[f"window 50, seed {42 + index}"] = {"seed": 42 + index, "accuracy": large, "group_window": 50, "precision": "bf16"}

    page = page_of(runs, "window")

    assert page.startswith("## Length-grouping window of 8 batches against 50: accuracy")
    assert "| seed | window 8 | window 50 | difference (points) |" in page
    assert "| 42 | 0.5200 | 0.5000 | +2.0 |" in page
    # Differences 2, 1 and 1 points: mean 4/3, sample variance 1/3, standard error 1/3, so 4 standard errors from zero.
    assert "a difference of +1.33 points (standard error 0.33;" in page
    assert "window 8 gains accuracy against window 50 here" in page
    assert "in bf16" in page


def test_stored_speed_needs_speed_part(tmp_path):
    good, other, broken = tmp_path / "good.json", tmp_path / "other.json", tmp_path / "broken.json"
    good.write_text('{"speed": {"date": "2026-12-05"}}')
    other.write_text('{"quality": {}}')
    broken.write_text("{not json")

    assert run_benchmarks.stored_speed(good) == {"date": "2026-12-05"}
    assert run_benchmarks.stored_speed(other) is None
    assert run_benchmarks.stored_speed(broken) is None
    assert run_benchmarks.stored_speed(tmp_path / "missing.json") is None


def test_stand_ins_from_needs_add_seeds(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["run_benchmarks", "--stand-ins-from", "old.json"])
    with pytest.raises(SystemExit) as stopped:
        run_benchmarks.parse_arguments()
    assert stopped.value.code == 2
    assert "--stand-ins-from needs --add-seeds" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    (None, "it is a folder or its folder does not exist"),
    ("[1, 2]", "is not an ablation file written by this script"),
    ('{"foo": 1}', "is not an ablation file written by this script"),
    ("not json {", "is not an ablation file written by this script"),
])
def test_ablation_rejects_unusable_out_before_training(tmp_path, monkeypatch, capsys, content, message):
    data = tmp_path / "train.csv"
    data.write_text("id,product_uid\n")
    out = tmp_path / "out.json"
    if content is None:
        out.mkdir()
    else:
        out.write_text(content)
    monkeypatch.setattr(sys, "argv", ["ablation", "--factor", "window", "--data", str(data), "--out", str(out)])

    assert ablation.main() == 2
    assert message in capsys.readouterr().err
