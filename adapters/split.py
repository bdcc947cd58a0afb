"""Cut one data file into N increments ordered by a column, as if the data had arrived over time."""

from __future__ import annotations

import csv
import json
import logging
import os
import tempfile
from pathlib import Path

from adapters.data import read_table
from adapters.errors import AdaptersError

logger = logging.getLogger(__name__)


def split_file(
    path: str | Path,
    out_dir: str | Path,
    *,
    by: str,
    parts: int,
    encoding: str = "utf-8",
    max_rows: int | None = None,
    force: bool = False,
) -> list[Path]:
    """Sort the rows of `path` by column `by` and write them as `parts` nearly equal files.

    The sort is stable and numeric when every value of the column is a number, so for Home Depot,
    `product_uid` order stands for new products arriving. Parts are named `part-1` to `part-N` with
    the input's suffix and encoding. All parts are written to a temporary folder first, so a failure
    leaves `out_dir` untouched.

    Raises:
        AdaptersError: an unknown column, fewer rows than parts, or existing parts without `force`.
    """
    path, out_dir = Path(path), Path(out_dir)
    if parts < 1:
        raise AdaptersError(f"--parts {parts} must be at least 1")
    if max_rows is not None and max_rows < 1:
        raise AdaptersError(f"--max-rows {max_rows} must be at least 1")
    table = read_table(path, encoding)
    if by not in table.column_names:
        raise AdaptersError(f"column {by!r} not found in {str(path)!r}; its columns are {', '.join(table.column_names)}")
    if len(table) < parts:
        raise AdaptersError(f"{str(path)!r} has {len(table)} rows, fewer than --parts {parts}")

    if out_dir.exists() and not out_dir.is_dir():
        raise AdaptersError(f"output path {str(out_dir)!r} is a file; pass a folder for --out")
    suffix = path.suffix.lower()
    targets = [out_dir / f"part-{index + 1}{suffix}" for index in range(parts)]
    existing = [target for target in targets if target.exists()]
    if existing and not force:
        raise AdaptersError(f"{existing[0]} already exists; pass --force to overwrite or choose another --out")

    order = sorted(range(len(table)), key=_sort_key(table[by]))
    bounds = [round(index * len(order) / parts) for index in range(parts + 1)]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AdaptersError(f"cannot create output folder {str(out_dir)!r}: {error.strerror}; pass another --out") from None
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".split-") as staging:
        staged = []
        for index, target in enumerate(targets):
            selected = order[bounds[index] : bounds[index + 1]]
            part = table.select(selected[:max_rows] if max_rows else selected)
            staged_path = Path(staging) / target.name
            _write_like(part, staged_path, suffix, encoding)
            staged.append(staged_path)
        for staged_path, target in zip(staged, targets):
            os.replace(staged_path, target)
    per_part = min(len(order) // parts, max_rows) if max_rows else len(order) // parts
    logger.info("Wrote %d increments of about %d rows to %s", parts, per_part, out_dir)
    return targets


def _sort_key(values: list):
    try:
        numbers = [float(value) for value in values]
    except (TypeError, ValueError):
        text = [str(value) for value in values]
        return lambda index: text[index]
    return lambda index: numbers[index]


def _write_like(part, target: Path, suffix: str, encoding: str) -> None:
    if suffix == ".csv":
        with open(target, "w", encoding=encoding, newline="") as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
            writer.writerow(part.column_names)
            for row in part.iter(batch_size=1000):
                writer.writerows(zip(*(row[name] for name in part.column_names)))
    elif suffix in (".jsonl", ".json"):
        with open(target, "w", encoding="utf-8") as handle:
            for row in part:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        part.to_parquet(str(target))

