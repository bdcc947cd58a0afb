"""Alias moves and the per-alias target stacks derived from them.

The alias history (root/aliases.jsonl) is the single source of truth. Replaying it
gives each alias a stack of targets:

- a promote pushes its target, unless the target is already on top (a promote to the
  current target is recorded in the history but adds no stack entry);
- a rollback pops targets until its target is on top.

The alias points to the top of its stack. This module only computes; the store reads and
appends the history under the registry lock.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from .errors import AliasNotFoundError, RegistryError
from .names import is_alias_name

logger = logging.getLogger(__name__)

ACTIONS = ("promote", "rollback")

# Malformed history records already logged by this process, so each is warned about once.
_warned_records: set[str] = set()


def utc_now_iso() -> str:
    """Return the current UTC time as an ISO-8601 string with microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def valid_moves(records: list[dict]) -> list[dict]:
    """Return the well-formed alias moves among `records`, in order, and log the skipped rest."""
    moves = []
    for record in records:
        if _is_valid_move(record):
            moves.append(record)
            continue
        text = json.dumps(record, sort_keys=True)
        if text not in _warned_records:
            _warned_records.add(text)
            logger.warning("Skipped malformed alias history record %s", text)
    return moves


def replay_stacks(moves: list[dict]) -> dict[str, list[int]]:
    """Replay alias moves, oldest first, into {alias: stack of version ids, current target last}."""
    stacks: dict[str, list[int]] = {}
    for move in moves:
        stack = stacks.setdefault(move["alias"], [])
        target = move["to"]
        if move["action"] == "promote":
            if not stack or stack[-1] != target:
                stack.append(target)
            continue
        while len(stack) > 1 and stack[-1] != target:
            stack.pop()
        if stack[-1:] != [target]:
            # Only a hand-edited history gets here: its rollback target was never on the stack.
            stack[:] = [target]
    return stacks


def rollback_target(stacks: dict[str, list[int]], alias: str, to: int | None) -> int:
    """Return the version id that rolling back `alias` moves it to.

    Without `to`, the target is the one below the top of the stack. With `to`, it must be
    an earlier target that is still on the stack.

    Raises:
        AliasNotFoundError: `alias` has no history.
        RegistryError: the alias has no earlier target, or `to` is its current target or
            not on its stack. The message lists the targets it can roll back to.
    """
    stack = stacks.get(alias)
    if not stack:
        raise alias_not_found(alias, stacks)
    if len(stack) < 2:
        raise RegistryError(
            f"Cannot roll back alias {alias!r}: it has no earlier target to return to "
            f"(it points to version {stack[-1]}, its only target); promote it to another version instead."
        )
    if to is None:
        return stack[-2]
    if to == stack[-1]:
        raise RegistryError(
            f"Cannot roll back alias {alias!r} to version {to}: it already points to that version."
        )
    earlier = _distinct_newest_first(stack[:-1])
    if to not in earlier:
        raise RegistryError(
            f"Cannot roll back alias {alias!r} to version {to}: version {to} is not an earlier "
            f"target still on its stack; it can roll back to {', '.join(map(str, earlier))}."
        )
    return to


def make_move(alias: str, action: str, from_id: int | None, to_id: int, reason: str | None) -> dict:
    """Return a new alias move record stamped with the current UTC time."""
    return {
        "alias": alias,
        "action": action,
        "from": from_id,
        "to": to_id,
        "time": utc_now_iso(),
        "reason": reason,
    }


def alias_not_found(alias: str, stacks: dict[str, list[int]]) -> AliasNotFoundError:
    """Build the error for an alias that has no history, listing the existing aliases."""
    if stacks:
        choices = "existing aliases: " + ", ".join(sorted(stacks))
    else:
        choices = "the registry has no aliases yet; create one with promote"
    return AliasNotFoundError(f"Alias {alias!r} not found; {choices}.")


def _distinct_newest_first(ids: list[int]) -> list[int]:
    seen, ordered = set(), []
    for version_id in reversed(ids):
        if version_id not in seen:
            seen.add(version_id)
            ordered.append(version_id)
    return ordered


def _is_valid_move(record: dict) -> bool:
    alias, from_id, to_id = record.get("alias"), record.get("from"), record.get("to")
    return (
        is_alias_name(alias)
        and record.get("action") in ACTIONS
        and _is_positive_int(to_id)
        and (from_id is None or _is_positive_int(from_id))
    )


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
