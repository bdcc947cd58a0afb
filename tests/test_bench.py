"""The benchmark and the demo on a tiny base: every figure is present, positive and consistent."""

from __future__ import annotations

import pytest

from adapters.bench import format_report, run_benchmark
from adapters.config import TrainConfig
from adapters.data import column_map
from adapters.demo import run_demo
from adapters.errors import AdaptersError


def test_benchmark_reports_ratios_against_baseline(tiny_bert, increment_csv):
    results = run_benchmark(increment_csv, column_map("homedepot"), train_rows=48, inference_rows=40, base=str(tiny_bert),
                            config=TrainConfig(batch_size=16, max_length=32), command="adapters bench --test")

    training = results["training"]
    assert training["baseline"]["samples"] == 48
    assert training["ours"]["samples"] == 48
    assert training["baseline"]["padding_share"] > 0.5
    assert training["speedup_samples_per_s"] == pytest.approx(training["ours"]["samples_per_s"] / training["baseline"]["samples_per_s"])
    assert set(results["inference"]) == {"base", "adapter (unmerged)", "merged", "merged, transformers pipeline"}
    assert results["inference"]["base"]["ratio_to_base"] == pytest.approx(1.0)
    assert all(entry["samples_per_s"] > 0 for entry in results["inference"].values())
    assert results["merge"]["elapsed_s"] > 0

    report = format_report(results)
    assert "adapters bench --test" in report
    assert results["machine"]["torch"] in report


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
