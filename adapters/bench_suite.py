"""The benchmark suite behind `adapters bench` and benchmarks/RESULTS.md.

One run works on one data file, in one process plus short child processes for peak memory. It
measures the machine's matrix-multiply peak, thread counts and bfloat16 against float32. It trains
a whole increment with the baseline loop and with our path (LoRA, AdaLoRA, frozen prefix with the
cache). Then it measures the cost of increments of growing size, base against merged inference and
batch scoring against `transformers.pipeline`. Last come training peak memory as the registry grows
and merge time against the number of adapters. The results form one JSON-ready dict, saved after each section.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import datasets
import torch
from transformers import AutoConfig

from adapters.base import fingerprint_model, load_classifier, load_tokenizer, resolve_base
from adapters.bench import (
    baseline_run,
    layer_flop,
    linear_fit,
    machine_facts,
    matmul_peak,
    mean_and_standard_error,
    our_run,
    paired_accuracy_gap,
    step_times,
    thread_scan,
    token_lengths,
    training_flop,
)
from adapters.bench_inference import inference_comparison, merge_scaling, publish_random_adapters, scoring_comparison
from adapters.config import TrainConfig
from adapters.data import ColumnMap, column_map, load_increment
from adapters.deploy import merge_versions
from adapters.errors import AdaptersError
from adapters.workflow import LoadedTarget, load_merged_model, load_version_model, open_registry, publish_result

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchSize:
    """How much work each section of the suite does."""

    name: str
    rows: int
    epochs: int
    validation_rows: int
    extra_seeds: tuple[int, ...] = ()
    scaling_rows: tuple[int, ...] = (1000, 2000, 4000, 8000)
    thread_rows: int = 512
    precision_steps: int = 2
    dropout_steps: int = 12
    inference_rows: int = 2000
    inference_repeats: int = 5
    scoring_repeats: int = 3
    registry_sizes: tuple[int, ...] = (1, 10, 50)
    memory_rows: int = 300
    merge_counts: tuple[int, ...] = (2, 8, 32)


SIZES = {
    "quick": BenchSize("quick", rows=320, epochs=1, validation_rows=256, scaling_rows=(250, 500, 1000, 2000), thread_rows=256,
                       precision_steps=1, dropout_steps=4, inference_rows=500, inference_repeats=3, scoring_repeats=2, registry_sizes=(1, 50),
                       memory_rows=160, merge_counts=(2, 8)),
    "full": BenchSize("full", rows=4000, epochs=3, validation_rows=1000, extra_seeds=(43, 44)),
    # The last step of `adapters demo`: the increment comparison and inference only.
    "demo": BenchSize("demo", rows=256, epochs=1, validation_rows=128, scaling_rows=(), thread_rows=0, precision_steps=0,
                      dropout_steps=0, inference_rows=512, inference_repeats=2, scoring_repeats=1, registry_sizes=(), merge_counts=()),
}

# Our path must beat the baseline's wall time by this factor on a whole increment, at an accuracy
# no more than TARGET_GAP_POINTS below the baseline's.
TARGET_SPEEDUP = 6.0
TARGET_GAP_POINTS = 0.5
TARGET_MERGED_RATIO = 0.98
TARGET_SCORING_RATIO = 2.0
# Name of the runs that stand in for the baseline at further seeds.
PLAIN = "plain batches"
# Every linear module of a BERT layer: "dense" names the attention output and both feed-forward layers.
# With the lowest layers frozen, adapters on all of them keep the accuracy that query and value alone lose.
EVERY_LINEAR = ("query", "key", "value", "dense")
# Settings of a baseline stand-in: the baseline's kind of batches, dropout and precision in our loop.
STAND_IN = {"group_by_length": False, "fast_dropout": False, "precision": "fp32"}

_MEMORY_CHILD = """
import json, resource, sys, time
from adapters.config import TrainConfig
from adapters.data import column_map
from adapters.workflow import train_increment
registry, data, base, config = sys.argv[1], sys.argv[2], sys.argv[3] or None, json.loads(sys.argv[4])
started = time.perf_counter()
version = train_increment(registry, data, column_map(text="text", text_pair="text_pair", label="label"),
                          TrainConfig.from_dict(config), base=base, force=True)
# ru_maxrss survives exec on Linux and would report the parent's size, so the peak of this
# process's own memory map (VmHWM) is read where /proc has it.
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:
    with open("/proc/self/status") as status:
        peak_mb = next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    pass
print(json.dumps({"peak_rss_mb": peak_mb, "elapsed_s": time.perf_counter() - started, "version": version.id}))
"""


def run_suite(
    data_path: str | Path,
    columns: ColumnMap,
    size: BenchSize,
    *,
    base: str | None = None,
    config: TrainConfig | None = None,
    command: str | None = None,
    checkpoint: Callable[[dict], None] | None = None,
) -> dict:
    """Run every section on `data_path` and return the results; `checkpoint` gets them after each section."""
    config = replace(config or TrainConfig(), epochs=size.epochs)
    needed = max(size.rows, *size.scaling_rows) if size.scaling_rows else size.rows
    increment, train, validation = _load_rows(data_path, columns, config, needed, size.validation_rows, size.name)
    spec = resolve_base(base)
    tokenizer = load_tokenizer(spec)
    labels = increment.labels
    model_config = AutoConfig.from_pretrained(spec.location)
    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command or " ".join(shlex.quote(arg) for arg in sys.argv),
        "size": asdict(size),
        "machine": machine_facts(),
        "data": {"path": str(data_path), "fingerprint": increment.fingerprint, "train_rows": len(increment.train),
                 "validation_rows": len(validation)},
        "config": config.to_dict(),
        "labels": labels,
        "targets": {"speedup": TARGET_SPEEDUP, "gap_points": TARGET_GAP_POINTS, "merged_ratio": TARGET_MERGED_RATIO,
                    "scoring_ratio": TARGET_SCORING_RATIO},
    }
    if hasattr(os, "getloadavg"):
        results["load_average"] = {"start": os.getloadavg()[0]}
    started = time.perf_counter()

    def section(name: str, value) -> None:
        results[name] = value
        results["elapsed_s"] = time.perf_counter() - started
        if "load_average" in results:
            results["load_average"]["end"] = os.getloadavg()[0]
        if checkpoint:
            checkpoint(results)

    section("matmul_peak", matmul_peak())
    if size.thread_rows:
        counts = sorted({1, results["machine"]["usable_cpus"], torch.get_num_threads()})
        section("threads", thread_scan(spec, tokenizer, train.select(range(min(size.thread_rows, len(train)))),
                                       validation.select(range(min(128, len(validation)))), labels, replace(config, epochs=1), counts))
    if size.precision_steps or size.dropout_steps:
        section("step_times", step_times(spec, tokenizer, train, labels, config, dropout_steps=size.dropout_steps,
                                         precision_steps=size.precision_steps))
    increment_results, lora_result = _increment_section(spec, tokenizer, train.select(range(size.rows)), validation, labels, config,
                                                        model_config, size)
    section("increment", increment_results)
    if size.scaling_rows:
        section("scaling", _scaling_section(spec, tokenizer, train, validation, labels, config, size))
    section("inference", _inference_section(spec, tokenizer, increment, lora_result, labels, config, model_config, size, base))
    if size.registry_sizes:
        section("registry_memory", _memory_section(spec, train, validation, labels, config, size, base))
    if size.merge_counts:
        section("merge_scaling", merge_scaling(spec, labels, counts=size.merge_counts))
    return results


def _load_rows(data_path, columns: ColumnMap, config: TrainConfig, needed: int, validation_rows: int, size_name: str):
    """Read the increment and return it with its shuffled train rows and the validation rows the suite uses."""
    increment = load_increment(data_path, columns, validation_fraction=config.validation_fraction)
    if len(increment.train) < needed:
        raise AdaptersError(
            f"data file {str(data_path)!r} has {len(increment.train)} training rows; the {size_name} benchmark needs {needed}; "
            "pass a larger --data" + (" or use --quick" if size_name == "full" else "")
        )
    train = increment.train.shuffle(seed=config.seed)
    validation = increment.validation.select(range(min(validation_rows, len(increment.validation))))
    return increment, train, validation


def _increment_section(spec, tokenizer, train, validation, labels, config, model_config, size):
    """Train one increment with the baseline and with our path, per method, and compare wall time and accuracy."""
    frozen = min(3, model_config.num_hidden_layers - 1)
    lengths = token_lengths(train, tokenizer, config.max_length)
    runs, predictions, lora_result = {}, {}, None
    for name, kind, run_config in increment_plans(config, frozen, size.extra_seeds):
        runs[name], predictions[name], result = _train_one(spec, tokenizer, train, validation, labels, model_config, lengths, name, kind,
                                                           run_config)
        if name == "ours, LoRA":
            lora_result = result
    truth = list(validation["label"])
    comparisons = []
    for ours, reference in _compared(frozen):
        gap = paired_accuracy_gap(predictions[ours], predictions[reference], truth)
        speedup = runs[reference]["wall_s"] / runs[ours]["wall_s"]
        comparisons.append({"ours": ours, "baseline": reference, "speedup": speedup, **gap,
                            "met": speedup >= TARGET_SPEEDUP and gap["gap_points"] >= -TARGET_GAP_POINTS})
    increment = {"rows": len(train), "epochs": config.epochs, "validation_rows": len(validation), "frozen_layers": frozen,
                 "runs": runs, "comparisons": comparisons}
    _judge_over_seeds(increment, [config.seed, *size.extra_seeds])
    return increment, lora_result


def increment_plans(config: TrainConfig, frozen: int, extra_seeds=()) -> list[tuple[str, str, TrainConfig]]:
    """List the (name, kind, config) of every run of the increment section.

    At each extra seed, each of our runs is trained again, and so is a stand-in for each baseline:
    our loop on the baseline's kind of batches (random order, torch's dropout, float32). Padding does not
    change the loss or the gradients, so the stand-in trains like the baseline in a fraction of its time.
    """
    main = [
        ("baseline, LoRA", "baseline", replace(config, method="lora")),
        ("ours, LoRA", "ours", replace(config, method="lora")),
        ("baseline, AdaLoRA", "baseline", replace(config, method="adalora")),
        ("ours, AdaLoRA", "ours", replace(config, method="adalora")),
        (f"ours, LoRA, --freeze-layers {frozen}, cached", "ours", replace(config, method="lora", freeze_layers=frozen, cache_prefix=True)),
        (_every_linear(frozen), "ours", replace(config, method="lora", freeze_layers=frozen, cache_prefix=True, target_modules=EVERY_LINEAR)),
    ]
    plans = list(main)
    for seed in extra_seeds:
        for name, kind, run_config in main:
            if kind == "baseline":
                plain = replace(run_config, seed=seed, **STAND_IN)
                plans.append((f"{_stand_in(name)}, seed {seed}", "plain", plain))
            else:
                plans.append((f"{name}, seed {seed}", kind, replace(run_config, seed=seed)))
    return plans


def _stand_in(baseline_name: str) -> str:
    return baseline_name.replace("baseline", PLAIN, 1)


def _every_linear(frozen: int) -> str:
    return f"ours, LoRA, --freeze-layers {frozen} --target-modules {','.join(EVERY_LINEAR)}, cached"


def _compared(frozen: int) -> list[tuple[str, str]]:
    return [("ours, LoRA", "baseline, LoRA"), ("ours, AdaLoRA", "baseline, AdaLoRA"),
            (f"ours, LoRA, --freeze-layers {frozen}, cached", "baseline, LoRA"), (_every_linear(frozen), "baseline, LoRA")]


def _train_one(spec, tokenizer, train, validation, labels, model_config, lengths, name, kind, run_config):
    """Train one planned run; return its figures, its validation predictions and our TrainResult (None for the baseline)."""
    logger.info("Training one increment: %s", name)
    result = None
    if kind == "baseline":
        figures = baseline_run(spec, tokenizer, train, validation, labels, run_config)
    else:
        figures, result = our_run(spec, tokenizer, train, validation, labels, run_config)
    cached = kind != "baseline" and run_config.freeze_layers > 0 and run_config.cache_prefix
    flop = training_flop(lengths, model_config, run_config, cached=cached)
    predictions = figures.pop("predictions")
    logger.info("%s: %.1f s, validation accuracy %.4f", name, figures["wall_s"], figures["accuracy"])
    entry = {"kind": kind, "method": run_config.method, "freeze_layers": run_config.freeze_layers, "cached": cached,
             "target_modules": list(run_config.target_modules),
             "seed": run_config.seed, **figures, "gflops": flop / figures["train_s"] / 1e9}
    return entry, predictions, result


def _judge_over_seeds(increment: dict, seeds: list[int]) -> None:
    """Judge each comparison's accuracy on the mean gap over those of `seeds` whose runs on both sides exist."""
    runs = increment["runs"]
    for item in increment["comparisons"]:
        present = [seed for seed in seeds[1:] if f"{item['ours']}, seed {seed}" in runs and f"{_stand_in(item['baseline'])}, seed {seed}" in runs]
        if not present:
            continue
        item["seeds"] = seed_comparison(runs, [seeds[0], *present], item["ours"], item["baseline"])
        item["seed_mean_gap_points"] = item["seeds"]["mean_gap_points"]
        item["met"] = item["speedup"] >= TARGET_SPEEDUP and item["seed_mean_gap_points"] >= -TARGET_GAP_POINTS


def seed_comparison(runs: dict, seeds: list[int], ours: str, baseline: str) -> dict:
    """Compare run `ours` with the baseline's kind of training, seed by seed, and average the accuracy gaps in points.

    The first seed pairs the real runs `ours` and `baseline`; each further seed N pairs "<ours>, seed N"
    with the baseline's stand-in at that seed. The standard error is that of the mean of the per-seed gaps.

    Raises:
        KeyError: a run of one of the seeds is missing.
    """
    pairs = [(runs[ours], runs[baseline])]
    pairs += [(runs[f"{ours}, seed {seed}"], runs[f"{_stand_in(baseline)}, seed {seed}"]) for seed in seeds[1:]]
    gaps = [100 * (mine["accuracy"] - plain["accuracy"]) for mine, plain in pairs]
    mean, error = mean_and_standard_error(gaps)
    return {"seeds": seeds, "ours": [mine["accuracy"] for mine, _ in pairs], "plain": [plain["accuracy"] for _, plain in pairs],
            "gaps_points": gaps, "mean_gap_points": mean, "standard_error_points": error}


def add_seed_runs(results: dict, data_path: str | Path, columns: ColumnMap, seeds: list[int], *, base: str | None = None,
                  command: str | None = None, checkpoint: Callable[[dict], None] | None = None) -> list[str]:
    """Train the increment runs that `results` lacks at `seeds` and judge every comparison over its seeds.

    The rows, validation rows and settings are those recorded in `results`, so accuracy, which does
    not depend on the machine's load, is comparable with the stored runs. Wall times of the added
    runs are recorded but take part in no target. `checkpoint` gets `results` after each run, so an
    interrupted call keeps the runs it finished. Returns the names of the runs trained.
    """
    increment = results["increment"]
    if "fast_dropout" not in results["config"]:
        raise AdaptersError("the stored results predate the fast dropout, so new seed runs would train differently; "
                            "measure the whole suite again instead")
    config = replace(TrainConfig.from_dict(results["config"]), epochs=increment["epochs"])
    data, train, validation = _load_rows(data_path, columns, config, increment["rows"], increment["validation_rows"], results["size"]["name"])
    if data.fingerprint != results["data"]["fingerprint"]:
        raise AdaptersError(f"data file {str(data_path)!r} differs from the one the stored results were measured on "
                            f"({results['data']['path']}, fingerprint {results['data']['fingerprint']}); pass the data file used then")
    train = train.select(range(increment["rows"]))
    spec = resolve_base(base)
    tokenizer = load_tokenizer(spec)
    model_config = AutoConfig.from_pretrained(spec.location)
    lengths = token_lengths(train, tokenizer, config.max_length)
    # Suites before per-comparison seeds kept one LoRA-only summary here.
    increment.pop("seeds", None)
    command = command or " ".join(shlex.quote(arg) for arg in sys.argv)
    earlier = increment.get("seed_runs_added", {}).get("runs", [])
    added = []
    for name, kind, run_config in increment_plans(config, increment["frozen_layers"], seeds):
        if name in increment["runs"]:
            continue
        increment["runs"][name], _, _ = _train_one(spec, tokenizer, train, validation, results["labels"], model_config, lengths, name,
                                                   kind, run_config)
        added.append(name)
        stored_seeds = {run["seed"] for run in increment["runs"].values()} - {config.seed}
        results["size"]["extra_seeds"] = sorted(stored_seeds)
        _judge_over_seeds(increment, [config.seed, *results["size"]["extra_seeds"]])
        increment["seed_runs_added"] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command,
                                        "runs": earlier + added}
        if checkpoint:
            checkpoint(results)
    return added


def reuse_stand_ins(results: dict, earlier: dict, seeds: list[int], source: str) -> list[str]:
    """Copy into `results` the baseline stand-in runs that `earlier`, another stored speed suite, contains at `seeds`.

    A stand-in trains our loop on the baseline's kind of batches, which no later speed feature
    touches, so its accuracy at a seed is that of a new run when the data, rows, labels and
    settings are the same. The copies are named in `results` with their source. Returns the
    names of the runs copied.

    Raises:
        AdaptersError: the two suites differ in data, rows, labels or settings; the message names
            the first difference.
    """
    increment, before = results["increment"], earlier.get("increment", {})
    checks = [("data fingerprint", results["data"]["fingerprint"], earlier.get("data", {}).get("fingerprint")),
              ("labels", results["labels"], earlier.get("labels"))]
    checks += [(key, increment[key], before.get(key)) for key in ("rows", "validation_rows", "epochs")]
    # Settings that a stand-in overrides, or that act only on grouped batches, do not change it.
    ignored = {"seed", "group_window", *STAND_IN}
    settings = set(results["config"]) | set(earlier.get("config", {}))
    checks += [(f"setting {key}", results["config"].get(key), earlier.get("config", {}).get(key)) for key in sorted(settings - ignored)]
    for field, ours, theirs in checks:
        if ours != theirs:
            raise AdaptersError(f"{source} differs in {field} ({theirs!r} there, {ours!r} here), so its stand-ins "
                                "are not comparable; drop --stand-ins-from to train them")
    copied = []
    for name, kind, _ in increment_plans(TrainConfig.from_dict(results["config"]), increment["frozen_layers"], seeds):
        if kind == "plain" and name not in increment["runs"] and name in before.get("runs", {}):
            increment["runs"][name] = before["runs"][name]
            copied.append(name)
    if copied:
        reused = increment.setdefault("stand_ins_reused", {"runs": []})
        added = before.get("seed_runs_added", {})
        reused.update({"source": source, "measured": earlier.get("date"), "command": earlier.get("command"),
                       "seeds_added": added.get("date"), "seeds_command": added.get("command")})
        reused["runs"] += copied
    return copied


def _scaling_section(spec, tokenizer, train, validation, labels, config, size):
    """Train our default path for one epoch on increments of growing size and fit a line to the wall time."""
    points = []
    for rows in size.scaling_rows:
        figures, _ = our_run(spec, tokenizer, train.select(range(rows)), validation, labels, replace(config, epochs=1))
        points.append({"rows": rows, "wall_s": figures["wall_s"], "train_s": figures["train_s"], "accuracy": figures["accuracy"]})
        logger.info("One epoch on %d rows: %.1f s", rows, figures["wall_s"])
    if len(points) < 2:
        return {"points": points}
    fit = linear_fit([p["rows"] for p in points], [p["wall_s"] for p in points])
    train_fit = linear_fit([p["rows"] for p in points], [p["train_s"] for p in points])
    first, last = points[0], points[-1]
    per_row_ratio = (last["train_s"] / last["rows"]) / (first["train_s"] / first["rows"])
    return {"points": points, "wall_fit": fit, "train_fit": train_fit, "train_s_per_row_last_to_first": per_row_ratio}


def _inference_section(spec, tokenizer, increment, lora_result, labels, config, model_config, size, base):
    """Publish and merge the trained LoRA adapter, then compare base, merged and unmerged inference and batch scoring."""
    scored = datasets.concatenate_datasets([increment.validation, increment.train])
    scored = scored.select(range(min(size.inference_rows, len(scored))))
    forward_flop = layer_flop(token_lengths(scored, tokenizer, config.max_length), model_config) * model_config.num_hidden_layers
    with tempfile.TemporaryDirectory(prefix="adapters-bench-") as scratch:
        registry = open_registry(Path(scratch) / "registry", create=True)
        base_model = load_classifier(spec, labels)
        version = publish_result(registry, spec, fingerprint_model(base_model), increment, config, lora_result)
        merge = merge_versions(registry.root, [str(version.id)], Path(scratch) / "merged", base=base)
        targets = {"base": LoadedTarget(base_model, tokenizer, labels, "base"), "merged": load_merged_model(merge.out_dir),
                   "adapter (unmerged)": load_version_model(registry, str(version.id), base)}
        logger.info("Measuring inference on %d rows, %d interleaved passes", len(scored), size.inference_repeats)
        inference = inference_comparison(targets, scored, config.eval_batch_size, repeats=size.inference_repeats)
        for entry in inference.values():
            entry["gflops"] = forward_flop / (entry["samples"] / entry["samples_per_s"]) / 1e9
        data_file = _write_pairs(scored, labels, Path(scratch) / "scored.jsonl")
        pair_columns = column_map(text="text", text_pair="text_pair", label="label")
        logger.info("Measuring batch scoring against transformers.pipeline")
        scoring, agreement = scoring_comparison(merge.out_dir, data_file, pair_columns, config.eval_batch_size, repeats=size.scoring_repeats)
    return {"rows": len(scored), "models": inference, "scoring": scoring, "scoring_agreement": agreement,
            "merge": {"elapsed_s": merge.elapsed_s, **merge.timings}}


def registry_memory(data_path: str | Path, columns: ColumnMap, size: BenchSize, *, base: str | None = None,
                    config: TrainConfig | None = None) -> list[dict]:
    """Measure only the training peak memory against registry size, as `run_suite` does."""
    config = config or TrainConfig()
    increment = load_increment(data_path, columns, validation_fraction=config.validation_fraction)
    train = increment.train.shuffle(seed=config.seed)
    return _memory_section(resolve_base(base), train, increment.validation, increment.labels, config, size, base)


def _memory_section(spec, train, validation, labels, config, size, base):
    """Train in a child process at each registry size and read its peak resident memory."""
    points = []
    with tempfile.TemporaryDirectory(prefix="adapters-memory-bench-") as scratch:
        registry = open_registry(Path(scratch) / "registry", create=True)
        registry.ensure_labels(labels)
        # Rows keep their query, so the child splits them into the same train and validation parts.
        rows = datasets.concatenate_datasets([train.select(range(min(size.memory_rows, len(train)))),
                                              validation.select(range(min(size.memory_rows // 4 + 1, len(validation))))])
        data_file = _write_pairs(rows, labels, Path(scratch) / "rows.jsonl")
        child_config = json.dumps(replace(config, epochs=1).to_dict())
        for versions in size.registry_sizes:
            missing = versions - len(registry.versions())
            if missing > 0:
                publish_random_adapters(registry, spec, labels, missing, seed=len(registry.versions()))
            completed = subprocess.run(
                [sys.executable, "-c", _MEMORY_CHILD, str(registry.root), str(data_file), base or "", child_config],
                capture_output=True, text=True, check=False,
            )
            if completed.returncode != 0:
                raise RuntimeError(f"the memory measurement child failed: {completed.stderr.strip().splitlines()[-1:]}")
            measured = json.loads(completed.stdout.strip().splitlines()[-1])
            points.append({"versions": versions, **measured})
            logger.info("Registry of %d versions: training peak %.0f MB", versions, measured["peak_rss_mb"])
    return points


def _write_pairs(rows: datasets.Dataset, labels: list[str], path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as stream:
        for text, pair, label in zip(rows["text"], rows["text_pair"], rows["label"]):
            stream.write(json.dumps({"text": text, "text_pair": pair, "label": labels[label]}) + "\n")
    return path
