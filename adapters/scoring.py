"""Batch scoring: relevance scores for every row of a file, written in input order.

Rows are sorted by token length and each batch is padded to its own longest pair, so almost no
compute goes to padding. The scores are put back in the input order before they are written.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import datasets
import torch

from adapters.config import INFERENCE_BATCH_SIZE
from adapters.data import ColumnMap, read_table
from adapters.errors import AdaptersError
from adapters.evaluation import predict_probabilities
from adapters.precision import resolve_precision
from adapters.workflow import LoadedTarget

logger = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".csv", ".jsonl")


def read_pairs(path: str | Path, columns: ColumnMap) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Read a file for scoring: every row is kept, and a missing text or product text scores as empty.

    Returns the raw table (all columns, for the output) and the model input with text and text_pair.
    """
    table = read_table(path, columns.encoding)
    wanted = [columns.text] + ([columns.text_pair] if columns.text_pair else [])
    missing = [name for name in wanted if name not in table.column_names]
    if missing:
        raise AdaptersError(
            f"data file {str(path)!r} has no column {', '.join(map(repr, missing))}; its columns are "
            f"{', '.join(table.column_names)}; pass --text-column or --text-pair-column"
        )
    texts = ["" if value is None else str(value) for value in table[columns.text]]
    pairs = [None] * len(table)
    if columns.text_pair:
        pairs = ["" if value is None else str(value) for value in table[columns.text_pair]]
    return table, datasets.Dataset.from_dict({"text": texts, "text_pair": pairs, "label": [0] * len(texts)})


def score_file(target: LoadedTarget, data_path: str | Path, columns: ColumnMap, out_path: str | Path, *, batch_size: int = INFERENCE_BATCH_SIZE, max_length: int = 128,
               precision: str = "auto") -> dict:
    """Score every row of `data_path` with `target` and write the input columns plus the scores.

    Added columns: `score` (the expected label index, from 0 to the number of labels minus 1, used
    to rank), `label` (the most likely label) and `p_<label>` per label. The output is CSV or JSON
    Lines by the suffix of `out_path`, written to a temporary file and renamed into place.
    `precision` "auto" scores under bfloat16 autocast where the CPU has it natively, else in float32.
    """
    out_path = Path(out_path)
    if out_path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise AdaptersError(f"--out {str(out_path)!r} must end in {' or '.join(OUTPUT_SUFFIXES)}")
    if out_path.exists() and out_path.is_dir():
        raise AdaptersError(f"--out {str(out_path)!r} is a folder; pass a file path")
    table, pairs = read_pairs(data_path, columns)
    if len(pairs) == 0:
        raise AdaptersError(f"data file {str(data_path)!r} has no rows to score")

    precision = resolve_precision(precision)
    started = time.perf_counter()
    probabilities = predict_probabilities(target, pairs, batch_size=batch_size, max_length=max_length, precision=precision)
    elapsed_s = time.perf_counter() - started
    scores = (probabilities * torch.arange(len(target.labels), dtype=torch.float32)).sum(-1)
    predicted = probabilities.argmax(-1).tolist()

    added = {"score": scores.tolist(), "label": [target.labels[i] for i in predicted]}
    for index, label in enumerate(target.labels):
        added[f"p_{label}"] = probabilities[:, index].tolist()
    _write(table, added, out_path)
    logger.info("Scored %d rows in %.2f s (%.1f rows/s, %s) into %s", len(pairs), elapsed_s, len(pairs) / elapsed_s, precision, out_path)
    return {"rows": len(pairs), "elapsed_s": elapsed_s, "rows_per_s": len(pairs) / elapsed_s, "precision": precision, "out": str(out_path)}


def _write(table: datasets.Dataset, added: dict[str, list], out_path: Path) -> None:
    names = [name for name in table.column_names if name not in added] + list(added)
    columns = {name: table[name] for name in table.column_names if name not in added} | added
    out_path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{out_path.name}-", dir=out_path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            if out_path.suffix.lower() == ".csv":
                writer = csv.writer(stream, lineterminator="\n")
                writer.writerow(names)
                writer.writerows(zip(*(columns[name] for name in names)))
            else:
                for row in zip(*(columns[name] for name in names)):
                    stream.write(json.dumps(dict(zip(names, row)), ensure_ascii=False) + "\n")
        os.replace(temporary, out_path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
