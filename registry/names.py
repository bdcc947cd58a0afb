"""Syntax rules for alias names and version references.

An alias name starts with an ASCII letter, so it can never be mistaken for a version id,
and contains only letters, digits, ".", "_" and "-", so it can never contain a path
separator or start with "..".
"""

from __future__ import annotations

import re

from .errors import InvalidNameError

ALIAS_PATTERN = r"^[A-Za-z][A-Za-z0-9._-]{0,63}$"

_ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")
_VERSION_ID_RE = re.compile(r"[0-9]+")


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

    `ref` may be an int, a string of ASCII decimal digits such as "3", or an alias name.

    Raises:
        InvalidNameError: `ref` is of another type, or a string that is neither digits nor
            a valid alias name.
    """
    if isinstance(ref, bool) or not isinstance(ref, (int, str)):
        raise InvalidNameError(
            f"Invalid version reference {ref!r} of type {type(ref).__name__}: pass an int id, "
            f"a string of decimal digits such as '3', or an alias name matching {ALIAS_PATTERN}."
        )
    if isinstance(ref, int):
        return ref
    if _VERSION_ID_RE.fullmatch(ref):
        return int(ref)
    if _ALIAS_RE.fullmatch(ref) is None:
        raise InvalidNameError(
            f"Invalid version reference {ref!r}: pass decimal digits such as '3' or an alias "
            f"name matching {ALIAS_PATTERN}."
        )
    return ref
