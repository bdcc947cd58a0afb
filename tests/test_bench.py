"""The benchmark suite and the demo on a tiny base: every section present, every figure consistent."""

from __future__ import annotations

import copy
import json
import math

import pytest
from transformers import BertConfig

from adapters.bench import code_commit, layer_flop, linear_fit, mean_and_standard_error, paired_accuracy_gap, training_flop
from adapters.bench_report import PLOTS, format_suite, write_plots
from adapters.bench_suite import BenchSize, _judge_over_seeds, add_seed_runs, reuse_stand_ins, run_suite, seed_comparison
from adapters.config import TrainConfig
from adapters.data import column_map
from adapters.demo import run_demo
from adapters.errors import AdaptersError
from adapters.precision import native_bf16, resolve_precision

TINY = BenchSize("tiny", rows=48, epochs=1, validation_rows=24, extra_seeds=(5,), scaling_rows=(16, 32, 48), thread_rows=32, precision_steps=1, dropout_steps=1,
                 inference_rows=40, inference_repeats=2, scoring_repeats=1, registry_sizes=(1, 3), memory_rows=24, merge_counts=(2,))


def test_layer_flop_matches_hand_count():
    config = BertConfig(hidden_size=4, intermediate_size=8, num_hidden_layers=2, num_attention_heads=1)
    # Per row of n tokens: n * (8 * 4 * 4 + 4 * 4 * 8) + 4 * n * n * 4 = 256 n + 16 n^2.
    assert layer_flop([2, 3], config) == 576 + 912


def test_training_flop_skips_frozen_backward():
    config = BertConfig(hidden_size=4, intermediate_size=8, num_hidden_layers=4, num_attention_heads=1)
    per_layer = layer_flop([5], config)
    assert training_flop([5], config, TrainConfig(epochs=2), cached=False) == 2 * (4 + 4) * per_layer
    frozen = TrainConfig(epochs=2, freeze_layers=1)
    assert training_flop([5], config, frozen, cached=False) == 2 * (4 + 3) * per_layer
    assert training_flop([5], config, frozen, cached=True) == 2 * (3 + 3) * per_layer + per_layer


def test_linear_fit_line_and_scatter():
    exact = linear_fit([1, 2, 4, 8], [3.0, 5.0, 9.0, 17.0])
    assert exact["slope"] == pytest.approx(2.0)
    assert exact["intercept"] == pytest.approx(1.0)
    assert exact["r2"] == pytest.approx(1.0)
    assert linear_fit([1, 2, 3, 4], [1.0, 3.0, 1.0, 3.0])["r2"] == pytest.approx(0.2)


def test_accuracy_gap_points_and_interval():
    truth = [0, 1] * 50
    gap = paired_accuracy_gap(list(truth), [0] * 100, truth)
    assert gap["gap_points"] == pytest.approx(50.0)
    assert gap["low_points"] < 50.0 < gap["high_points"]
    assert paired_accuracy_gap(truth, truth, truth) == {"gap_points": 0.0, "low_points": 0.0, "high_points": 0.0, "rows": 100}


def test_seed_comparison_averages_gaps():
    runs = {"ours, LoRA": {"accuracy": 0.50}, "baseline, LoRA": {"accuracy": 0.51},
            "ours, LoRA, seed 43": {"accuracy": 0.52}, "plain batches, LoRA, seed 43": {"accuracy": 0.50},
            "ours, LoRA, seed 44": {"accuracy": 0.49}, "plain batches, LoRA, seed 44": {"accuracy": 0.49}}
    seeds = seed_comparison(runs, [42, 43, 44], "ours, LoRA", "baseline, LoRA")
    # Gaps -1, +2 and 0 points: mean 1/3, squared deviations 16/9 + 25/9 + 1/9, sample variance 7/3,
    # standard error sqrt(7/9).
    assert seeds["gaps_points"] == pytest.approx([-1.0, 2.0, 0.0])
    assert seeds["mean_gap_points"] == pytest.approx(1 / 3)
    assert seeds["standard_error_points"] == pytest.approx(math.sqrt(7 / 9))


@pytest.fixture(scope="module")
def suite_results(tiny_bert, tmp_path_factory):
    from conftest import synthetic_rows, write_homedepot_csv

    data = write_homedepot_csv(tmp_path_factory.mktemp("bench") / "increment.csv", synthetic_rows(120))
    return run_suite(data, column_map("homedepot"), TINY, base=str(tiny_bert), config=TrainConfig(batch_size=8, max_length=32),
                     command="adapters bench --test")


def test_suite_compares_increment_runs(suite_results):
    increment = suite_results["increment"]
    runs = increment["runs"]

    main = {"baseline, LoRA", "ours, LoRA", "baseline, AdaLoRA", "ours, AdaLoRA", "ours, LoRA, --freeze-layers 1, cached",
            "ours, LoRA, --freeze-layers 1 --target-modules query,key,value,dense, cached"}
    stand_ins = {"plain batches, LoRA, seed 5", "plain batches, AdaLoRA, seed 5"}
    assert set(runs) == main | stand_ins | {f"{name}, seed 5" for name in main if name.startswith("ours")}
    for item in increment["comparisons"]:
        seeds = item["seeds"]
        assert seeds["seeds"] == [42, 5]
        assert seeds["ours"] == [runs[item["ours"]]["accuracy"], runs[f"{item['ours']}, seed 5"]["accuracy"]]
        assert item["seed_mean_gap_points"] == pytest.approx(seeds["mean_gap_points"])
    adalora = increment["comparisons"][1]["seeds"]
    assert adalora["plain"] == [runs["baseline, AdaLoRA"]["accuracy"], runs["plain batches, AdaLoRA, seed 5"]["accuracy"]]
    assert all(run["samples"] == 48 for run in runs.values())
    assert runs["baseline, LoRA"]["padding_share"] > 0.5
    for item in increment["comparisons"]:
        assert item["speedup"] == pytest.approx(runs[item["baseline"]]["wall_s"] / runs[item["ours"]]["wall_s"])
        expected_gap = 100 * (runs[item["ours"]]["accuracy"] - runs[item["baseline"]]["accuracy"])
        assert item["gap_points"] == pytest.approx(expected_gap, abs=1e-6)
    assert all(run["gflops"] > 0 for run in runs.values())


def test_suite_measures_other_sections(suite_results):
    assert [row["threads"] for row in suite_results["threads"]] == sorted({1, suite_results["machine"]["usable_cpus"],
                                                                           int(suite_results["machine"]["torch_threads"])})
    assert suite_results["step_times"]["bf16_step_s"] > 0
    assert suite_results["step_times"]["precision"] == resolve_precision("auto")
    assert suite_results["step_times"]["warmed_up"] is True
    assert ("bf16_gflops" in suite_results["matmul_peak"]) is native_bf16("cpu")
    assert suite_results["step_times"]["fast_dropout_speedup"] > 0
    assert [p["rows"] for p in suite_results["scaling"]["points"]] == [16, 32, 48]
    models = suite_results["inference"]["models"]
    assert models["base"]["ratio_to_base"] == {"median": 1.0, "min": 1.0, "max": 1.0}
    assert set(models) == {"base", "merged", "adapter (unmerged)"}
    assert set(suite_results["inference"]["scoring"]) == {"adapters score", "transformers pipeline"}
    agreement = suite_results["inference"]["scoring_agreement"]
    assert agreement["rows"] == suite_results["inference"]["rows"]
    # float32 scores match the pipeline's to rounding; bfloat16 ones to about a hundredth.
    tolerance = 1e-4 if suite_results["inference"]["scoring"]["adapters score"]["precision"] == "fp32" else 0.05
    assert 0 <= agreement["max_probability_difference"] < tolerance
    assert agreement["same_top_label"] > 0.9
    assert [p["versions"] for p in suite_results["registry_memory"]] == [1, 3]
    assert all(p["peak_rss_mb"] > 50 for p in suite_results["registry_memory"])
    assert [row["adapters"] for row in suite_results["merge_scaling"]] == [2, 2, 2]
    json.dumps(suite_results)


def test_suite_renders_report_and_plots(suite_results, tmp_path):
    report = format_suite(suite_results)
    assert "adapters bench --test" in report
    assert suite_results["machine"]["torch"] in report
    assert "| ours, LoRA | baseline, LoRA |" in report

    written = write_plots(suite_results, tmp_path)
    assert [path.name for path in written] == list(PLOTS)
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in written)


def test_missed_frozen_run_states_cost_of_placement(suite_results):
    results = copy.deepcopy(suite_results)
    runs = results["increment"]["runs"]
    frozen = "ours, LoRA, --freeze-layers 1, cached"
    accuracies = {"baseline, LoRA": 0.60, "plain batches, LoRA, seed 5": 0.50, "ours, LoRA": 0.60, "ours, LoRA, seed 5": 0.50,
                  frozen: 0.55, f"{frozen}, seed 5": 0.47}
    for name, accuracy in accuracies.items():
        runs[name]["accuracy"] = accuracy
    for item in results["increment"]["comparisons"]:
        item["gap_points"] = 100 * (runs[item["ours"]]["accuracy"] - runs[item["baseline"]]["accuracy"])
    _judge_over_seeds(results["increment"], [42, 5])

    report = format_suite(results)

    # Gaps to the all-layer run are -5 and -3 points: mean -4, sample deviation sqrt(2), standard error 1.
    assert f"`{frozen}` is 4.00 points below the baseline" in report
    assert "Against `ours, LoRA` at the same 2 seeds it scores -4.00 points (standard error 1.00)" in report


def test_added_seed_runs_join_comparisons(suite_results, tiny_bert):
    results = copy.deepcopy(suite_results)
    saved = []
    added = add_seed_runs(results, results["data"]["path"], column_map("homedepot"), [6], base=str(tiny_bert), command="add seeds",
                          checkpoint=lambda stored: saved.append(len(stored["increment"]["runs"])))

    assert sorted(added) == sorted(["ours, LoRA, seed 6", "plain batches, LoRA, seed 6", "ours, AdaLoRA, seed 6",
                                    "plain batches, AdaLoRA, seed 6", "ours, LoRA, --freeze-layers 1, cached, seed 6",
                                    "ours, LoRA, --freeze-layers 1 --target-modules query,key,value,dense, cached, seed 6"])
    assert all(item["seeds"]["seeds"] == [42, 5, 6] for item in results["increment"]["comparisons"])
    # One checkpoint per trained run, each holding the runs finished so far.
    assert saved == [len(suite_results["increment"]["runs"]) + count for count in range(1, 7)]
    assert "6 seed runs of this section were trained after the main run" in format_suite(results)
    # Runs at a seed already stored are not trained again, and the record of the earlier addition stays.
    assert add_seed_runs(results, results["data"]["path"], column_map("homedepot"), [5, 6], base=str(tiny_bert)) == []
    assert "with `add seeds`" in format_suite(results)


def test_stand_ins_are_copied_from_a_matching_suite(suite_results, tiny_bert):
    earlier = copy.deepcopy(suite_results)
    earlier["increment"]["runs"]["plain batches, LoRA, seed 5"]["accuracy"] = 0.125
    # Settings that a stand-in overrides or never uses may differ.
    earlier["config"].update(group_window=50, fast_dropout=False, precision="fp32")
    results = copy.deepcopy(suite_results)
    for name in ("plain batches, LoRA, seed 5", "plain batches, AdaLoRA, seed 5", "ours, LoRA, seed 5"):
        del results["increment"]["runs"][name]

    copied = reuse_stand_ins(results, earlier, [5, 7], "old.json")

    assert copied == ["plain batches, LoRA, seed 5", "plain batches, AdaLoRA, seed 5"]
    assert results["increment"]["runs"]["plain batches, LoRA, seed 5"]["accuracy"] == 0.125
    assert "ours, LoRA, seed 5" not in results["increment"]["runs"]
    assert results["increment"]["stand_ins_reused"]["source"] == "old.json"
    # Only our run is left to train at seed 5; the copied stand-in is not trained again.
    added = add_seed_runs(results, results["data"]["path"], column_map("homedepot"), [5], base=str(tiny_bert), command="add seeds")
    assert added == ["ours, LoRA, seed 5"]
    assert results["increment"]["comparisons"][0]["seeds"]["plain"][1] == 0.125
    report = format_suite(results)
    assert "2 stand-in runs (seed 5) were not trained again but copied from `old.json`" in report
    assert "| plain batches, LoRA, seed 5 (copied, see below) | fp32 |" in report


@pytest.mark.parametrize(("where", "key", "value", "named"), [
    ("config", "learning_rate", 0.5, "setting learning_rate"),
    ("increment", "rows", 7, "rows"),
    ("data", "fingerprint", "sha256:other", "data fingerprint"),
])
def test_stand_ins_of_a_different_suite_are_refused(suite_results, where, key, value, named):
    earlier = copy.deepcopy(suite_results)
    earlier[where][key] = value
    results = copy.deepcopy(suite_results)
    del results["increment"]["runs"]["plain batches, LoRA, seed 5"]

    with pytest.raises(AdaptersError, match=f"^old.json differs in {named} .*drop --stand-ins-from to train them$"):
        reuse_stand_ins(results, earlier, [5], "old.json")
    assert "plain batches, LoRA, seed 5" not in results["increment"]["runs"]


def test_machine_facts_name_the_commit_of_this_checkout():
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("the tests run outside a git checkout")
    assert code_commit().split()[0] == head.stdout.strip()


def test_suite_rejects_too_small_data(tiny_bert, increment_csv):
    with pytest.raises(AdaptersError, match="the big benchmark needs 8000; pass a larger --data$"):
        run_suite(increment_csv, column_map("homedepot"), BenchSize("big", rows=4000, epochs=1, validation_rows=10), base=str(tiny_bert))


def test_demo_runs_whole_path_on_tiny_base(tiny_bert, increment_csv, tmp_path):
    lines = []

    report = run_demo(tmp_path / "demo", increment_csv, column_map("homedepot"), parts=2, rows_per_part=None,
                      config=TrainConfig(epochs=1, batch_size=16), base=str(tiny_bert), bench=False, echo=lines.append)

    assert report["versions"] == [1, 2]
    assert report["aliases"] == {"production": 1}
    assert [move["action"] for move in report["alias_history"]] == ["promote", "promote", "rollback"]
    assert set(report["matrix"]) == {"version 1", "version 2", "merged"}
    assert (tmp_path / "demo" / "report.md").is_file()
    assert any(line.startswith("7. Rolled production back") for line in lines)


def test_demo_refuses_folder_it_did_not_make(tmp_path, increment_csv):
    (tmp_path / "keep.txt").write_text("user data")

    with pytest.raises(AdaptersError, match="not made by `adapters demo`"):
        run_demo(tmp_path, increment_csv, column_map("homedepot"), bench=False, echo=lambda line: None)

    assert (tmp_path / "keep.txt").read_text() == "user data"


def test_mean_and_standard_error_by_hand():
    # Deviations from the mean 2 are -1, 0, 1: sample variance 1, standard error 1 / sqrt(3).
    assert mean_and_standard_error([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1 / math.sqrt(3)))
    assert mean_and_standard_error([0.4]) == (0.4, 0.0)
    with pytest.raises(ValueError, match="no values"):
        mean_and_standard_error([])
