"""A versioned store of adapter files with checksummed manifests, aliases and merge records.

Storage layout under the registry root::

    registry.json       {"format_version": int, "labels": list of str or null}.
    .lock               The filelock that serializes every change to the files below.
    ids.json            {"last_id": int}, the last allocated version id.
    versions/000001/    One folder per complete version: the published files and
                        manifest.json (see registry.manifest for its keys).
    aliases.jsonl       The append-only alias history, one move per line, oldest first.
    merges.jsonl        The append-only merge records, one per line, oldest first.
    deleted.jsonl       The append-only tombstones of deleted versions (see registry.deletion).
    .staging/           In-progress publishes, imports and deletes and temporary files, each
                        named after the pid and host that own it (see registry.staging).

Version ids are never reused, even when a publish crashes between allocating its id and
renaming its folder into versions/, or when a version is deleted. The one exception is a
lost ids.json together with the highest version folders and deleted.jsonl, because the
next id is one more than the largest of "last_id", the version folders and the tombstones.

Durability: every small JSON file is replaced by writing a temporary file, fsyncing it,
os.replace and fsyncing the directory. A version becomes visible in one rename of its
fully written and fsynced staging folder, so versions/ never shows a partial version.
Appends to the .jsonl files happen under the lock and are fsynced. A line torn by a crash
mid-append is skipped on read, and the next append starts on a fresh line. A delete takes
effect when its tombstone is appended, and its folder is then moved into .staging/ and
removed, so `gc` finishes a delete that a crash interrupted.

No symlink is followed out of the registry: opening rejects layout entries that point
outside the root, and a version folder, manifest or stored file that is a symlink fails
verification.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import filelock

from .aliases import alias_not_found, make_move, replay_stacks, rollback_target, utc_now_iso, valid_moves
from .deletion import DeletionMethods, deleted_target_error, describe_deletion, read_tombstones
from .errors import RegistryError, VersionNotFoundError
from .fsutil import append_jsonl, fsync_dir, read_jsonl, storage_errors, write_json_atomic, write_new_file
from .integrity import VersionCheck, check_version_folder, integrity_error, verify_files
from .layout import (
    ALIASES_FILE,
    DELETED_FILE,
    IDS_FILE,
    LOCK_FILE,
    MERGES_FILE,
    REGISTRY_FILE,
    STAGING_DIR,
    VERSIONS_DIR,
    allocate_id,
    check_layout_links,
    folder_ids,
    reject_foreign_files,
    version_dir,
)
from .manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    InvalidManifestError,
    Version,
    build_manifest,
    check_user_manifest,
    read_manifest,
    serialize_manifest,
)
from .merges import build_merge_record, check_merge_record
from .names import check_alias_name, check_reason, parse_ref
from .settings import check_labels, read_settings
from .staging import list_source_files, pause_between_steps, stage_files, staging_entry_name
from .transfer import TransferMethods

logger = logging.getLogger(__name__)

DEFAULT_LOCK_TIMEOUT_S = 120.0

# Version folders with an invalid manifest already logged by this process, so each is warned about once.
_warned_folders: set[Path] = set()


class Registry(DeletionMethods, TransferMethods):
    """A versioned store rooted at one folder, safe to use from several processes at once.

    Deleting and gc come from `DeletionMethods`, export and import from `TransferMethods`.

    Args:
        root: The registry folder.
        create: Make the folder layout if `root` contains no registry yet. `root` must then be
            missing, empty, or a layout left by an interrupted creation.
        lock_timeout_s: Maximum time in seconds to wait for the registry lock before
            raising RegistryError.

    Raises:
        RegistryError: `root` contains no registry and `create` is false, `root` is a non-empty
            folder of other files, registry.json is unreadable or of a newer format, or a
            layout entry is a symlink that points outside `root`.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        create: bool = False,
        *,
        lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    ) -> None:
        self._root = Path(root)
        self._lock_timeout_s = lock_timeout_s
        self._lock = filelock.FileLock(str(self._root / LOCK_FILE), timeout=lock_timeout_s)
        if not (self._root / REGISTRY_FILE).is_file():
            if not create:
                raise RegistryError(
                    f"No registry found at {self._root}: {REGISTRY_FILE} is missing there; pass "
                    "create=True to make a new registry, or check the path."
                )
            with storage_errors(self._root, f"create a registry at {self._root}"):
                self._create_layout()
        check_layout_links(self._root)
        self._read_settings()

    @property
    def root(self) -> Path:
        """The registry folder."""
        return self._root

    @property
    def labels(self) -> list[str] | None:
        """The label set fixed for this registry, or None until `ensure_labels` stores one."""
        labels = self._read_settings()["labels"]
        return None if labels is None else list(labels)

    def ensure_labels(self, labels: list[str]) -> list[str]:
        """Store `labels` as the registry's label set if none is stored yet, and return the stored set.

        When a set is already stored, it is returned unchanged even if it differs from
        `labels`, so the caller must compare them.

        Raises:
            RegistryError: `labels` is not a non-empty list of distinct, non-empty strings.
        """
        check_labels(labels)
        with storage_errors(self._root, f"store labels in registry {self._root}"), self._locked():
            settings = self._read_settings()
            if settings["labels"] is None:
                settings["labels"] = list(labels)
                write_json_atomic(self._root / REGISTRY_FILE, settings, self._temp_path())
                logger.info("Stored label set %s in registry %s", settings["labels"], self._root)
            return list(settings["labels"])

    def publish(self, source_dir: str | os.PathLike, manifest: dict) -> Version:
        """Copy the files of `source_dir` into a new version and return it.

        Every regular file directly inside `source_dir` is copied into a staging folder and
        fsynced. Under the registry lock, the next id is allocated and manifest.json is
        written: a copy of `manifest` plus the keys the registry owns (see registry.manifest).
        The staging folder is then renamed to versions/<id>. `manifest` is not modified.
        If the publish fails, its staging folder is removed, but an allocated id stays used.

        Raises:
            RegistryError: `manifest` is not a JSON-encodable dict, sets a key the registry
                writes, or has an invalid "parent" or "parents". Or `source_dir` is missing or
                empty, or contains a subfolder, a symlink, a file named manifest.json or a
                pickle-based file such as *.bin. Or the registry is read-only or its disk is full.
        """
        started_s = time.monotonic()
        source = Path(source_dir)
        problems = check_user_manifest(manifest)
        if problems:
            raise RegistryError(f"Cannot publish {source}: {'; '.join(problems)}.")
        files = list_source_files(source)

        with storage_errors(self._root, f"publish {source} to registry {self._root}"):
            staging_dir = self._new_staging_dir()
            try:
                entries = stage_files(files, staging_dir)
                with self._locked():
                    version = self._commit_staged(staging_dir, manifest, entries)
            except BaseException:
                shutil.rmtree(staging_dir, ignore_errors=True)
                raise

        total_bytes = sum(entry["bytes"] for entry in entries.values())
        logger.info(
            "Published version %d (%d files, %d bytes) to %s in %.2f s",
            version.id, len(entries), total_bytes, version.path, time.monotonic() - started_s,
        )
        return version

    def versions(self) -> list[Version]:
        """List the complete versions that are not deleted, sorted by id.

        A folder under versions/ without a valid manifest.json is skipped with a warning;
        `check` reports it.

        Raises:
            RegistryError: a manifest was written by a newer registry format.
        """
        versions = []
        for version_id in sorted(self._folder_ids() - set(self._tombstones())):
            try:
                versions.append(self._load_version(version_id))
            except InvalidManifestError as error:
                path = version_dir(self._root, version_id)
                if path not in _warned_folders:
                    _warned_folders.add(path)
                    logger.warning("Skipped version folder %s: %s", path, error)
        return versions

    def get(self, ref: int | str) -> Version:
        """Return the version that `ref` names: an int id, a string of digits, or an alias name.

        It checks the manifest but not the files. `open_version` checks both.

        Raises:
            InvalidNameError: `ref` is neither an id nor a valid alias name.
            AliasNotFoundError: `ref` is an alias that was never promoted.
            VersionNotFoundError: no version has that id, or it was deleted.
            IntegrityError: the version folder is a symlink or its manifest is invalid or changed.
        """
        key = parse_ref(ref)
        if isinstance(key, int):
            return self._get_id(key)
        stacks = self._stacks()
        if key not in stacks:
            raise alias_not_found(key, stacks)
        return self._get_id(stacks[key][-1], alias=key)

    def verify(self, ref: int | str) -> None:
        """Recompute the size and sha256 of every file of a version and compare them with its manifest.

        Raises:
            IntegrityError: a file changed, was truncated, is missing, is a symlink, has a
                pickle-based format, or is not listed in the manifest. The message names the
                version and every offending file.
            Any error of `get`.
        """
        verify_files(self.get(ref))

    def open_version(self, ref: int | str) -> Version:
        """Return the version that `ref` names after verifying its files, for loaders.

        Raises:
            The errors of `get` and `verify`.
        """
        version = self.get(ref)
        verify_files(version)
        return version

    def check(self, ref: int | str | None = None) -> list[VersionCheck]:
        """Check the version `ref` names, or every version folder if None, without raising on damage.

        Each result lists the problems of one folder: an invalid, changed or newer-format
        manifest, a symlink, or a file that changed, was truncated, is missing or is extra.
        Deleted versions are skipped.

        Raises:
            InvalidNameError, AliasNotFoundError: `ref` names no version.
            VersionNotFoundError: no version folder has that id, or the version was deleted.
        """
        tombstones = self._tombstones()
        if ref is None:
            ids = sorted(self._folder_ids() - set(tombstones))
        else:
            ids = [self._existing_folder_id(ref, tombstones)]
        return [check_version_folder(version_id, version_dir(self._root, version_id)) for version_id in ids]

    def aliases(self) -> dict[str, int]:
        """Return {alias name: version id it points to} for every alias ever promoted."""
        return {alias: stack[-1] for alias, stack in sorted(self._stacks().items())}

    def promote(self, alias: str, ref: int | str, reason: str | None = None) -> dict:
        """Point `alias` at the version `ref` names, record the move, and return the record.

        The record is {"alias", "action": "promote", "from": previous id or None, "to": id,
        "time", "reason"}. Promoting an alias to the version it already points to is still
        recorded, but a later rollback skips it and returns to the previous different version.

        Raises:
            InvalidNameError: `alias` or `ref` is not a valid name.
            VersionNotFoundError, AliasNotFoundError: `ref` names no complete version, or a deleted one.
            RegistryError: `reason` is neither None nor one line of at most 500 characters.
        """
        check_alias_name(alias)
        check_reason(reason)
        with storage_errors(self._root, f"promote alias {alias!r}"), self._locked():
            stacks = self._stacks()
            version_id = self._resolve_locked(ref, stacks)
            previous = stacks[alias][-1] if alias in stacks else None
            move = make_move(alias, "promote", previous, version_id, reason)
            append_jsonl(self._root / ALIASES_FILE, move)
        if previous is None:
            logger.info("Created alias %s pointing to version %d", alias, version_id)
        else:
            logger.info("Promoted alias %s from version %d to %d", alias, previous, version_id)
        return dict(move)

    def rollback(self, alias: str, to: int | str | None = None, reason: str | None = None) -> dict:
        """Move `alias` back to an earlier target, record the move, and return the record.

        Only the pointer moves, and no file is copied. The alias's targets form a stack (see
        registry.aliases). Without `to`, the top is popped and the alias moves to the target
        below it. With `to`, targets are popped until version `to` is on top, so `to` must be
        an earlier target still on the stack.

        Raises:
            AliasNotFoundError: `alias` was never promoted.
            VersionNotFoundError: the target version no longer exists.
            RegistryError: the alias has no earlier target, `to` is not on its stack, or the
                target was deleted. The message lists the targets it can roll back to.
        """
        check_alias_name(alias)
        check_reason(reason)
        with storage_errors(self._root, f"roll back alias {alias!r}"), self._locked():
            stacks = self._stacks()
            if alias not in stacks:
                raise alias_not_found(alias, stacks)
            tombstones = self._tombstones()
            requested = None
            if to is not None:
                key = parse_ref(to)
                if isinstance(key, int) and key in tombstones:
                    raise deleted_target_error(alias, key, tombstones[key])
                requested = self._resolve_locked(to, stacks)
            target = rollback_target(stacks, alias, requested)
            if target in tombstones:
                raise deleted_target_error(alias, target, tombstones[target])
            self._get_id(target)
            previous = stacks[alias][-1]
            move = make_move(alias, "rollback", previous, target, reason)
            append_jsonl(self._root / ALIASES_FILE, move)
        logger.info("Rolled back alias %s from version %d to %d", alias, previous, target)
        return dict(move)

    def alias_history(self, alias: str | None = None) -> list[dict]:
        """Return every alias move, or only those of `alias` if given, oldest first.

        Raises:
            InvalidNameError: `alias` is not a valid alias name.
            AliasNotFoundError: `alias` has no moves.
        """
        moves = valid_moves(read_jsonl(self._root / ALIASES_FILE))
        if alias is None:
            return moves
        check_alias_name(alias)
        selected = [move for move in moves if move["alias"] == alias]
        if not selected:
            raise alias_not_found(alias, replay_stacks(moves))
        return selected

    def record_merge(self, record: dict) -> dict:
        """Append a copy of `record` with a new "merge_id" and "time" to the merge log and return the copy.

        Merge ids start at 1 and grow by one per record. `record` is not modified.

        Raises:
            RegistryError: `record` is not a JSON-encodable dict, or sets "merge_id" or "time".
        """
        check_merge_record(record)
        with storage_errors(self._root, f"record a merge in registry {self._root}"), self._locked():
            existing = self._merge_records()
            merge_id = max((entry["merge_id"] for entry in existing), default=0) + 1
            stored = build_merge_record(record, merge_id)
            append_jsonl(self._root / MERGES_FILE, stored)
        logger.info("Recorded merge %d in registry %s", merge_id, self._root)
        return stored

    def merges(self) -> list[dict]:
        """Return every merge record, oldest first."""
        return self._merge_records()

    # Internals.

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            with storage_errors(self._root, f"lock registry {self._root}"):
                self._lock.acquire()
        except filelock.Timeout:
            raise RegistryError(
                f"Timed out after {self._lock_timeout_s} s waiting for the registry lock "
                f"{self._lock.lock_file} because another process has it locked; retry, or pass "
                "a larger lock_timeout_s."
            ) from None
        try:
            yield
        finally:
            self._lock.release()

    def _create_layout(self) -> None:
        if self._root.exists() and not self._root.is_dir():
            raise RegistryError(f"Cannot create a registry at {self._root}: it is a file, not a folder.")
        self._root.mkdir(parents=True, exist_ok=True)
        # Checked before taking the lock too, so that a foreign folder does not get a lock file.
        reject_foreign_files(self._root)
        with self._locked():
            if (self._root / REGISTRY_FILE).is_file():
                return  # Another process created the registry while this one waited for the lock.
            reject_foreign_files(self._root)
            (self._root / VERSIONS_DIR).mkdir(exist_ok=True)
            (self._root / STAGING_DIR).mkdir(exist_ok=True)
            if not (self._root / IDS_FILE).exists():
                write_json_atomic(self._root / IDS_FILE, {"last_id": 0}, self._temp_path())
            # registry.json is written last because its presence marks the layout as complete.
            settings = {"format_version": FORMAT_VERSION, "labels": None}
            write_json_atomic(self._root / REGISTRY_FILE, settings, self._temp_path())
        logger.info("Created registry at %s", self._root)

    def _read_settings(self) -> dict:
        return read_settings(self._root / REGISTRY_FILE)

    def _temp_path(self) -> Path:
        return self._root / STAGING_DIR / staging_entry_name(suffix=".tmp")

    def _new_staging_dir(self) -> Path:
        staging_dir = self._root / STAGING_DIR / staging_entry_name()
        staging_dir.parent.mkdir(exist_ok=True)
        staging_dir.mkdir()
        return staging_dir

    def _folder_ids(self) -> set[int]:
        return folder_ids(self._root)

    def _commit_staged(
        self, staging_dir: Path, user_manifest: dict, entries: dict, imported_from: dict | None = None
    ) -> Version:
        """Write the manifest into `staging_dir` and rename the folder into versions/.

        The caller must hold the lock.
        """
        used_ids = self._folder_ids() | set(self._tombstones())
        version_id = allocate_id(self._root, self._temp_path(), used_ids)
        pause_between_steps()
        manifest = build_manifest(user_manifest, version_id, utc_now_iso(), entries, imported_from)
        write_new_file(staging_dir / MANIFEST_NAME, serialize_manifest(manifest))
        fsync_dir(staging_dir)
        pause_between_steps()

        target = version_dir(self._root, version_id)
        if os.path.lexists(target):
            raise RegistryError(
                f"Cannot publish version {version_id}: {target} already exists although the id "
                f"counter had not reached it; remove that folder or raise 'last_id' in {IDS_FILE}."
            )
        os.rename(staging_dir, target)
        fsync_dir(target.parent)
        fsync_dir(staging_dir.parent)
        pause_between_steps()
        return Version(id=version_id, path=target, manifest=manifest)

    def _load_version(self, version_id: int) -> Version:
        path = version_dir(self._root, version_id)
        if path.is_symlink():
            raise InvalidManifestError(f"Version folder {path} is a symlink, which the registry never follows.")
        manifest = read_manifest(path / MANIFEST_NAME)
        if manifest["id"] != version_id:
            raise InvalidManifestError(
                f"Manifest {path / MANIFEST_NAME} is invalid: its id {manifest['id']} does not "
                f"match its folder {path.name}."
            )
        return Version(id=version_id, path=path, manifest=manifest)

    def _get_id(self, version_id: int, alias: str | None = None) -> Version:
        """Load a version by id.

        Raises VersionNotFoundError, listing the complete versions, for a missing or deleted
        id, and IntegrityError for a symlinked folder or an invalid manifest.
        """
        subject = f"Version {version_id}" + (f" (the target of alias {alias!r})" if alias else "")
        tombstone = self._tombstones().get(version_id)
        if tombstone is not None:
            raise VersionNotFoundError(f"{subject} {describe_deletion(tombstone)}; {self._describe_versions()}.")
        path = version_dir(self._root, version_id)
        if version_id < 1 or not os.path.lexists(path):
            raise VersionNotFoundError(f"{subject} not found; {self._describe_versions()}.")
        try:
            return self._load_version(version_id)
        except InvalidManifestError as error:
            raise integrity_error(check_version_folder(version_id, path)) from error

    def _existing_folder_id(self, ref: int | str, tombstones: dict[int, dict]) -> int:
        """Return the id `ref` names if it has a folder and no tombstone; its manifest is not read."""
        key = parse_ref(ref)
        if isinstance(key, str):
            stacks = self._stacks()
            if key not in stacks:
                raise alias_not_found(key, stacks)
            key = stacks[key][-1]
        if key in tombstones:
            raise VersionNotFoundError(f"Version {key} {describe_deletion(tombstones[key])}; {self._describe_versions()}.")
        if key not in self._folder_ids():
            raise VersionNotFoundError(f"Version {key} not found; {self._describe_versions()}.")
        return key

    def _describe_versions(self) -> str:
        ids = [version.id for version in self.versions()]
        if not ids:
            return "the registry is empty; publish a version first"
        return "existing versions: " + ", ".join(map(str, ids))

    def _resolve_locked(self, ref: int | str, stacks: dict[str, list[int]]) -> int:
        """Return the id of the complete version `ref` names, using already-read alias stacks."""
        key = parse_ref(ref)
        if isinstance(key, int):
            return self._get_id(key).id
        if key not in stacks:
            raise alias_not_found(key, stacks)
        return self._get_id(stacks[key][-1], alias=key).id

    def _stacks(self) -> dict[str, list[int]]:
        return replay_stacks(valid_moves(read_jsonl(self._root / ALIASES_FILE)))

    def _merge_records(self) -> list[dict]:
        records = read_jsonl(self._root / MERGES_FILE)
        return [record for record in records if _is_positive_int(record.get("merge_id"))]

    def _tombstones(self) -> dict[int, dict]:
        return read_tombstones(read_jsonl(self._root / DELETED_FILE))


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
