"""Inference, batch-scoring and merge measurements.

Every comparison interleaves its contestants (A, B, A, B, ...) over several passes and reports the
median with the range, so a slow moment of a shared machine hits both sides alike.
"""

from __future__ import annotations

import copy
import csv
import logging
import statistics
import tempfile
import time
from pathlib import Path

import datasets
import torch
from peft import LoraConfig, TaskType, get_peft_model

from adapters.base import fingerprint_model, load_classifier
from adapters.data import ColumnMap
from adapters.deploy import merge_versions
from adapters.evaluation import predict_probabilities
from adapters.scoring import read_pairs, score_file
from adapters.workflow import LoadedTarget, load_merged_model, open_registry

logger = logging.getLogger(__name__)


def _summary(rows: int, seconds: list[float]) -> dict:
    rates = [rows / s for s in seconds]
    return {"samples": rows, "passes": len(seconds), "samples_per_s": rows / statistics.median(seconds),
            "min_samples_per_s": min(rates), "max_samples_per_s": max(rates)}


def _ratios(seconds: dict[str, list[float]], reference: str) -> dict:
    """Per-pass speed ratios to `reference` (its time over the other's time): median, min and max."""
    out = {}
    for name, times in seconds.items():
        ratios = [ref / mine for ref, mine in zip(seconds[reference], times)]
        out[name] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    return out


def inference_comparison(targets: dict[str, LoadedTarget], rows: datasets.Dataset, batch_size: int, repeats: int = 5) -> dict:
    """Score `rows` with every target, interleaved over `repeats` passes after a warm-up pass each.

    Returns per target the median samples/s with its range, and the per-pass ratio to the first target.
    """
    for target in targets.values():
        predict_probabilities(target, rows.select(range(min(len(rows), batch_size))), batch_size=batch_size)
    seconds = {name: [] for name in targets}
    for _ in range(repeats):
        for name, target in targets.items():
            started = time.perf_counter()
            predict_probabilities(target, rows, batch_size=batch_size)
            seconds[name].append(time.perf_counter() - started)
    reference = next(iter(targets))
    ratios = _ratios(seconds, reference)
    return {name: {**_summary(len(rows), seconds[name]), f"ratio_to_{reference}": ratios[name]} for name in targets}


def scoring_comparison(folder: Path, data_path: Path, columns: ColumnMap, batch_size: int, repeats: int = 3) -> tuple[dict, dict]:
    """Score one file end to end with `score_file` and with `transformers.pipeline`, interleaved.

    Ours reads the file, scores in its default precision and writes a CSV. The pipeline side reads
    the same file with the same reader and scores it with `pipeline("text-classification",
    top_k=None)` at the same batch size, in float32. Returns the timings and, from the warm-up pass,
    how far our probabilities are from the pipeline's.
    """
    from transformers import pipeline

    target = load_merged_model(folder)
    classifier = pipeline("text-classification", model=str(folder), tokenizer=str(folder), device="cpu", top_k=None)
    summaries = {}

    def ours(out: Path):
        summaries["ours"] = score_file(target, data_path, columns, out, batch_size=batch_size)

    def theirs(_out: Path):
        _, pairs = read_pairs(data_path, columns)
        inputs = [{"text": text, "text_pair": pair} for text, pair in zip(pairs["text"], pairs["text_pair"])]
        return classifier(inputs, batch_size=batch_size, truncation=True)

    _, pairs = read_pairs(data_path, columns)
    seconds = {"adapters score": [], "transformers pipeline": []}
    with tempfile.TemporaryDirectory(prefix="adapters-score-bench-") as scratch:
        ours(Path(scratch) / "warm-up.csv")
        agreement = _agreement(Path(scratch) / "warm-up.csv", theirs(Path(scratch) / "warm-up-pipeline.csv"), target.labels)
        runners = {"adapters score": ours, "transformers pipeline": theirs}
        for index in range(repeats):
            for name, run in runners.items():
                started = time.perf_counter()
                run(Path(scratch) / f"scores-{index}.csv")
                seconds[name].append(time.perf_counter() - started)
    ratios = _ratios(seconds, "transformers pipeline")
    results = {name: {**_summary(len(pairs), seconds[name]), "ratio_to_pipeline": ratios[name]} for name in seconds}
    results["adapters score"]["precision"] = summaries["ours"]["precision"]
    results["transformers pipeline"]["precision"] = "fp32"
    return results, agreement


def _agreement(ours_csv: Path, theirs: list[list[dict]], labels: list[str]) -> dict:
    """Largest probability difference and share of rows with the same top label, ours against the pipeline's."""
    with open(ours_csv, newline="", encoding="utf-8") as stream:
        mine = torch.tensor([[float(row[f"p_{label}"]) for label in labels] for row in csv.DictReader(stream)])
    reference = torch.tensor([[{item["label"]: item["score"] for item in row}[label] for label in labels] for row in theirs])
    same_top = (mine.argmax(-1) == reference.argmax(-1)).float().mean().item()
    return {"max_probability_difference": (mine - reference).abs().max().item(), "same_top_label": same_top, "rows": len(theirs)}


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
