"""Training measurements: the plain baseline loop against our path, timed end to end.

The baseline loop is the one peft's documentation shows for sequence classification: every batch
padded to `max_length`, float32, a shuffled DataLoader, the whole encoder run every epoch, and an
evaluation after every epoch. It uses the same optimizer settings as our loop (AdamW with weight
decay, linear warm-up and decay, gradient clipping at 1.0, AdaLoRA budget updates after each
optimizer step), so the two differ only in the speed features. Both keep the best epoch by
validation accuracy; for AdaLoRA only epochs after the final budget allocation count, as in ours.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import random
import subprocess
import time
from pathlib import Path

import datasets
import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

from adapters.base import load_classifier
from adapters.bench_inference import inference_comparison
from adapters.config import TrainConfig
from adapters.evaluation import predict_probabilities
from adapters.fast_dropout import fast_dropout
from adapters.modeling import encode, model_inputs, wrap_for_training
from adapters.precision import autocast, native_bf16, resolve_precision
from adapters.training import train_adapter
from adapters.workflow import LoadedTarget, software_versions

logger = logging.getLogger(__name__)

CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def machine_facts() -> dict:
    """Return the machine and software a measurement runs on: CPU model and flags, core count, threads, versions."""
    import accelerate

    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    return {
        "platform": platform.platform(), "cpu_model": model, "cpu_flags": [flag for flag in CPU_FLAGS if flag in flags],
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "accelerate": accelerate.__version__, "datasets": datasets.__version__, **software_versions(), "commit": code_commit(),
    }


def code_commit() -> str | None:
    """Return the git commit of the checkout this package runs from, marked when tracked files differ from it.

    None when the package is not in a git checkout (an installed wheel) or git is missing.
    """
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, timeout=30)
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True,
                                 timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0 or not (root / "adapters").is_dir():
        return None
    return head.stdout.strip() + (" with uncommitted changes" if changed.stdout.strip() else "")


def layer_flop(lengths: list[int], model_config) -> float:
    """Floating-point operations of one encoder layer's forward pass over rows of these token lengths.

    Counts the four attention projections, the two feed-forward matrices and the two attention
    products on non-padding tokens only (a multiply-add is two operations).
    """
    hidden, inner = model_config.hidden_size, model_config.intermediate_size
    return float(sum(n * (8 * hidden * hidden + 4 * hidden * inner) + 4 * n * n * hidden for n in lengths))


def training_flop(lengths: list[int], model_config, config: TrainConfig, *, cached: bool) -> float:
    """Operations one training run needs on non-padding tokens, by the convention stated below.

    Per epoch, the forward pass runs every layer, or only the layers above a cached prefix. The
    backward pass runs the layers from the lowest adapter layer up and computes input gradients
    only, about one forward's cost per layer, because the frozen weights need no gradient. A cached
    prefix is computed once per run.
    """
    per_layer = layer_flop(lengths, model_config)
    layers, frozen = model_config.num_hidden_layers, config.freeze_layers
    forward_layers = layers - frozen if cached else layers
    per_epoch = (forward_layers + (layers - frozen)) * per_layer
    return config.epochs * per_epoch + (frozen * per_layer if cached else 0.0)


def token_lengths(rows: datasets.Dataset, tokenizer, max_length: int) -> list[int]:
    return list(encode(rows, tokenizer, max_length)["length"])


def matmul_peak(size: int = 2048, repeats: int = 5) -> dict:
    """Measure this machine's float32 matrix-multiply rate with torch's current thread count.

    Where the CPU computes in bfloat16 natively, the bfloat16 rate is measured too (`bf16_gflops`).
    """
    results = {"gflops": _matmul_rate(size, repeats, torch.float32), "size": size, "threads": torch.get_num_threads(), "repeats": repeats}
    if native_bf16("cpu"):
        results["bf16_gflops"] = _matmul_rate(size, repeats, torch.bfloat16)
    return results


def _matmul_rate(size: int, repeats: int, dtype: torch.dtype) -> float:
    generator = torch.Generator().manual_seed(0)
    left, right = (torch.randn(size, size, generator=generator).to(dtype) for _ in range(2))
    out = torch.empty(size, size, dtype=dtype)
    torch.mm(left, right, out=out)
    best_s = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(left, right, out=out)
        best_s = min(best_s, time.perf_counter() - started)
    return 2 * size**3 / best_s / 1e9


def baseline_run(spec, tokenizer, train: datasets.Dataset, validation: datasets.Dataset, labels: list[str], config: TrainConfig) -> dict:
    """Train and evaluate with the plain padded float32 loop; return wall time, throughput and accuracy."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    collator = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=config.max_length)
    train_encoded = encode(train, tokenizer, config.max_length).remove_columns(["length"]).with_format("torch")
    validation_encoded = encode(validation, tokenizer, config.max_length).remove_columns(["length"]).with_format("torch")
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(train_encoded, batch_size=config.batch_size, shuffle=True, generator=generator, collate_fn=collator)
    validation_loader = DataLoader(validation_encoded, batch_size=config.eval_batch_size, collate_fn=collator)
    total_steps = len(loader) * config.epochs
    model = wrap_for_training(load_classifier(spec, labels, seed=config.seed), config, total_steps)
    parameters = [param for param in model.parameters() if param.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    is_adalora = config.method == "adalora"
    keep_after = total_steps - model.peft_config["default"].tfinal if is_adalora else 0

    step = samples = tokens = padded = 0
    train_s, accuracies, best = 0.0, [], None
    for epoch in range(config.epochs):
        model.train()
        epoch_started = time.perf_counter()
        for batch in loader:
            loss = model(**model_inputs(batch)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            if is_adalora:
                model.base_model.update_and_allocate(step)
            optimizer.zero_grad()
            step += 1
            samples += len(batch["labels"])
            tokens += int(batch["attention_mask"].sum())
            padded += batch["input_ids"].numel()
        train_s += time.perf_counter() - epoch_started
        predictions = _predict(model, validation_loader)
        accuracy = sum(int(p == t) for p, t in zip(predictions, validation["label"])) / len(validation)
        accuracies.append(accuracy)
        if step > keep_after and (best is None or accuracy > best[0]):
            best = (accuracy, epoch + 1, predictions)
        logger.info("Baseline %s epoch %d: validation accuracy %.4f", config.method, epoch + 1, accuracy)
    wall_s = time.perf_counter() - started
    return {"wall_s": wall_s, "train_s": train_s, "precision": "fp32", "samples": samples, "samples_per_s": samples / train_s,
            "tokens_per_s": tokens / train_s, "padding_share": 1 - tokens / padded, "accuracy": best[0], "best_epoch": best[1],
            "epoch_accuracies": accuracies, "predictions": best[2]}


@torch.no_grad()
def _predict(model, loader) -> list[int]:
    model.eval()
    predictions = []
    for batch in loader:
        logits = model(**{key: value for key, value in model_inputs(batch).items() if key != "labels"}).logits
        predictions += logits.argmax(-1).tolist()
    return predictions


def our_run(spec, tokenizer, train: datasets.Dataset, validation: datasets.Dataset, labels: list[str], config: TrainConfig):
    """Train with `adapters.training.train_adapter`, the function `adapters train` calls, timed end to end.

    Returns the figures and the TrainResult (its model has the best epoch loaded).
    """
    def build(total_steps):
        return wrap_for_training(load_classifier(spec, labels, seed=config.seed), config, total_steps)

    started = time.perf_counter()
    result = train_adapter(build, tokenizer, train, validation, labels, config)
    wall_s = time.perf_counter() - started
    target = LoadedTarget(result.model, tokenizer, labels, "trained")
    predictions = predict_probabilities(target, validation, batch_size=config.eval_batch_size, max_length=config.max_length,
                                        precision=result.precision).argmax(-1).tolist()
    figures = {"wall_s": wall_s, "train_s": len(train) * config.epochs / result.samples_per_s, "samples": len(train) * config.epochs,
               "samples_per_s": result.samples_per_s, "tokens_per_s": result.tokens_per_s, "accuracy": result.metrics["accuracy"],
               "precision": result.precision, "best_epoch": result.best_epoch, "epoch_accuracies": [entry["accuracy"] for entry in result.history], "predictions": predictions}
    return figures, result


def paired_accuracy_gap(ours: list[int], baseline: list[int], truth: list[int], *, resamples: int = 2000, seed: int = 0) -> dict:
    """Accuracy of `ours` minus the baseline's in points, with a 95% paired bootstrap interval over rows.

    The interval shows how much of a gap the validation sample alone can produce; it does not cover
    the run-to-run spread of training.
    """
    hits_ours = [int(p == t) for p, t in zip(ours, truth)]
    hits_base = [int(p == t) for p, t in zip(baseline, truth)]
    differences = [a - b for a, b in zip(hits_ours, hits_base)]
    count = len(differences)
    generator = random.Random(seed)
    gaps = sorted(100 * sum(differences[generator.randrange(count)] for _ in range(count)) / count for _ in range(resamples))
    return {"gap_points": 100 * sum(differences) / count, "low_points": gaps[int(0.025 * resamples)],
            "high_points": gaps[int(0.975 * resamples) - 1], "rows": count}


def step_times(spec, tokenizer, rows: datasets.Dataset, labels: list[str], config: TrainConfig, *, dropout_steps: int,
               precision_steps: int) -> dict:
    """Time training steps with torch's dropout against FastDropout, and float32 against bfloat16 autocast.

    The dropout kinds are compared in the precision that `config.precision` resolves to on this
    machine, the one training uses, alternating on each batch so that drift in the machine's speed
    reaches both alike. Every batch first runs once untimed in each precision, because kernels are
    built for each new batch shape on first use, which a training run pays only once per shape.
    Batches are unsorted and padded to their longest row, so they are slower per row than the
    training loop.
    """
    steps = max(dropout_steps, precision_steps)
    model = wrap_for_training(load_classifier(spec, labels, seed=config.seed), config, 10 * (steps + 1))
    optimizer = torch.optim.AdamW([param for param in model.parameters() if param.requires_grad], lr=config.learning_rate)
    collator = DataCollatorWithPadding(tokenizer)
    encoded = encode(rows.select(range(min(len(rows), config.batch_size * steps))), tokenizer, config.max_length).remove_columns(["length"])
    batches = [collator([encoded[i] for i in range(start, min(start + config.batch_size, len(encoded)))])
               for start in range(0, len(encoded), config.batch_size)]
    model.train()

    def timed_step(batch, *, fast: bool, precision: str) -> float:
        with fast_dropout(model, enabled=fast):
            started = time.perf_counter()
            with autocast(precision):
                loss = model(**model_inputs(batch)).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            return time.perf_counter() - started

    # The dropout kinds are compared in the precision training resolves to here. The steps with fast
    # dropout in that precision are also the reference for the other precision.
    default = resolve_precision(config.precision)
    other = "fp32" if default == "bf16" else "bf16"
    for batch in batches[:steps]:
        timed_step(batch, fast=False, precision=default)
    for batch in batches[:precision_steps]:
        timed_step(batch, fast=True, precision=other)
    seconds = {"torch_dropout": [], "fast_dropout": [], other: []}
    for batch in batches[:steps]:
        for kind in ("torch_dropout", "fast_dropout"):
            seconds[kind].append(timed_step(batch, fast=kind == "fast_dropout", precision=default))
    for batch in batches[:precision_steps]:
        seconds[other].append(timed_step(batch, fast=True, precision=other))
    mean = {kind: sum(values) / len(values) if values else None for kind, values in seconds.items()}
    per_precision = {default: mean["fast_dropout"], other: mean[other]}
    results = {"batch_size": config.batch_size, "dropout_steps": steps, "precision_steps": precision_steps, "precision": default,
               "warmed_up": True,
               "torch_dropout_step_s": mean["torch_dropout"], "fast_dropout_step_s": mean["fast_dropout"],
               "bf16_step_s": per_precision["bf16"], "fp32_step_s": per_precision["fp32"]}
    if mean["torch_dropout"] and mean["fast_dropout"]:
        results["fast_dropout_speedup"] = mean["torch_dropout"] / mean["fast_dropout"]
    if per_precision["bf16"] and per_precision["fp32"]:
        results["bf16_to_fp32_time"] = per_precision["bf16"] / per_precision["fp32"]
    return results


def thread_scan(spec, tokenizer, rows: datasets.Dataset, validation: datasets.Dataset, labels: list[str], config: TrainConfig,
                counts: list[int]) -> list[dict]:
    """Measure one epoch of our training path and base-model inference at each torch thread count."""
    original = torch.get_num_threads()
    rows_out = []
    try:
        for count in counts:
            torch.set_num_threads(count)
            figures, _ = our_run(spec, tokenizer, rows, validation, labels, config)
            base = LoadedTarget(load_classifier(spec, labels), tokenizer, labels, "base")
            inference = inference_comparison({"base": base}, rows, config.eval_batch_size, repeats=2)
            rows_out.append({"threads": count, "training_samples_per_s": figures["samples_per_s"],
                             "inference_samples_per_s": inference["base"]["samples_per_s"]})
            logger.info("%d thread%s: training %.1f, inference %.1f samples/s", count, "" if count == 1 else "s", figures["samples_per_s"],
                        inference["base"]["samples_per_s"])
    finally:
        torch.set_num_threads(original)
    return rows_out


def mean_and_standard_error(values: list[float]) -> tuple[float, float]:
    """Return the mean of `values` and its standard error (sample deviation over the square root of the count).

    One value has a standard error of 0. Raises ValueError for no values.
    """
    if not values:
        raise ValueError("no values to average")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    deviation = math.sqrt(sum((value - mean) ** 2 for value in values) / (len(values) - 1))
    return mean, deviation / math.sqrt(len(values))


def linear_fit(xs: list[float], ys: list[float]) -> dict:
    """Least-squares line through (xs, ys) with its coefficient of determination."""
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread
    intercept = mean_y - slope * mean_x
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    total = sum((y - mean_y) ** 2 for y in ys)
    return {"slope": slope, "intercept": intercept, "r2": 1 - residual / total if total else 1.0}
