"""Read data increments: map columns, validate, clean, split and fingerprint.

An increment is one CSV, JSON Lines or Parquet file read with `datasets`. Columns are mapped to
`text` (query or user context), an optional `text_pair` (product text) and `label`. Rows with a
missing text or label are dropped, then exact duplicates; both counts are kept with the increment.
Every row is assigned to the train or validation part by a hash of its group (the query, by
default), so the same row lands on the same side on every run and no query straddles both parts.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from adapters.errors import AdaptersError

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


@dataclass(frozen=True)
class ColumnMap:
    """The mapping from the columns of an increment file to model inputs, with the label binning."""

    text: str = "text"
    text_pair: str | None = None
    label: str = "label"
    encoding: str = "utf-8"
    labels: tuple[str, ...] | None = None
    to_label: Callable[[str], str] | None = None
    gain: Callable[[str, str], float] | None = None


def _homedepot_label(relevance: str) -> str:
    value = _parse_relevance(relevance)
    if value < 2.0:
        return "irrelevant"
    return "partial" if value < 2.5 else "relevant"


def _homedepot_gain(relevance: str, label: str) -> float:
    return _parse_relevance(relevance) - 1.0


def _parse_relevance(relevance: str) -> float:
    try:
        value = float(relevance)
    except ValueError:
        raise AdaptersError(f"relevance {relevance!r} is not a number; the homedepot preset expects 1.0 to 3.0") from None
    if not 1.0 <= value <= 3.0:
        raise AdaptersError(f"relevance {relevance!r} is outside [1, 3]; the homedepot preset expects 1.0 to 3.0")
    return value


PRESETS: dict[str, ColumnMap] = {
    # Kaggle "Home Depot Product Search Relevance": mean rater score in [1, 3], binned at 2.0 and 2.5.
    "homedepot": ColumnMap(
        text="search_term",
        text_pair="product_title",
        label="relevance",
        encoding="iso-8859-1",
        labels=("irrelevant", "partial", "relevant"),
        to_label=_homedepot_label,
        gain=_homedepot_gain,
    ),
}


def column_map(
    preset: str | None = None,
    *,
    text: str | None = None,
    text_pair: str | None = None,
    label: str | None = None,
    encoding: str | None = None,
) -> ColumnMap:
    """Build a ColumnMap from a preset name and explicit column options, which override the preset."""
    if preset is not None and preset not in PRESETS:
        raise AdaptersError(f"unknown preset {preset!r}; choose one of: {', '.join(sorted(PRESETS))}")
    columns = PRESETS[preset] if preset else ColumnMap()
    overrides = {"text": text, "text_pair": text_pair, "label": label, "encoding": encoding}
    return replace(columns, **{key: value for key, value in overrides.items() if value is not None})


@dataclass
class Increment:
    """A cleaned, split and fingerprinted data increment.

    `train` and `validation` are `datasets.Dataset`s with columns text, text_pair (None where the
    mapping has no pair), label (index into `labels`), gain (graded relevance for nDCG) and group.
    """

    path: Path
    labels: list[str]
    train: datasets.Dataset
    validation: datasets.Dataset
    fingerprint: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def has_pairs(self) -> bool:
        return any(pair is not None for pair in self.train["text_pair"][:1])


def read_table(path: str | Path, encoding: str = "utf-8") -> datasets.Dataset:
    """Read a CSV, JSON Lines or Parquet file with every CSV column kept as a string.

    Raises:
        AdaptersError: the file is missing, has an unknown suffix, or cannot be decoded or parsed.
    """
    import datasets

    path = Path(path)
    builder = FORMATS.get(path.suffix.lower())
    if builder is None:
        raise AdaptersError(f"data file {str(path)!r} has suffix {path.suffix!r}; use one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise AdaptersError(f"data file {str(path)!r} not found; check the path")

    datasets.disable_progress_bars()
    # datasets logs its own ERROR line for a file it cannot parse; the AdaptersError below replaces it.
    datasets_logger = logging.getLogger("datasets")
    level = datasets_logger.level
    datasets_logger.setLevel(logging.CRITICAL)
    try:
        options = _csv_options(path, encoding) if builder == "csv" else {}
        return datasets.load_dataset(builder, data_files=str(path), split="train", **options)
    except StopIteration:
        raise AdaptersError(f"data file {str(path)!r} is empty; expected one JSON object per line") from None
    except UnicodeDecodeError:
        raise AdaptersError(f"data file {str(path)!r} is not valid {encoding}; pass the right --encoding") from None
    except (datasets.exceptions.DatasetGenerationError, ValueError, OSError) as error:
        cause = error.__cause__ or error
        if isinstance(cause, UnicodeDecodeError):
            raise AdaptersError(f"data file {str(path)!r} is not valid {encoding}; pass the right --encoding") from None
        if isinstance(cause, StopIteration):
            raise AdaptersError(f"data file {str(path)!r} is empty; expected one JSON object per line") from None
        message = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        if "corresponds to no data" in message:
            raise AdaptersError(f"data file {str(path)!r} has a header but no rows; add rows") from None
        raise AdaptersError(f"cannot read data file {str(path)!r}: {message}") from None
    finally:
        datasets_logger.setLevel(level)


def _csv_options(path: Path, encoding: str) -> dict:
    """Read every CSV column as a string, so that a query such as "2x4" or "100" keeps its text."""
    import datasets

    with open(path, encoding=encoding, newline="") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise AdaptersError(f"data file {str(path)!r} is empty; expected a header line and rows")
    features = datasets.Features({name: datasets.Value("string") for name in header})
    return {"encoding": encoding, "features": features, "keep_default_na": False, "na_values": [""]}


def load_increment(
    path: str | Path,
    columns: ColumnMap,
    *,
    known_labels: list[str] | None = None,
    validation_fraction: float = 0.15,
) -> Increment:
    """Read, clean, split and fingerprint one increment file.

    Args:
        known_labels: the registry's fixed label set; a label outside it is an error. Without it the
            preset's labels are used, or else the sorted distinct labels of this file.
        validation_fraction: share of groups (queries) that go to the validation part.

    Raises:
        AdaptersError: a missing column, an unknown label, or no rows left after cleaning.
    """
    import datasets

    if not 0.0 < validation_fraction < 1.0:
        raise AdaptersError(f"validation fraction {validation_fraction} must be between 0 and 1, exclusive")
    path = Path(path)
    table = read_table(path, columns.encoding)
    _check_columns(table, columns, path)

    try:
        rows, counts = _clean_rows(table, columns)
    except AdaptersError as error:
        raise AdaptersError(f"data file {str(path)!r}: {error}") from None
    if not rows:
        raise AdaptersError(
            f"data file {str(path)!r} has no usable rows after cleaning ({counts['dropped_missing']} missing a text "
            f"or label, {counts['dropped_duplicates']} duplicates); check the column options"
        )
    labels = _resolve_labels(rows, columns, known_labels, path)
    label_index = {label: index for index, label in enumerate(labels)}

    records = {"text": [], "text_pair": [], "label": [], "gain": [], "group": []}
    is_validation = []
    for text, pair, label, gain in rows:
        records["text"].append(text)
        records["text_pair"].append(pair)
        records["label"].append(label_index[label])
        records["gain"].append(float(label_index[label]) if gain is None else gain)
        records["group"].append(text)
        is_validation.append(_bucket(text) < validation_fraction)

    full = datasets.Dataset.from_dict(records)
    train = full.select([i for i, flag in enumerate(is_validation) if not flag])
    validation = full.select([i for i, flag in enumerate(is_validation) if flag])
    if len(train) == 0 or len(validation) == 0:
        raise AdaptersError(
            f"data file {str(path)!r} has {len(full)} usable rows in {len(set(records['group']))} query groups, "
            "too few to split into train and validation parts; add rows"
        )
    counts.update(train=len(train), validation=len(validation))
    increment = Increment(path, labels, train, validation, _fingerprint(rows, labels), counts)
    logger.info(
        "Read %s: %d rows, dropped %d with a missing field and %d duplicates; %d train, %d validation",
        path, counts["read"], counts["dropped_missing"], counts["dropped_duplicates"], len(train), len(validation),
    )
    return increment


def _check_columns(table: datasets.Dataset, columns: ColumnMap, path: Path) -> None:
    wanted = [columns.text, columns.label] + ([columns.text_pair] if columns.text_pair else [])
    missing = [name for name in wanted if name not in table.column_names]
    if missing:
        raise AdaptersError(
            f"data file {str(path)!r} has no column {', '.join(map(repr, missing))}; its columns are "
            f"{', '.join(table.column_names)}; pass --text-column, --text-pair-column or --label-column"
        )


def _clean_rows(table: datasets.Dataset, columns: ColumnMap) -> tuple[list[tuple], dict[str, int]]:
    """Drop rows with a missing field, then exact duplicates, keeping the first occurrence."""
    texts = table[columns.text]
    pairs = table[columns.text_pair] if columns.text_pair else [None] * len(table)
    raw_labels = table[columns.label]

    rows, seen = [], set()
    dropped_missing = dropped_duplicates = 0
    for text, pair, raw in zip(texts, pairs, raw_labels):
        text, pair, raw = _clean_text(text), _clean_text(pair), _clean_text(raw)
        if text is None or raw is None or (columns.text_pair and pair is None):
            dropped_missing += 1
            continue
        label = columns.to_label(raw) if columns.to_label else raw
        gain = columns.gain(raw, label) if columns.gain else None
        key = (text, pair, label, gain)
        if key in seen:
            dropped_duplicates += 1
            continue
        seen.add(key)
        rows.append(key)
    counts = {"read": len(table), "dropped_missing": dropped_missing, "dropped_duplicates": dropped_duplicates, "kept": len(rows)}
    return rows, counts


def _clean_text(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _resolve_labels(rows: list[tuple], columns: ColumnMap, known: list[str] | None, path: Path) -> list[str]:
    labels = list(known) if known else list(columns.labels or sorted({row[2] for row in rows}))
    unknown = sorted({row[2] for row in rows} - set(labels))
    if unknown:
        raise AdaptersError(
            f"data file {str(path)!r} has label {unknown[0]!r} outside the known labels {labels}; "
            "the label set is fixed when a registry is created, so use a new registry for new labels"
        )
    return labels


def _bucket(group: str) -> float:
    """Map a group key to [0, 1) with a stable hash, independent of the other rows."""
    digest = hashlib.sha256(group.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _fingerprint(rows: list[tuple], labels: list[str]) -> str:
    """Hash the cleaned rows in a row-order-independent way, plus the label set."""
    digest = hashlib.sha256(repr(labels).encode())
    for row_hash in sorted(hashlib.sha256(repr(row).encode()).digest() for row in rows):
        digest.update(row_hash)
    return "sha256:" + digest.hexdigest()
