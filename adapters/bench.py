"""Throughput of training, inference and merging, measured side by side with a plain baseline.

The baseline training loop is written the way peft's documentation shows a sequence-classification
fine-tune: every batch padded to `max_length`, float32, a shuffled DataLoader, AdamW and a linear
schedule, one optimizer step per batch. Our path is `adapters.training.train_adapter`, the function
`adapters train` calls. Both train the same LoRA configuration on the same rows, in the same
process, one after the other.
"""

from __future__ import annotations

import copy
import logging
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import datasets
import torch
from peft import LoraConfig, TaskType, get_peft_model
from torch.utils.data import DataLoader
from transformers import AutoConfig, DataCollatorWithPadding, get_linear_schedule_with_warmup

from adapters.base import (
    fingerprint_model,
    load_classifier,
    load_tokenizer,
    resolve_base,
)
from adapters.config import TrainConfig
from adapters.data import ColumnMap, load_increment
from adapters.deploy import merge_versions
from adapters.evaluation import predict_probabilities
from adapters.modeling import encode, model_inputs, wrap_for_training
from adapters.training import train_adapter
from adapters.workflow import (
    LoadedTarget,
    load_merged_model,
    load_version_model,
    open_registry,
    publish_result,
    software_versions,
)

logger = logging.getLogger(__name__)


def baseline_training(spec, tokenizer, rows: datasets.Dataset, labels: list[str], config: TrainConfig) -> dict:
    """Run one epoch of the padded float32 baseline loop and return its throughput."""
    torch.manual_seed(config.seed)
    model = load_classifier(spec, labels, seed=config.seed)
    total_steps = -(-len(rows) // config.batch_size)
    model = wrap_for_training(model, config, total_steps)
    encoded = encode(rows, tokenizer, config.max_length).remove_columns(["length"])
    collator = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=config.max_length)
    loader = DataLoader(encoded.with_format("torch"), batch_size=config.batch_size, shuffle=True, collate_fn=collator)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, total_steps)

    model.train()
    samples = real_tokens = padded_tokens = 0
    started = time.perf_counter()
    for batch in loader:
        loss = model(**model_inputs(batch)).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        samples += len(batch["input_ids"])
        real_tokens += int(batch["attention_mask"].sum())
        padded_tokens += batch["input_ids"].numel()
    elapsed_s = time.perf_counter() - started
    return {"samples": samples, "elapsed_s": elapsed_s, "samples_per_s": samples / elapsed_s,
            "tokens_per_s": real_tokens / elapsed_s, "padding_share": 1 - real_tokens / padded_tokens}


def our_training(spec, tokenizer, rows: datasets.Dataset, validation: datasets.Dataset, labels, config: TrainConfig):
    """Run one epoch of our training path (dynamic padding, length-grouped batches).

    Returns the throughput figures and the TrainResult, whose adapter the inference benchmark reuses.
    """
    def build(total_steps):
        return wrap_for_training(load_classifier(spec, labels, seed=config.seed), config, total_steps)

    result = train_adapter(build, tokenizer, rows, validation, labels, config)
    figures = {"samples": len(rows), "elapsed_s": len(rows) / result.samples_per_s,
               "samples_per_s": result.samples_per_s, "tokens_per_s": result.tokens_per_s}
    return figures, result


def inference_throughput(target: LoadedTarget, rows: datasets.Dataset, batch_size: int, repeats: int = 2) -> dict:
    """Score `rows` `repeats` times after a warm-up batch and report the fastest pass in samples/s."""
    predict_probabilities(target, rows.select(range(min(len(rows), batch_size))), batch_size=batch_size)
    best_s = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predict_probabilities(target, rows, batch_size=batch_size)
        best_s = min(best_s, time.perf_counter() - started)
    return {"samples": len(rows), "elapsed_s": best_s, "samples_per_s": len(rows) / best_s}


def pipeline_throughput(folder: Path, rows: datasets.Dataset, batch_size: int, repeats: int = 2) -> dict:
    """Score `rows` with `transformers.pipeline("text-classification")` on a merged folder, as most teams would."""
    from transformers import pipeline

    classifier = pipeline("text-classification", model=str(folder), tokenizer=str(folder), device="cpu", top_k=None)
    inputs = [{"text": text, "text_pair": pair} for text, pair in zip(rows["text"], rows["text_pair"])]
    classifier(inputs[:batch_size], batch_size=batch_size, truncation=True)
    best_s = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        classifier(inputs, batch_size=batch_size, truncation=True)
        best_s = min(best_s, time.perf_counter() - started)
    return {"samples": len(rows), "elapsed_s": best_s, "samples_per_s": len(rows) / best_s}


def run_benchmark(
    data_path: str | Path,
    columns: ColumnMap,
    *,
    train_rows: int = 1000,
    inference_rows: int = 1000,
    base: str | None = None,
    config: TrainConfig | None = None,
    command: str | None = None,
) -> dict:
    """Measure training, inference and merge throughput on one data file in one run.

    Trains one epoch of the baseline loop and of our path on the first `train_rows` train rows, publishes
    our adapter to a temporary registry, merges it, and scores `inference_rows` rows with the
    base, the unmerged adapter and the merged model.
    """
    config = replace(config or TrainConfig(), epochs=1, method="lora")
    increment = load_increment(data_path, columns, validation_fraction=config.validation_fraction)
    rows = increment.train.select(range(min(train_rows, len(increment.train))))
    scored = datasets.concatenate_datasets([increment.train, increment.validation])
    scored = scored.select(range(min(inference_rows, len(scored))))
    spec = resolve_base(base)
    tokenizer = load_tokenizer(spec)
    labels = increment.labels

    logger.info("Benchmarking training on %d rows", len(rows))
    baseline_training(spec, tokenizer, rows.select(range(min(len(rows), 2 * config.batch_size))), labels, config)  # warm-up
    ours, result = our_training(spec, tokenizer, rows, increment.validation, labels, config)
    ungrouped, _ = our_training(spec, tokenizer, rows, increment.validation, labels, replace(config, group_by_length=False))
    frozen = replace(config, freeze_layers=min(3, AutoConfig.from_pretrained(spec.location).num_hidden_layers - 1))
    frozen_cached, _ = our_training(spec, tokenizer, rows, increment.validation, labels, replace(frozen, cache_prefix=True))
    frozen_uncached, _ = our_training(spec, tokenizer, rows, increment.validation, labels, replace(frozen, cache_prefix=False))
    baseline = baseline_training(spec, tokenizer, rows, labels, config)

    with tempfile.TemporaryDirectory(prefix="adapters-bench-") as scratch:
        registry = open_registry(Path(scratch) / "registry", create=True)
        base_model = load_classifier(spec, labels)
        version = publish_result(registry, spec, fingerprint_model(base_model), increment, config, result)
        merge = merge_versions(registry.root, [str(version.id)], Path(scratch) / "merged", base=base)

        logger.info("Benchmarking inference on %d rows", len(scored))
        inference = {
            "base": inference_throughput(LoadedTarget(base_model, tokenizer, labels, "base"), scored, config.eval_batch_size),
            "adapter (unmerged)": inference_throughput(load_version_model(registry, str(version.id), base), scored, config.eval_batch_size),
            "merged": inference_throughput(load_merged_model(merge.out_dir), scored, config.eval_batch_size),
            "merged, transformers pipeline": pipeline_throughput(merge.out_dir, scored, config.eval_batch_size),
        }
    for entry in inference.values():
        entry["ratio_to_base"] = entry["samples_per_s"] / inference["base"]["samples_per_s"]

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command or " ".join(shlex.quote(arg) for arg in sys.argv),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(), **software_versions()},
        "data": {"path": str(data_path), "fingerprint": increment.fingerprint, "train_rows": len(rows), "inference_rows": len(scored)},
        "config": config.to_dict(),
        "labels": labels,
        "training": {"baseline": baseline, "ours": ours, "ours_without_length_grouping": ungrouped,
                     "frozen_uncached": frozen_uncached, "frozen_cached": frozen_cached, "frozen_layers": frozen.freeze_layers,
                     "speedup_samples_per_s": ours["samples_per_s"] / baseline["samples_per_s"]},
        "inference": inference,
        "merge": {"versions": 1, "elapsed_s": merge.elapsed_s, **merge.timings},
    }


def format_report(results: dict) -> str:
    """Render benchmark results as a markdown section with ratios, the machine and the command."""
    training, machine = results["training"], results["machine"]
    lines = [
        f"Measured {results['date']} on {machine['platform']} ({machine['processor']}, {machine['cpu_count']} CPUs, "
        f"{machine['torch_threads']} torch threads; torch {machine['torch']}, transformers {machine['transformers']}, peft {machine['peft']}).",
        f"Command: `{results['command']}`",
        f"Data: `{results['data']['path']}` ({results['data']['fingerprint'][:19]}), {results['data']['train_rows']} training rows, "
        f"{results['data']['inference_rows']} scored rows.",
        "",
        "| training (1 epoch, LoRA r=%d) | samples/s | non-padding tokens/s | ratio to baseline |" % results["config"]["r"],
        "| --- | --- | --- | --- |",
    ]
    variants = (("baseline: padded to max_length, float32", "baseline"), ("ours without length grouping: dynamic padding only", "ours_without_length_grouping"),
                ("ours (default): dynamic padding, length-grouped batches", "ours"),
                (f"ours, --freeze-layers {training.get('frozen_layers')}, no cache", "frozen_uncached"),
                (f"ours, --freeze-layers {training.get('frozen_layers')}, frozen-prefix cache", "frozen_cached"))
    for name, key in variants:
        if key not in training:
            continue
        entry = training[key]
        ratio = entry["samples_per_s"] / training["baseline"]["samples_per_s"]
        lines.append(f"| {name} | {entry['samples_per_s']:.1f} | {entry['tokens_per_s']:.0f} | {ratio:.2f}x |")
    lines += ["", "| inference | samples/s | ratio to base |", "| --- | --- | --- |"]
    for name, entry in results["inference"].items():
        lines.append(f"| {name} | {entry['samples_per_s']:.1f} | {entry['ratio_to_base']:.3f}x |")
    merge = results["merge"]
    lines += ["", f"Merge of {merge['versions']} version into a deployable folder: {merge['elapsed_s']:.2f} s "
              f"(loading the base {merge['load_s']:.2f} s, arithmetic {merge['merge_s']:.3f} s, the rest writing)."]
    return "\n".join(lines) + "\n"


def publish_random_adapters(registry, spec, labels: list[str], count: int, *, rank: int = 8, seed: int = 0) -> list[int]:
    """Publish `count` LoRA adapters with random factors and heads, to time merges without training.

    Each adapter targets query and value with rank `rank`, like a trained default adapter, and
    carries a classifier head and pooler. Their values are random, so only timings are meaningful.
    """
    base = load_classifier(spec, labels)
    fingerprint = fingerprint_model(base)
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=rank, lora_alpha=2 * rank, target_modules=["query", "value"], modules_to_save=["pooler"])
    ids = []
    for index in range(count):
        torch.manual_seed(seed + index)
        model = get_peft_model(copy.deepcopy(base), config)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.02)
        manifest = {"kind": "adapter", "method": "lora", "parent": None, "labels": labels, "data": None, "metrics": {},
                    "base": {"id": spec.model_id, "fingerprint": fingerprint}, "hyperparameters": {"r": rank, "synthetic": True}}
        with tempfile.TemporaryDirectory(prefix="adapters-random-") as folder:
            model.save_pretrained(folder)
            ids.append(registry.publish(folder, manifest).id)
    return ids


def merge_scaling(spec, labels: list[str], counts=(2, 8, 32), forms=("dense", "exact", "svd"), svd_rank: int = 8) -> list[dict]:
    """Time `merge_versions` for each number of adapters and each output form, end to end.

    The time includes reading and verifying the versions, loading the base, the arithmetic and
    writing the output (a model folder, or a published adapter version).
    """
    rows = []
    with tempfile.TemporaryDirectory(prefix="adapters-merge-bench-") as scratch:
        registry = open_registry(Path(scratch) / "registry", create=True)
        registry.ensure_labels(labels)
        ids = publish_random_adapters(registry, spec, labels, max(counts))
        # Warm-up: the first SVD and the first model load pay one-time library start-up costs.
        merge_versions(registry.root, [str(i) for i in ids[:2]], form="svd", rank=svd_rank, dry_run=True, base=spec.location)
        for count in counts:
            refs = [str(i) for i in ids[:count]]
            for form in forms:
                out_dir = Path(scratch) / f"merged-{count}-{form}" if form == "dense" else None
                result = merge_versions(registry.root, refs, out_dir, form=form, rank=svd_rank if form == "svd" else None, base=spec.location)
                rows.append({"adapters": count, "form": form, "elapsed_s": result.elapsed_s, "merge_s": result.timings["merge_s"]})
                logger.info("Merged %d adapters (%s) in %.2f s", count, form, result.elapsed_s)
    return rows


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
