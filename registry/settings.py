"""The registry-wide settings in root/registry.json: the format version and the label set."""

from __future__ import annotations

from pathlib import Path

from .errors import RegistryError
from .fsutil import read_json_object
from .manifest import FORMAT_VERSION


def read_settings(path: Path) -> dict:
    """Read and validate registry.json at `path`.

    Returns {"format_version": int, "labels": list of str or None}, plus any other keys
    the file contains.

    Raises:
        RegistryError: the file is unreadable, a key has the wrong type, or its
            format_version is newer than this toolkit reads.
    """
    settings = read_json_object(path, "Registry settings")
    format_version = settings.get("format_version")
    if not isinstance(format_version, int) or isinstance(format_version, bool) or format_version < 1:
        raise RegistryError(
            f"Registry settings {path} are invalid: 'format_version' must be an int of 1 or "
            f"more, got {format_version!r}; restore the file from a backup."
        )
    if format_version > FORMAT_VERSION:
        raise RegistryError(
            f"Registry {path.parent} has format_version {format_version}, but this toolkit reads "
            f"format_version {FORMAT_VERSION} or older; upgrade the toolkit to use it."
        )
    labels = settings.get("labels")
    if labels is not None and (
        not isinstance(labels, list) or not all(isinstance(label, str) for label in labels)
    ):
        raise RegistryError(
            f"Registry settings {path} are invalid: 'labels' must be null or a list of "
            f"strings, got {labels!r}; restore the file from a backup."
        )
    settings.setdefault("labels", None)
    return settings


def check_labels(labels: object) -> None:
    """Raise RegistryError unless `labels` is a non-empty list of distinct, non-empty strings.

    The message lists every problem of the label set.
    """
    if not isinstance(labels, (list, tuple)):
        raise RegistryError(
            f"Invalid label set {labels!r}: pass a list of label names such as ['negative', 'positive']."
        )
    problems = []
    if not labels:
        problems.append("the list is empty")
    problems += [
        f"{label!r} is not a non-empty string" for label in labels if not isinstance(label, str) or not label
    ]
    duplicates = sorted({label for label in labels if isinstance(label, str) and labels.count(label) > 1})
    if duplicates:
        problems.append(f"duplicate labels {duplicates}")
    if problems:
        raise RegistryError(f"Invalid label set {list(labels)!r}: {'; '.join(problems)}.")
