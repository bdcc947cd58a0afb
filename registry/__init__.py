"""A versioned store for adapter files: atomic publishes, checksummed manifests, aliases.

The registry stores and verifies plain files and JSON manifests. It does not import
torch, peft, transformers or the adapters package, so it can be used and tested alone.
See registry.store for the folder layout and the durability rules.
"""

from .errors import (
    AliasNotFoundError,
    IntegrityError,
    InvalidNameError,
    RegistryError,
    VersionNotFoundError,
)
from .integrity import VersionCheck
from .manifest import FORMAT_VERSION, Version
from .names import ALIAS_PATTERN, VERSION_ID_PATTERN
from .store import Registry

__all__ = [
    "ALIAS_PATTERN",
    "FORMAT_VERSION",
    "AliasNotFoundError",
    "IntegrityError",
    "InvalidNameError",
    "Registry",
    "RegistryError",
    "VERSION_ID_PATTERN",
    "Version",
    "VersionCheck",
    "VersionNotFoundError",
]
