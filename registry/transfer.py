"""Moving versions between registries: the export and import methods of `registry.Registry`.

See registry.archive for the archive layout and how an imported manifest is rewritten.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from .archive import ArchiveContents, imported_manifest, open_archive, stage_archived_version, write_archive
from .errors import RegistryError
from .fsutil import storage_errors
from .manifest import Version

logger = logging.getLogger(__name__)


class TransferMethods:
    """The export and import methods of `registry.Registry`, which provides the lock and the commit step."""

    def export(self, refs: list[int | str], out: str | os.PathLike) -> list[int]:
        """Write the versions that `refs` name into the new tar file `out` and return their ids.

        Each version is verified first, and a version named twice is written once.

        Raises:
            RegistryError: `refs` is empty, `out` exists, its folder is missing or lies
                inside the registry, or that folder is not writable or full.
            Any error of `open_version`.
        """
        out = Path(out)
        if not refs:
            raise RegistryError("Cannot export: no versions given; pass at least one version id or alias.")
        versions: dict[int, Version] = {}
        for ref in refs:
            version = self.open_version(ref)
            versions.setdefault(version.id, version)
        if os.path.lexists(out):
            raise RegistryError(f"Cannot export to {out}: it already exists; pass a new file path.")
        if not out.parent.is_dir():
            raise RegistryError(f"Cannot export to {out}: the folder {out.parent} does not exist; create it first.")
        if out.parent.resolve().is_relative_to(self._root.resolve()):
            raise RegistryError(f"Cannot export to {out}: it lies inside the registry {self._root}; pass a path outside it.")
        with storage_errors(out.parent, f"export to {out}"):
            size_bytes = write_archive(list(versions.values()), out, self._root)
        logger.info("Exported versions %s to %s (%d bytes)", list(versions), out, size_bytes)
        return list(versions)

    def import_archive(self, path: str | os.PathLike) -> list[dict]:
        """Import every version of the export archive `path` and return [{"source_registry", "source_id", "id"}].

        Every entry, manifest and checksum is checked, and every file is copied into staging,
        before the first version is committed, so a damaged or hostile archive changes
        nothing. Each version then gets the next id of this registry (see registry.archive),
        and the registry takes the versions' label set if it has none yet.

        Raises:
            RegistryError: the archive is missing or not a tar file, or it contains a
                disallowed entry, a manifest of a newer format or a file that fails its
                checksum. Or its labels differ from the registry's, or the registry is not
                writable or full.
        """
        path = Path(path)
        with storage_errors(self._root, f"import {path} into registry {self._root}"):
            with open_archive(path) as (tar, contents):
                labels = self._archive_labels(contents)
                staging_dirs: list[Path] = []
                try:
                    staged = []
                    for archived in contents.versions:
                        staging_dirs.append(self._new_staging_dir())
                        staged.append(stage_archived_version(path, tar, archived, staging_dirs[-1]))
                    imported = self._commit_imports(contents, staging_dirs, staged)
                except BaseException:
                    for staging_dir in staging_dirs:
                        shutil.rmtree(staging_dir, ignore_errors=True)
                    raise
            if labels is not None:
                self.ensure_labels(labels)
        logger.info("Imported %d versions from %s into %s", len(imported), path, self._root)
        return imported

    def _commit_imports(self, contents: ArchiveContents, staging_dirs: list[Path], staged: list[dict]) -> list[dict]:
        """Commit the staged versions of an archive in source-id order, under one hold of the lock."""
        new_ids: dict[int, int] = {}
        imported = []
        with self._locked():
            for archived, staging_dir, entries in zip(contents.versions, staging_dirs, staged):
                user_manifest, imported_from = imported_manifest(contents, archived, new_ids)
                version = self._commit_staged(staging_dir, user_manifest, entries, imported_from)
                new_ids[archived.source_id] = version.id
                imported.append({
                    "source_registry": contents.index["source"]["registry"],
                    "source_id": archived.source_id,
                    "id": version.id,
                })
                logger.info("Imported version %d of %s as version %d", archived.source_id, contents.path, version.id)
        return imported

    def _archive_labels(self, contents: ArchiveContents) -> list[str] | None:
        """Return the label set the archive's manifests agree on, after checking it against the registry's."""
        label_sets = {
            tuple(archived.manifest["labels"])
            for archived in contents.versions
            if isinstance(archived.manifest.get("labels"), list)
        }
        if not label_sets:
            return None
        if len(label_sets) > 1:
            raise RegistryError(
                f"Cannot import {contents.path}: its versions have different label sets "
                f"{sorted(list(labels) for labels in label_sets)}; export versions of one label set."
            )
        labels = list(next(iter(label_sets)))
        stored = self.labels
        if stored is not None and stored != labels:
            raise RegistryError(
                f"Cannot import {contents.path}: its versions have labels {labels}, but registry "
                f"{self._root} has labels {stored}; import into a registry with the same labels."
            )
        return labels
