"""Score increments with a version, an alias or a merged folder, and build the quality matrix."""

from __future__ import annotations

import logging
from pathlib import Path

import datasets
import torch

from adapters.config import EVALUATION_SPLITS, INFERENCE_BATCH_SIZE
from adapters.data import ColumnMap, load_increment
from adapters.errors import AdaptersError
from adapters.evaluation_metrics import (
    classification_metrics,
    majority_baseline_accuracy,
    ndcg_at_k,
)
from adapters.modeling import TokenRows, encode
from adapters.precision import autocast, resolve_precision
from adapters.workflow import LoadedTarget

logger = logging.getLogger(__name__)

SPLITS = EVALUATION_SPLITS


@torch.no_grad()
def predict_probabilities(
    target: LoadedTarget, dataset: datasets.Dataset, *, batch_size: int = INFERENCE_BATCH_SIZE, max_length: int = 128,
    precision: str = "fp32",
) -> torch.Tensor:
    """Return class probabilities (rows x labels, float32) in the order of `dataset`.

    Rows are sorted by token length and padded per batch, so little compute goes to padding.
    `precision` "bf16" runs the model under bfloat16 autocast ("auto" where the CPU has it natively).
    """
    precision = resolve_precision(precision)
    # A pair longer than the model's position table cannot be scored, so the limit is capped there.
    max_length = min(max_length, getattr(target.model.config, "max_position_embeddings", max_length))
    rows = TokenRows(encode(dataset, target.tokenizer, max_length), target.tokenizer.pad_token_id or 0)
    order = sorted(range(len(rows)), key=lambda index: len(rows.input_ids[index]))
    probabilities = torch.empty(len(rows), len(target.labels))
    target.model.eval()
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        batch = rows.collate(indices)
        batch.pop("labels", None)
        with autocast(precision):
            logits = target.model(**batch).logits.float()
        probabilities[indices] = torch.softmax(logits, dim=-1)
    return probabilities


def evaluate_on_increment(
    target: LoadedTarget, data_path: str | Path, columns: ColumnMap, *, split: str = "validation",
    validation_fraction: float = 0.15, batch_size: int = INFERENCE_BATCH_SIZE,
) -> dict:
    """Compute accuracy, macro precision/recall/F1, per-class figures and nDCG@10 on one increment.

    The ranking score of a row is its expected label index under the predicted distribution, so
    nDCG@10 ranks each query's products by predicted relevance against the graded truth.
    """
    if split not in SPLITS:
        raise AdaptersError(f"--split {split!r} is not one of {', '.join(SPLITS)}")
    increment = load_increment(data_path, columns, known_labels=target.labels, validation_fraction=validation_fraction)
    if split == "all":
        rows = datasets.concatenate_datasets([increment.train, increment.validation])
    else:
        rows = increment.train if split == "train" else increment.validation
    probabilities = predict_probabilities(target, rows, batch_size=batch_size)
    predictions = probabilities.argmax(-1).tolist()
    metrics = classification_metrics(rows["label"], predictions, target.labels)

    scores = (probabilities * torch.arange(len(target.labels), dtype=torch.float32)).sum(-1).tolist()
    metrics["ndcg@10"] = ndcg_at_k(rows["group"], rows["gain"], scores, k=10)
    metrics["majority_baseline_accuracy"] = majority_baseline_accuracy(increment.train["label"], rows["label"])
    metrics["split"] = split
    return metrics


def quality_matrix(targets: dict[str, LoadedTarget], data_paths: list[str | Path], columns: ColumnMap, **options) -> dict:
    """Evaluate every target on every increment: {target: {increment path: metrics}}."""
    matrix = {}
    for name, target in targets.items():
        matrix[name] = {}
        for path in data_paths:
            matrix[name][str(path)] = evaluate_on_increment(target, path, columns, **options)
            logger.info("%s on %s: accuracy %.4f", name, path, matrix[name][str(path)]["accuracy"])
    return matrix


def format_matrix(matrix: dict, metric: str = "accuracy") -> str:
    """Render a targets-by-increments table of one metric as markdown, with the majority baseline row."""
    paths = list(next(iter(matrix.values())).keys()) if matrix else []
    names = [Path(path).name for path in paths]
    lines = [f"| {metric} | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for target, results in matrix.items():
        lines.append(f"| {target} | " + " | ".join(f"{results[p][metric]:.4f}" for p in paths) + " |")
    if metric == "accuracy" and matrix:
        first = next(iter(matrix.values()))
        lines.append("| majority class | " + " | ".join(f"{first[p]['majority_baseline_accuracy']:.4f}" for p in paths) + " |")
    return "\n".join(lines)
