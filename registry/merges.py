"""Merge records: what the adapters package stores in root/merges.jsonl after a merge.

The registry treats a record as an opaque JSON object and adds only "merge_id", a number
that starts at 1 and grows by one per record, and "time", the UTC time of recording.
"""

from __future__ import annotations

import json

from .aliases import utc_now_iso
from .errors import RegistryError

MERGE_RESERVED_KEYS = ("merge_id", "time")


def check_merge_record(record: object) -> None:
    """Raise RegistryError unless `record` is a JSON-encodable dict without registry-owned keys.

    The message lists every problem of the record.
    """
    if not isinstance(record, dict):
        raise RegistryError(f"Cannot record merge: the record must be a dict, got {type(record).__name__}.")
    problems = []
    reserved = [key for key in MERGE_RESERVED_KEYS if key in record]
    if reserved:
        problems.append(f"the record sets {reserved}, which the registry writes itself; remove them")
    try:
        json.dumps(record)
    except (TypeError, ValueError) as error:
        problems.append(f"the record cannot be encoded as JSON ({error})")
    if problems:
        raise RegistryError(f"Cannot record merge: {'; '.join(problems)}.")


def build_merge_record(record: dict, merge_id: int) -> dict:
    """Return a JSON copy of `record` with "merge_id" and "time" added; `record` is not modified."""
    stored = json.loads(json.dumps(record))
    stored["merge_id"] = merge_id
    stored["time"] = utc_now_iso()
    return stored
