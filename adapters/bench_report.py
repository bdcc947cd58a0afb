"""Render the benchmark suite's results as markdown and PNG plots; nothing here measures."""

from __future__ import annotations

import logging
from pathlib import Path

from adapters.bench import mean_and_standard_error

logger = logging.getLogger(__name__)

PLOTS = ("training-throughput.png", "increment-size.png", "merge-time.png")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _verdict(met: bool) -> str:
    return "met" if met else "missed"


def format_suite(results: dict) -> str:
    """Render the suite's results as a markdown section; sections missing from `results` are left out."""
    lines = _header_lines(results)

    if "increment" in results:
        lines += _increment_lines(results)
    if "threads" in results:
        lines += _settings_lines(results)
    if "scaling" in results:
        lines += _scaling_lines(results["scaling"])
    if "inference" in results:
        lines += _inference_lines(results)
    if results.get("registry_memory"):
        lines += _memory_lines(results)
    if "merge_scaling" in results:
        lines += ["### Merge time against the number of adapters", "",
                  "End-to-end `merge_versions` seconds (reading and verifying the versions, loading the base, the arithmetic, writing), "
                  "the arithmetic alone in brackets; random rank-8 LoRA adapters on query and value, SVD keeps rank 8.", "",
                  format_merge_scaling(results["merge_scaling"])]
    return "\n".join(lines) + "\n"


def _header_lines(results: dict) -> list[str]:
    machine, size = results["machine"], results["size"]
    flags = ", ".join(machine["cpu_flags"]) or "none of " + ", ".join(("avx2", "avx512f", "avx512_bf16", "amx_bf16"))
    lines = [
        f"Measured {results['date']} in {results.get('elapsed_s', 0) / 60:.1f} minutes with `{results['command']}` ({size['name']} size).",
        "",
        f"Machine: {machine['cpu_model']}, {machine['usable_cpus']} usable CPUs, {machine['torch_threads']} torch threads, "
        f"CPU flags: {flags}; {machine['platform']}.",
        f"Software: Python {machine['python']}, torch {machine['torch']}, transformers {machine['transformers']}, peft {machine['peft']}, "
        f"accelerate {machine['accelerate']}, datasets {machine['datasets']}, adapters {machine['adapters']}"
        + (f" at commit {machine['commit']}." if machine.get("commit") else "."),
        f"Data: `{results['data']['path']}` ({results['data']['fingerprint'][:19]}), {results['data']['train_rows']} training rows, "
        f"validation capped at {results['data']['validation_rows']} rows.",
    ]
    load = results.get("load_average")
    if load:
        end = f", {load['end']:.2f} at the end" if load.get("end") is not None else ""
        lines.append(f"Load average (1 minute): {load['start']:.2f} at the start{end}. The benchmark itself accounts for up to "
                     f"{machine['torch_threads']} of it; more means other work shared the CPUs and slowed every figure.")
    if results.get("code"):
        lines.append(f"Code: {results['code']}.")
    return lines + [""]


def _memory_lines(results: dict) -> list[str]:
    points = results["registry_memory"]
    lines = ["### Training peak memory as the registry grows", "",
             f"Peak resident memory (VmHWM) of a child process that trains one epoch on {results['size']['memory_rows']} rows and "
             "publishes into a registry already holding N versions." + _remeasured(results), "",
             "| versions in the registry | peak memory (MB) | time (s) |", "| --- | --- | --- |"]
    lines += [f"| {p['versions']} | {p['peak_rss_mb']:.0f} | {p['elapsed_s']:.1f} |" for p in points]

    first, last = points[0], points[-1]
    change = last["peak_rss_mb"] - first["peak_rss_mb"]
    lines += ["", f"From {first['versions']} to {last['versions']} versions the peak changes by {change:+.0f} MB "
              f"({(last['peak_rss_mb'] / first['peak_rss_mb'] - 1) * 100:+.1f}%).", ""]
    return lines


def _remeasured(results: dict) -> str:
    again = results.get("registry_memory_remeasured")
    if not again:
        return ""
    reason = f", because {again['reason']}" if again.get("reason") else ""
    return f" This section was measured again on its own, {again['date']}, with `{again['command']}`{reason}."


def _increment_lines(results: dict) -> list[str]:
    increment, targets = results["increment"], results["targets"]
    peak = results.get("matmul_peak", {}).get("gflops")
    lines = [
        f"### One increment: {increment['rows']} rows, {_plural(increment['epochs'], 'epoch')}", "",
        "Wall time covers everything a run does: tokenising, building the frozen-prefix cache, training and the validation "
        f"pass after every epoch ({increment['validation_rows']} rows). GFLOP/s counts training work on non-padding tokens only "
        "(forward through every layer that runs, backward from the lowest adapter layer up at one forward's cost)"
        + (f"; this machine's measured float32 matrix-multiply peak is {peak:.0f} GFLOP/s" if peak else "")
        + (f", its bfloat16 peak {results['matmul_peak']['bf16_gflops']:.0f} GFLOP/s, and each run's share is of the peak of its "
           "own precision." if "bf16_gflops" in results.get("matmul_peak", {}) else "."), "",
        "Training-loop samples/s and GFLOP/s time the training steps alone; the speedups below use the wall time, which also "
        "covers tokenising, the prefix cache and validation, so they are lower than the ratio of the training-loop rates.", "",
        "| run | precision | wall time (s) | training-loop samples/s | GFLOP/s | share of peak | validation accuracy | best epoch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    copied = set(increment.get("stand_ins_reused", {}).get("runs", []))
    for name, run in increment["runs"].items():
        run_peak = _peak(results, run.get("precision", "fp32"))
        share = f"{run['gflops'] / run_peak:.1%}" if run_peak else "n/a"
        label = f"{name} (copied, see below)" if name in copied else name
        lines.append(f"| {label} | {run.get('precision', 'fp32')} | {run['wall_s']:.1f} | {run['samples_per_s']:.1f} | {run['gflops']:.1f} | "
                     f"{share} | {run['accuracy']:.4f} | {run['best_epoch']} |")
    if any(_peak(results, run.get("precision", "fp32")) and run["gflops"] > _peak(results, run.get("precision", "fp32"))
           for run in increment["runs"].values()):
        lines += ["", _OVER_PEAK]
    lines += ["", f"Targets: at least {targets['speedup']:.0f}x lower wall time than the baseline, with validation accuracy no more "
              f"than {targets['gap_points']} points below it. The bracket is a 95% paired bootstrap interval of the accuracy gap over the "
              "validation rows: the gap the validation sample alone can produce."
              + ("" if results["size"]["name"] == "full" else " The targets are set for the full size: in this smaller run the fixed "
                 "costs of loading, tokenising and validating weigh more, and one short epoch is too little training to compare accuracy."),
              "",
              "| ours | baseline | wall-time speedup | speed target | accuracy gap (points) | accuracy target |",
              "| --- | --- | --- | --- | --- | --- |"]
    for item in increment["comparisons"]:
        mean_gap = item.get("seed_mean_gap_points")
        over_seeds = f"; mean over seeds {mean_gap:+.2f}" if mean_gap is not None else ""
        judged_gap = item["gap_points"] if mean_gap is None else mean_gap
        lines.append(f"| {item['ours']} | {item['baseline']} | {item['speedup']:.2f}x | {_verdict(item['speedup'] >= targets['speedup'])} | "
                     f"{item['gap_points']:+.2f} [{item['low_points']:+.2f}, {item['high_points']:+.2f}]{over_seeds} | "
                     f"{_verdict(judged_gap >= -targets['gap_points'])} |")
    seeds = [run for name, run in increment["runs"].items() if name.startswith("ours, LoRA") and not run["freeze_layers"]]
    spread = None
    if len(seeds) > 1:
        accuracies = [run["accuracy"] for run in seeds]
        spread = 100 * (max(accuracies) - min(accuracies))
        lines += ["", f"Seed spread of our LoRA run (seeds {', '.join(str(run['seed']) for run in seeds)}): accuracy from {min(accuracies):.4f} "
                  f"to {max(accuracies):.4f}, {spread:.2f} points apart."]
    judged = [item for item in increment["comparisons"] if item.get("seeds")]
    if judged:
        lines += ["", "Accuracy targets are judged on the mean gap over seeds, because one run per side moves by about as much as the "
                  "allowed gap. At the first seed the real baseline is compared; at the others, a stand-in for it: our loop on the "
                  "baseline's kind of batches (random order, torch's dropout, float32, no padding, which a test shows leaves loss and gradients "
                  "unchanged within 1e-5), so it trains like the baseline in a fraction of its time."]
        added = increment.get("seed_runs_added")
        if added and added.get("runs"):
            lines += ["", f"{_plural(len(added['runs']), 'seed run')} of this section were trained after the main run, {added['date']}, "
                      f"with `{added['command']}`, on the same rows and settings; their accuracy is comparable, their wall times take "
                      "part in no target." + (f" {added['note']}" if added.get("note") else "")]
        reused = increment.get("stand_ins_reused")
        if reused and reused.get("runs"):
            seeds = sorted({increment["runs"][name]["seed"] for name in reused["runs"]})
            lines += ["", f"{_plural(len(reused['runs']), 'stand-in run')} ({'seed' if len(seeds) == 1 else 'seeds'} "
                      f"{', '.join(map(str, seeds))}) were not trained again but copied "
                      f"from `{reused['source']}`, whose suite was measured {reused['measured']} with `{reused['command']}`"
                      + (f" and whose seed runs were last added {reused['seeds_added']} with `{reused['seeds_command']}`"
                         if reused.get("seeds_added") else "")
                      + ", on the same data, rows, labels and settings. A stand-in's loop (random order, torch's dropout, float32) is not touched by the speed features, "
                      "so at a given seed it trains as it did then."]
        for item in judged:
            lines += _seed_lines(item, targets)
        frozen = [item for item in judged if increment["runs"][item["ours"]]["freeze_layers"]]
        placements = [f"`{item['ours']}`:{cost}" for item in frozen if (cost := _placement_cost(increment, item))]
        if placements:
            lines += ["", "Runs with frozen lower layers against our run with adapters on every layer, seed by seed:", ""]
            lines += [f"- {line}" for line in placements]
    lines += [""] + [f"- {line}" for line in _missed_training_targets(increment, targets, results, spread)]
    return lines + [""]


def _seed_lines(item: dict, targets: dict) -> list[str]:
    seeds = item["seeds"]
    lines = ["", f"`{item['ours']}` against `{item['baseline']}`:", "",
             "| seed | ours | baseline or stand-in | gap (points) |", "| --- | --- | --- | --- |"]
    for index, seed in enumerate(seeds["seeds"]):
        lines.append(f"| {seed} | {seeds['ours'][index]:.4f} | {seeds['plain'][index]:.4f}{' (baseline)' if index == 0 else ''} | "
                     f"{seeds['gaps_points'][index]:+.2f} |")
    lines += ["", f"Mean gap over {_plural(len(seeds['seeds']), 'seed')}: {seeds['mean_gap_points']:+.2f} points (standard error "
              f"{seeds['standard_error_points']:.2f}); the target allows -{targets['gap_points']}."]
    return lines


def _placement_cost(increment: dict, item: dict) -> str:
    """Compare a run with frozen lower layers against our all-layer run of the same method at each seed both have."""
    runs, full = increment["runs"], item["ours"].split(", --")[0]
    seeds = item["seeds"]["seeds"]
    names = [(item["ours"], full)] + [(f"{item['ours']}, seed {seed}", f"{full}, seed {seed}") for seed in seeds[1:]]
    gaps = [100 * (runs[frozen]["accuracy"] - runs[every]["accuracy"]) for frozen, every in names if frozen in runs and every in runs]
    if len(gaps) < 2:
        return ""
    mean, error = mean_and_standard_error(gaps)
    return (f" Against `{full}` at the same {len(gaps)} seeds it scores {mean:+.2f} points (standard error {error:.2f}), which measures "
            "what this placement of adapters costs.")


def _peak(results: dict, precision: str) -> float | None:
    """Return the measured matrix-multiply peak in GFLOP/s for `precision`, or None where it was not measured."""
    return results.get("matmul_peak", {}).get("bf16_gflops" if precision == "bf16" else "gflops")


def _missed_training_targets(increment: dict, targets: dict, results: dict, spread: float | None) -> list[str]:
    """Say, for each missed training target, by how much it was missed and what the measurements show limits it."""
    lines = []
    for item in increment["comparisons"]:
        ours, baseline = increment["runs"][item["ours"]], increment["runs"][item["baseline"]]
        peak = _peak(results, ours.get("precision", "fp32"))
        if item["speedup"] < targets["speedup"]:
            padding = baseline["padding_share"]
            share = f", {ours['gflops'] / peak:.0%} of the matrix-multiply peak" if peak else ""
            lines.append(
                f"`{item['ours']}` reaches {item['speedup']:.2f}x against the {targets['speedup']:.0f}x target. The baseline's batches are "
                f"{padding:.0%} padding, so skipping padding cuts its linear-layer work about {1 / (1 - padding):.1f}x, and the rest "
                f"has to come from a faster rate per operation: counting its padding, the baseline computes at about "
                f"{baseline['gflops'] / (1 - padding):.0f} GFLOP/s, ours at {ours['gflops']:.0f} GFLOP/s{share}."
            )
        mean_gap = item.get("seed_mean_gap_points")
        if mean_gap is not None and mean_gap < -targets["gap_points"]:
            seeds = item["seeds"]
            if ours["freeze_layers"]:
                modules = ", ".join(ours.get("target_modules", results["config"]["target_modules"]))
                cause = (f"Only the layers above the lowest {ours['freeze_layers']} carry adapters in this run (on {modules}), which with "
                         f"the cache (exact, tested) is how it differs from `{item['ours'].split(', --')[0]}`; it stays opt-in."
                         f"{_placement_cost(increment, item)}")
            else:
                cause = (f"Our run differs from the stand-in only by {_differences(results, ours)}, and the suite does not measure which "
                         "of these costs accuracy. The fast dropout's masks have the same distribution as torch's (tested), and "
                         "`benchmarks/ablation.py` compares the accuracy of each dropout and of each grouping window.")
            lines.append(f"`{item['ours']}` is {-mean_gap:.2f} points below the baseline on the mean over "
                         f"{_plural(len(seeds['seeds']), 'seed')}, {-mean_gap - targets['gap_points']:.2f} points beyond the allowed gap "
                         f"(standard error of the mean {seeds['standard_error_points']:.2f} points). {cause}")
        elif mean_gap is None and item["gap_points"] < -targets["gap_points"]:
            noise = f" Seeds of our LoRA run differ by up to {spread:.2f} points." if spread is not None else ""
            lines.append(
                f"`{item['ours']}` is {-item['gap_points']:.2f} points below `{item['baseline']}`, "
                f"{-item['gap_points'] - targets['gap_points']:.2f} points beyond the allowed gap. The validation sample alone "
                f"allows gaps from {item['low_points']:+.2f} to {item['high_points']:+.2f} points.{noise}"
            )
    return lines or ["Every training target above is met."]


def _differences(results: dict, ours: dict) -> str:
    """Name the speed features by which one of our runs differs from the baseline's stand-in."""
    window = results["config"].get("group_window")
    features = [f"length-grouped batches (windows of {window} batches)" if window else "length-grouped batches"]
    if results["config"].get("fast_dropout"):
        features.append("the fast dropout")
    if ours.get("precision") == "bf16":
        features.append("bfloat16 autocast")
    return features[0] if len(features) == 1 else ", ".join(features[:-1]) + " and " + features[-1]


def _settings_lines(results: dict) -> list[str]:
    lines = ["### Thread count, dropout and precision", "", "| torch threads | training samples/s | base inference samples/s |", "| --- | --- | --- |"]
    lines += [f"| {row['threads']} | {row['training_samples_per_s']:.1f} | {row['inference_samples_per_s']:.1f} |" for row in results["threads"]]
    best = max(results["threads"], key=lambda row: row["training_samples_per_s"])
    lines += ["", f"Fastest training with {_plural(best['threads'], 'thread')}; torch's default here, which `adapters train` keeps unless "
              f"--threads is given, is {results['machine']['torch_threads']}."]
    steps = results.get("step_times")
    if steps and steps.get("fast_dropout_speedup"):
        lines += [f"FastDropout: {steps['fast_dropout_step_s']:.3f} s per training step against {steps['torch_dropout_step_s']:.3f} s with "
                  f"torch's dropout ({steps['fast_dropout_speedup']:.2f}x, {_plural(steps['dropout_steps'], 'step')} of "
                  f"{steps['batch_size']} rows each in {_PRECISION_NAMES[steps.get('precision', 'fp32')]}, the two kinds alternating on the same batches)."]
        if steps["fast_dropout_speedup"] > 1:
            lines.append("It is faster here, so `adapters train` uses it on CPU by default (--no-fast-dropout turns it off).")
        else:
            lines.append("It was not faster in this run. `adapters train` still uses it on CPU by default; if an idle rerun confirms "
                         "this, pass --no-fast-dropout on this machine. Other work on the CPUs also moves this figure (see the load average).")
    if steps and steps.get("bf16_to_fp32_time"):
        ratio = steps["bf16_to_fp32_time"]
        chosen = steps.get("precision", "fp32")
        counts = {chosen: steps["dropout_steps"], "bf16" if chosen == "fp32" else "fp32": steps["precision_steps"]}
        speed = f"{1 / ratio:.2f}x the speed" if ratio < 1 else f"{ratio:.1f}x the time"
        warmed = " after an untimed pass over the same batches in each precision" if steps.get("warmed_up") else ""
        lines += [f"bfloat16 autocast: {steps['bf16_step_s']:.3f} s per training step against {steps.get('fp32_step_s', steps['fast_dropout_step_s']):.3f} s "
                  f"in float32 ({speed}; mean of {_plural(counts['bf16'], 'step')} in bfloat16 and {counts['fp32']} in float32{warmed}). "
                  "These batches are unsorted, so padded to their longest row and slower per row than the length-grouped training loop."]
        flags = ", ".join(flag for flag in results["machine"]["cpu_flags"] if flag in ("amx_bf16", "avx512_bf16")) or "neither AMX nor AVX512-BF16"
        if chosen == "bf16":
            lines.append(f"This CPU computes in bfloat16 natively ({flags}), so --precision auto, the default, trains in bfloat16 here, "
                         "and our runs above are bfloat16 runs judged against the float32 baseline's accuracy.")
        else:
            lines.append(f"This CPU has {flags}, so --precision auto, the default, trains in float32 here.")
    return lines + [""]


def _scaling_lines(scaling: dict) -> list[str]:
    lines = ["### Cost against increment size", "", "Our default path, one epoch, the same validation rows each time.", "",
             "| rows | wall time (s) | training time (s) | training ms per row |", "| --- | --- | --- | --- |"]
    lines += [f"| {p['rows']} | {p['wall_s']:.1f} | {p['train_s']:.1f} | {1000 * p['train_s'] / p['rows']:.1f} |" for p in scaling["points"]]
    if "wall_fit" in scaling:
        fit = scaling["wall_fit"]
        lines += ["", f"A line fits the wall time with R² = {fit['r2']:.4f}: {1000 * fit['slope']:.1f} s per 1,000 rows plus "
                  f"{fit['intercept']:.1f} s fixed. Training time per row at the largest size is "
                  f"{scaling['train_s_per_row_last_to_first']:.2f}x that at the smallest."]
    return lines + [""]


_PRECISION_NAMES = {"fp32": "float32", "bf16": "bfloat16"}
_OVER_PEAK = ("A share above 100% means the matrix-multiply peak was measured while other work slowed the machine "
              "(see the load average), so that peak is too low.")


def _inference_lines(results: dict) -> list[str]:
    inference, targets = results["inference"], results["targets"]
    peak = results.get("matmul_peak", {}).get("gflops")
    models = inference["models"]
    lines = [f"### Inference and batch scoring ({inference['rows']} rows)", "",
             f"Passes interleaved (base, merged, unmerged, base, ...), in float32; median samples/s with the range over "
             f"{models['base']['passes']} passes, and the median of the per-pass ratios.", "",
             "| model | samples/s (median) | range | ratio to base (median, range) | GFLOP/s | share of peak |", "| --- | --- | --- | --- | --- | --- |"]
    for name, entry in models.items():
        ratio = entry["ratio_to_base"]
        share = f"{entry['gflops'] / peak:.1%}" if peak else "n/a"
        lines.append(f"| {name} | {entry['samples_per_s']:.1f} | {entry['min_samples_per_s']:.1f} to {entry['max_samples_per_s']:.1f} | "
                     f"{ratio['median']:.3f}x ({ratio['min']:.3f} to {ratio['max']:.3f}) | {entry['gflops']:.1f} | {share} |")

    if peak and any(entry["gflops"] > peak for entry in models.values()):
        lines += ["", _OVER_PEAK]
    merged = models["merged"]["ratio_to_base"]["median"]
    lines += ["", f"Merged against base: {merged:.3f}x, target {targets['merged_ratio']}x: {_verdict(merged >= targets['merged_ratio'])}."]
    if merged < targets["merged_ratio"]:
        spread = models["merged"]["ratio_to_base"]
        lines.append(f"Short by {targets['merged_ratio'] - merged:.3f}x. The merged folder has the base's modules and dtype, and the "
                     f"per-pass ratios range from {spread['min']:.3f} to {spread['max']:.3f}, so the machine's pass-to-pass noise "
                     "is of the size of the miss.")

    lines += ["",
              "| batch scoring, end to end | precision | rows/s (median) | range | ratio to pipeline (median, range) |",
              "| --- | --- | --- | --- | --- |"]
    for name, entry in inference["scoring"].items():
        ratio = entry["ratio_to_pipeline"]
        lines.append(f"| {name} | {entry.get('precision', 'fp32')} | {entry['samples_per_s']:.1f} | {entry['min_samples_per_s']:.1f} to "
                     f"{entry['max_samples_per_s']:.1f} | {ratio['median']:.2f}x ({ratio['min']:.2f} to {ratio['max']:.2f}) |")
    agreement = inference.get("scoring_agreement")
    if agreement:
        lines += ["", f"Our scores against the pipeline's, over the {agreement['rows']} rows: largest difference in a probability "
                  f"{agreement['max_probability_difference']:.4f}, same most likely label on {agreement['same_top_label']:.1%} of rows."]

    scoring = inference["scoring"]["adapters score"]["ratio_to_pipeline"]["median"]
    precisions = f" (ours in {_PRECISION_NAMES[inference['scoring']['adapters score'].get('precision', 'fp32')]}, the pipeline in float32)"
    lines += ["", f"Batch scoring against `transformers.pipeline` on the same merged folder{precisions}: {scoring:.2f}x, target "
              f"{targets['scoring_ratio']}x: {_verdict(scoring >= targets['scoring_ratio'])}."]
    if scoring < targets["scoring_ratio"]:
        forward = models["merged"]["samples_per_s"]
        precision = inference["scoring"]["adapters score"].get("precision", "fp32")
        lines.append(f"Short by {targets['scoring_ratio'] - scoring:.2f}x. Scoring end to end, reading and writing included, runs at "
                     f"{inference['scoring']['adapters score']['samples_per_s']:.0f} rows/s, against {forward:.0f} rows/s for the merged "
                     f"model's float32 forward passes alone, so what remains of our time is the {precision} forward pass. The pipeline's time was not "
                     "broken down; its known differences from ours are tokenising one row at a time and padding unsorted batches to "
                     "their longest row. Going further needs a faster forward pass than the float32 model's (quantisation or a "
                     "compiled runtime), which changes the scores or adds a runtime.")
    return lines + [""]


def format_merge_scaling(rows: list[dict]) -> str:
    """Render merge timings as a markdown table: adapters by output form, end-to-end seconds."""
    forms = list(dict.fromkeys(row["form"] for row in rows))
    counts = list(dict.fromkeys(row["adapters"] for row in rows))
    lookup = {(row["adapters"], row["form"]): row for row in rows}
    lines = ["| adapters | " + " | ".join(f"{form} (s, arithmetic s)" for form in forms) + " |", "| --- |" + " --- |" * len(forms)]
    for count in counts:
        cells = [f"{lookup[(count, form)]['elapsed_s']:.2f} ({lookup[(count, form)]['merge_s']:.2f})" for form in forms]
        lines.append(f"| {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_plots(results: dict, out_dir: str | Path) -> list[Path]:
    """Draw throughput per configuration, time against increment size and merge time against adapters.

    Needs matplotlib (the `plots` extra); without it, returns an empty list and logs why.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed, so no plots were drawn; install the plots extra: pip install 'increment-adapters[plots]'")
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if "increment" in results:
        runs = results["increment"]["runs"]
        figure, axis = plt.subplots(figsize=(8, 4))
        names = list(runs)
        axis.barh(names, [runs[name]["samples_per_s"] for name in names], color=["#999999" if runs[n]["kind"] == "baseline" else "#1f77b4" for n in names])
        axis.invert_yaxis()
        axis.set_xlabel("training-loop samples/s (steps only)")
        axis.set_title(f"Training throughput, {results['increment']['rows']} rows x {_plural(results['increment']['epochs'], 'epoch')}")
        written.append(_save(figure, out_dir / PLOTS[0]))
    if results.get("scaling", {}).get("points"):
        points = results["scaling"]["points"]
        figure, axis = plt.subplots(figsize=(6, 4))
        axis.plot([p["rows"] for p in points], [p["wall_s"] for p in points], "o-", label="wall time")
        axis.plot([p["rows"] for p in points], [p["train_s"] for p in points], "s--", label="training time")
        fit = results["scaling"].get("wall_fit")
        if fit:
            ends = [points[0]["rows"], points[-1]["rows"]]
            axis.plot(ends, [fit["intercept"] + fit["slope"] * x for x in ends], ":", color="gray", label=f"fitted line, R² {fit['r2']:.3f}")
        axis.set_xlabel("rows in the increment")
        axis.set_ylabel("seconds (one epoch)")
        axis.set_title("Cost against increment size")
        axis.legend()
        written.append(_save(figure, out_dir / PLOTS[1]))
    if results.get("merge_scaling"):
        rows = results["merge_scaling"]
        figure, axis = plt.subplots(figsize=(6, 4))
        for form in dict.fromkeys(row["form"] for row in rows):
            mine = [row for row in rows if row["form"] == form]
            axis.plot([row["adapters"] for row in mine], [row["elapsed_s"] for row in mine], "o-", label=form)
        axis.set_xscale("log", base=2)
        axis.set_ylim(bottom=0)
        axis.set_xlabel("adapters merged")
        axis.set_ylabel("seconds, end to end")
        axis.set_title("Merge time against the number of adapters")
        axis.legend()
        written.append(_save(figure, out_dir / PLOTS[2]))
    return written


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(figure)
    return path
