"""Names and paths of the registry's folder layout, and the checks that guard it.

See registry.store for what each file contains.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .errors import RegistryError
from .fsutil import read_json_object, write_json_atomic
from .names import MAX_VERSION_ID

logger = logging.getLogger(__name__)

REGISTRY_FILE = "registry.json"
IDS_FILE = "ids.json"
LOCK_FILE = ".lock"
VERSIONS_DIR = "versions"
STAGING_DIR = ".staging"
ALIASES_FILE = "aliases.jsonl"
MERGES_FILE = "merges.jsonl"
DELETED_FILE = "deleted.jsonl"
LAYOUT_NAMES = frozenset(
    {REGISTRY_FILE, IDS_FILE, LOCK_FILE, VERSIONS_DIR, STAGING_DIR, ALIASES_FILE, MERGES_FILE, DELETED_FILE}
)


def version_dir(root: Path, version_id: int) -> Path:
    """Return the folder of version `version_id`: versions/ and the id as at least 6 digits."""
    return root / VERSIONS_DIR / f"{version_id:06d}"


def folder_ids(root: Path) -> set[int]:
    """Return the ids of every canonically named entry under versions/, complete or not.

    Symlinks with such names are included, so that verification reports them, but
    no other file is.
    """
    ids = set()
    for entry in os.scandir(root / VERSIONS_DIR):
        if not (entry.name.isascii() and entry.name.isdigit()):
            continue
        if not (entry.is_symlink() or entry.is_dir(follow_symlinks=False)):
            continue
        version_id = int(entry.name)
        if 1 <= version_id <= MAX_VERSION_ID and entry.name == f"{version_id:06d}":
            ids.add(version_id)
    return ids


def check_layout_links(root: Path) -> None:
    """Raise RegistryError if a file or folder of the layout is a symlink that points outside `root`.

    Such a link would let a publish, gc or delete write or remove files outside the
    registry. Links that stay inside `root` are allowed.
    """
    resolved_root = root.resolve()
    outside = []
    for name in sorted(LAYOUT_NAMES):
        path = root / name
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(resolved_root):
                outside.append(f"{name} -> {target}")
    if outside:
        raise RegistryError(
            f"Registry {root} is unsafe to use: {', '.join(outside)} points outside the registry; "
            "replace each symlink with the real file or folder."
        )


def reject_foreign_files(root: Path) -> None:
    """Raise RegistryError if `root`, which contains no registry yet, contains files of another kind."""
    if (root / REGISTRY_FILE).is_file():
        return
    foreign = sorted(path.name for path in root.iterdir() if path.name not in LAYOUT_NAMES)
    if foreign:
        raise RegistryError(
            f"Cannot create a registry at {root}: the folder already contains "
            f"{foreign[:5]}; pass an empty or new folder."
        )


def allocate_id(root: Path, temp_path: Path, used_ids: set[int]) -> int:
    """Allocate and durably record the next version id. The caller must hold the registry lock.

    The next id is one more than the largest of "last_id" in ids.json and `used_ids`,
    which the caller fills with the ids of every version folder and deleted version.
    """
    ids_path = root / IDS_FILE
    last_id = 0
    if ids_path.exists():
        last_id = read_json_object(ids_path, "The version id counter").get("last_id")
        if not isinstance(last_id, int) or isinstance(last_id, bool) or last_id < 0:
            raise RegistryError(
                f"The version id counter {ids_path} is invalid: 'last_id' must be an int of 0 "
                f"or more, got {last_id!r}; set it to the highest id ever published."
            )
    else:
        logger.warning(
            "Version id counter %s is missing; continuing from the highest version folder", ids_path
        )
    # The folder scan guards against a counter restored from an older backup.
    next_id = max(last_id, max(used_ids, default=0)) + 1
    if next_id > MAX_VERSION_ID:
        raise RegistryError(
            f"Cannot allocate version id {next_id}: version ids go up to {MAX_VERSION_ID}; "
            "start a new registry."
        )
    write_json_atomic(ids_path, {"last_id": next_id}, temp_path)
    return next_id
