"""Deleting versions: tombstones in root/deleted.jsonl, the references that block a delete, and gc.

A tombstone is {"id", "time", "force", "reason", "referrers"}. Appending it is the moment
a delete takes effect: from then on the version is hidden and cannot be loaded, promoted
or rolled back to, even while its folder still waits for removal. Its id is never reused.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from .aliases import utc_now_iso
from .errors import RegistryError
from .fsutil import append_jsonl, fsync_dir, storage_errors
from .layout import DELETED_FILE, STAGING_DIR, version_dir
from .manifest import Version, lineage_ids
from .names import check_reason
from .staging import pause_between_steps, remove_dead_entries, staging_entry_name

logger = logging.getLogger(__name__)


class DeletionMethods:
    """The delete and gc methods of `registry.Registry`, which provides the lock and version lookups."""

    def delete(self, ref: int | str, *, force: bool = False, reason: str | None = None) -> dict:
        """Delete the version `ref` names, record its tombstone, and return the tombstone.

        The tombstone is {"id", "time", "force", "reason", "referrers"}. The version's id
        is never reused, and rolling an alias back to it is rejected.

        Raises:
            VersionNotFoundError, AliasNotFoundError, InvalidNameError: `ref` names no version.
            RegistryError: an alias points to the version, a merge record lists it, or
                another version names it as "parent" or in "parents", and `force` is false.
                The message lists every reference.
        """
        check_reason(reason)
        with storage_errors(self._root, f"delete version {ref!r}"), self._locked():
            tombstones = self._tombstones()
            version_id = self._existing_folder_id(ref, tombstones)
            others = [version for version in self.versions() if version.id != version_id]
            referrers = find_referrers(version_id, self.aliases(), self._merge_records(), others)
            if referrers and not force:
                raise RegistryError(
                    f"Cannot delete version {version_id}: {'; '.join(referrers)}. Move or remove "
                    "these references first, or pass --force (force=True) to delete it anyway, which "
                    "is recorded."
                )
            tombstone = make_tombstone(version_id, force, reason, referrers)
            append_jsonl(self._root / DELETED_FILE, tombstone)
            pause_between_steps()
            self._remove_version_folder(version_id)
        logger.info("Deleted version %d from %s%s", version_id, self._root, " (forced)" if referrers else "")
        return dict(tombstone)

    def tombstones(self) -> list[dict]:
        """Return the tombstone of every deleted version, sorted by id."""
        return [dict(record) for _, record in sorted(self._tombstones().items())]

    def gc(self) -> list[Path]:
        """Remove what crashed publishes, imports and deletes left behind, and return the removed paths.

        It removes the staging entries of processes on this host that have exited, and the
        folders of deleted versions that a crashed delete left in versions/. Staging entries
        of live processes or other hosts, and every version that is not deleted, stay.

        Raises:
            RegistryError: the registry is not writable.
        """
        with storage_errors(self._root, f"garbage-collect registry {self._root}"):
            removed = []
            with self._locked():
                for version_id in sorted(self._folder_ids() & set(self._tombstones())):
                    removed.append(version_dir(self._root, version_id))
                    self._remove_version_folder(version_id)
            removed += remove_dead_entries(self._root / STAGING_DIR)
        logger.info("Garbage collection removed %d leftovers from %s", len(removed), self._root)
        return removed

    def _remove_version_folder(self, version_id: int) -> None:
        """Move a deleted version's folder into .staging/ in one rename, then remove it. The caller holds the lock."""
        path = version_dir(self._root, version_id)
        if path.is_symlink():
            path.unlink()
            return
        doomed = self._root / STAGING_DIR / staging_entry_name(suffix=".deleted")
        os.rename(path, doomed)
        fsync_dir(path.parent)
        pause_between_steps()
        shutil.rmtree(doomed)
        fsync_dir(doomed.parent)


def read_tombstones(records: list[dict]) -> dict[int, dict]:
    """Return {version id: tombstone} for the well-formed records of deleted.jsonl."""
    tombstones = {}
    for record in records:
        version_id = record.get("id")
        if isinstance(version_id, int) and not isinstance(version_id, bool) and version_id >= 1:
            tombstones.setdefault(version_id, record)
    return tombstones


def make_tombstone(version_id: int, force: bool, reason: str | None, referrers: list[str]) -> dict:
    """Return a new tombstone for `version_id` stamped with the current UTC time."""
    return {
        "id": version_id,
        "time": utc_now_iso(),
        "force": force,
        "reason": reason,
        "referrers": list(referrers),
    }


def describe_deletion(tombstone: dict) -> str:
    """Return "was deleted at TIME", plus whether it was forced and why, for error messages."""
    text = f"was deleted at {tombstone.get('time')}"
    if tombstone.get("force"):
        text += " with --force"
    if tombstone.get("reason"):
        text += f" (reason: {tombstone['reason']!r})"
    return text


def deleted_target_error(alias: str, version_id: int, tombstone: dict) -> RegistryError:
    """Build the error for a rollback of `alias` to the deleted version `version_id`."""
    return RegistryError(
        f"Cannot roll back alias {alias!r} to version {version_id}: that version "
        f"{describe_deletion(tombstone)}; promote another version, or roll back to an earlier "
        "target that still exists."
    )


def find_referrers(
    version_id: int, aliases: dict[str, int], merges: list[dict], versions: list[Version]
) -> list[str]:
    """Describe everything that refers to `version_id`, or return an empty list.

    A reference is an alias whose current target it is, a merge record that lists it in
    "versions", or another version that names it in "parent" or "parents".
    """
    referrers = [
        f"alias {alias!r} points to it" for alias, target in sorted(aliases.items()) if target == version_id
    ]
    for record in merges:
        inputs = record.get("versions")
        if isinstance(inputs, list) and version_id in inputs:
            referrers.append(f"merge {record.get('merge_id')} used it")
    children = [version.id for version in versions if version_id in lineage_ids(version.manifest)]
    if len(children) == 1:
        referrers.append(f"version {children[0]} names it as parent")
    elif children:
        referrers.append(f"versions {', '.join(map(str, children))} name it as parent")
    return referrers
