"""Open the registry that a command names, without importing torch.

Commands that only read or move registry entries (list, show, promote, verify and others) import
this module alone, so they start in well under a second.
"""

from __future__ import annotations

from pathlib import Path

from adapters.errors import AdaptersError
from registry import Registry


def open_registry(root: str | Path | None, *, create: bool = False) -> Registry:
    """Open the registry at `root` (from --registry or ADAPTERS_REGISTRY); there is no implicit default."""
    if not root:
        raise AdaptersError("no registry given; pass --registry DIR or set ADAPTERS_REGISTRY")
    if not create and not (Path(root) / "registry.json").is_file():
        raise AdaptersError(f"no registry found at {str(root)!r}; check --registry, or train a version to create one")
    return Registry(root, create=create)


def existing_registry(root: str | Path | None) -> Registry | None:
    """Open the registry at `root` if one exists there; None for a new or empty folder.

    A folder that contains other files is rejected now, before any training, and nothing is written.
    """
    if not root:
        raise AdaptersError("no registry given; pass --registry DIR or set ADAPTERS_REGISTRY")
    path = Path(root)
    if (path / "registry.json").is_file():
        return Registry(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise AdaptersError(f"{str(path)!r} is not a registry and not empty; pass a registry folder or a new path to --registry")
    return None
