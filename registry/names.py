"""Syntax rules for alias names, version references and move reasons.

An alias name starts with an ASCII letter, so it can never be mistaken for a version id,
and contains only letters, digits, ".", "_" and "-", so it can never contain a path
separator or start with "..". A version id is written as 1 to 9 ASCII decimal digits, so
it can never contain a path separator either and always fits its folder name.
"""

from __future__ import annotations

import re

from .errors import InvalidNameError, RegistryError

ALIAS_PATTERN = r"^[A-Za-z][A-Za-z0-9._-]{0,63}$"
VERSION_ID_PATTERN = r"^[0-9]{1,9}$"
MAX_VERSION_ID = 999_999_999
MAX_REASON_CHARS = 500

_ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")
_VERSION_ID_RE = re.compile(r"[0-9]{1,9}")
_DIGITS_RE = re.compile(r"[0-9]+")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def is_alias_name(value: object) -> bool:
    """Return whether `value` is a string that matches `ALIAS_PATTERN`."""
    return isinstance(value, str) and _ALIAS_RE.fullmatch(value) is not None


def check_alias_name(alias: object) -> str:
    """Return `alias` unchanged if it is a valid alias name.

    Raises:
        InvalidNameError: `alias` is not a string or does not match `ALIAS_PATTERN`.
    """
    if not is_alias_name(alias):
        raise InvalidNameError(
            f"Invalid alias name {alias!r}: an alias name must match {ALIAS_PATTERN} "
            "(a letter, then up to 63 letters, digits, '.', '_' or '-')."
        )
    return alias


def parse_ref(ref: object) -> int | str:
    """Parse a version reference into a version id (int) or an alias name (str).

    `ref` may be an int, a string of 1 to 9 ASCII decimal digits such as "3", or an alias
    name. An int below 1 is returned as is and then matches no version.

    Raises:
        InvalidNameError: `ref` is of another type, an int above `MAX_VERSION_ID`, or a string
            that is neither 1 to 9 digits nor a valid alias name.
    """
    if isinstance(ref, bool) or not isinstance(ref, (int, str)):
        raise InvalidNameError(
            f"Invalid version reference {ref!r} of type {type(ref).__name__}: pass an int id, "
            f"a string of decimal digits such as '3', or an alias name matching {ALIAS_PATTERN}."
        )
    if isinstance(ref, int):
        if ref > MAX_VERSION_ID:
            raise InvalidNameError(
                f"Invalid version id {ref}: version ids go up to {MAX_VERSION_ID}; pass an existing id."
            )
        return ref
    if _VERSION_ID_RE.fullmatch(ref):
        return int(ref)
    if _DIGITS_RE.fullmatch(ref):
        raise InvalidNameError(
            f"Invalid version id {_shorten(ref)!r}: a version id has 1 to 9 digits "
            f"({VERSION_ID_PATTERN}); pass an existing id."
        )
    if _ALIAS_RE.fullmatch(ref) is None:
        raise InvalidNameError(
            f"Invalid version reference {_shorten(ref)!r}: pass decimal digits such as '3' or an alias "
            f"name matching {ALIAS_PATTERN}."
        )
    return ref


def check_reason(reason: object) -> None:
    """Raise RegistryError unless `reason` is None or one line of at most `MAX_REASON_CHARS` characters."""
    if reason is None:
        return
    if not isinstance(reason, str):
        raise RegistryError(f"Invalid reason {reason!r}: pass a string or None.")
    if len(reason) > MAX_REASON_CHARS:
        raise RegistryError(
            f"Invalid reason {_shorten(reason)!r}: it has {len(reason)} characters; pass at most "
            f"{MAX_REASON_CHARS}."
        )
    if _CONTROL_RE.search(reason):
        raise RegistryError(
            f"Invalid reason {_shorten(reason)!r}: it contains a control character such as a line "
            "break; pass one line of plain text."
        )


def _shorten(text: str, limit: int = 40) -> str:
    """Cut `text` to `limit` characters for an error message, marking the cut with '...'."""
    return text if len(text) <= limit else text[:limit] + "..."
