"""Exceptions raised by the registry.

Every exception derives from `RegistryError`, so a caller can catch one type. Each
message is one line that names what failed, the offending value, and the fix or the
valid choices.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base class for every error that the registry raises."""


class VersionNotFoundError(RegistryError):
    """A version id, or the id an alias points to, has no complete version in the registry."""


class AliasNotFoundError(RegistryError):
    """An alias name has never been promoted in this registry."""


class InvalidNameError(RegistryError):
    """An alias name or a version reference does not match the allowed syntax."""


class IntegrityError(RegistryError):
    """The files of a stored version no longer match its manifest.

    `version_id` is the checked version and `problems` maps each offending file name to
    one of "changed", "truncated", "size changed", "missing", "not a regular file" or
    "unexpected extra file".
    """

    def __init__(self, message: str, version_id: int, problems: dict[str, str]) -> None:
        super().__init__(message)
        self.version_id = version_id
        self.problems = dict(problems)
