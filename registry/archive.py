"""Export archives: plain tar files that carry versions, with their manifests, between registries.

An archive contains exactly these entries, all regular files:

    export.json                     {"kind": "adapters-registry-export", "format_version",
                                    "exported", "source": {"registry", "host"}, "versions"}.
    versions/<id>/manifest.json     The version's manifest as stored, checksums included.
    versions/<id>/<file>            Every file that the manifest lists.

Directory entries "versions" and "versions/<id>" are allowed too. Reading an archive
rejects every other entry: absolute paths, "..", symlinks, hard links, device files,
FIFOs, or anything outside versions/<id>/. Files are never extracted by tarfile. Each one
is copied from its entry into a staging folder and hashed, so no entry can be written
outside the registry.

An imported version gets the next id of the target registry, because ids are per
registry. Its manifest keeps every file and checksum but gets a new "id", "created" and
"manifest_sha256", plus "imported_from": {"registry", "host", "id", "created", "lineage"},
the source registry, the source id and creation time, and the source's "parent" and
"parents" values. "parent" and "parents" are rewritten to the new ids of versions
imported from the same archive, and references to versions not in the archive are dropped.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .aliases import utc_now_iso
from .errors import RegistryError
from .fsutil import COPY_CHUNK_BYTES, copy_stream_and_hash, fsync_dir
from .manifest import (
    FORMAT_VERSION,
    LINEAGE_KEYS,
    MANIFEST_NAME,
    RESERVED_KEYS,
    Version,
    check_file_name,
    parse_manifest,
    pickle_format_problem,
)
from .names import MAX_VERSION_ID

ARCHIVE_INDEX = "export.json"
ARCHIVE_KIND = "adapters-registry-export"
MAX_LISTED_PROBLEMS = 5


@dataclass
class ArchivedVersion:
    """One version inside an archive: its source id, its parsed manifest and its file entries."""

    source_id: int
    manifest: dict = field(default_factory=dict)
    members: dict[str, tarfile.TarInfo] = field(default_factory=dict)


@dataclass
class ArchiveContents:
    """A checked archive: its export.json and its versions, sorted by source id."""

    path: Path
    index: dict
    versions: list[ArchivedVersion]


def write_archive(versions: list[Version], out: Path, registry_root: Path) -> int:
    """Write `versions` into the new tar file `out` and return its size in bytes.

    The archive is written to a temporary file next to `out`, fsynced and renamed, so
    `out` never contains a partial archive.
    """
    index = {
        "kind": ARCHIVE_KIND,
        "format_version": FORMAT_VERSION,
        "exported": utc_now_iso(),
        "source": {"registry": str(registry_root.resolve()), "host": socket.gethostname()},
        "versions": [version.id for version in versions],
    }
    temp_path = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with tarfile.open(temp_path, "x", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, ARCHIVE_INDEX, (json.dumps(index, indent=2) + "\n").encode("utf-8"))
            for version in versions:
                folder = f"versions/{version.id:06d}"
                for name in sorted(version.manifest["files"]) + [MANIFEST_NAME]:
                    _add_file(tar, f"{folder}/{name}", version.path / name)
        with open(temp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp_path, out)
        fsync_dir(out.parent)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    return out.stat().st_size


@contextmanager
def open_archive(path: Path) -> Iterator[tuple[tarfile.TarFile, ArchiveContents]]:
    """Open the tar file `path`, check every entry and manifest, and yield (tar, contents).

    Raises:
        RegistryError: the file is missing or not a tar archive, or an entry is not allowed
            (see the module docstring). Or export.json or a manifest is invalid or of a newer
            format, or a version's entries do not match its manifest's file list.
    """
    if not path.is_file():
        raise RegistryError(f"Cannot import {path}: the file does not exist; pass an archive written by export.")
    try:
        tar = tarfile.open(path, "r:")
    except (tarfile.TarError, OSError) as error:
        reason = " ".join(str(error).split())
        raise RegistryError(
            f"Cannot import {path}: it is not a readable uncompressed tar archive ({reason}); pass an "
            "archive written by export."
        ) from None
    with tar:
        try:
            members = _check_members(path, tar)
            index = _read_index(path, tar, members)
            versions = _read_versions(path, tar, members, index)
            yield tar, ArchiveContents(path, index, versions)
        except (tarfile.TarError, EOFError) as error:
            # A truncated or corrupted archive fails while its entries are read, which also
            # happens in the caller's block when it copies the files.
            reason = " ".join(str(error).split())
            raise RegistryError(
                f"Cannot import {path}: the archive is damaged ({reason}); export the versions again."
            ) from None


def stage_archived_version(
    path: Path, tar: tarfile.TarFile, archived: ArchivedVersion, staging_dir: Path | None
) -> dict[str, dict]:
    """Copy the files of `archived` into the existing folder `staging_dir` and check them against its manifest.

    With `staging_dir` None the files are only read and checked. Returns the manifest
    entries {file name: {"sha256", "bytes"}}.

    Raises:
        RegistryError: a file's size or sha256 differs from the manifest.
    """
    entries = {}
    expected_files = archived.manifest["files"]
    for name, member in sorted(archived.members.items()):
        with tar.extractfile(member) as reader:
            if staging_dir is None:
                digest, size_bytes = _hash_stream(reader)
            else:
                digest, size_bytes = copy_stream_and_hash(reader, staging_dir / name)
        expected = expected_files[name]
        if (digest, size_bytes) != (expected["sha256"], expected["bytes"]):
            raise RegistryError(
                f"Cannot import {path}: {member.name} has {size_bytes} bytes with sha256 {digest[:12]}..., "
                f"but its manifest records {expected['bytes']} bytes with sha256 {expected['sha256'][:12]}...; "
                "the archive is damaged, so export the version again."
            )
        entries[name] = {"sha256": digest, "bytes": size_bytes}
    return entries


def check_archive(path: str | os.PathLike) -> list[int]:
    """Check every entry, manifest and checksum of the archive `path` without writing, and return its version ids.

    Raises:
        The errors of `open_archive` and `stage_archived_version`.
    """
    path = Path(path)
    with open_archive(path) as (tar, contents):
        for archived in contents.versions:
            stage_archived_version(path, tar, archived, None)
    return [archived.source_id for archived in contents.versions]


def imported_manifest(contents: ArchiveContents, archived: ArchivedVersion, new_ids: dict[int, int]) -> tuple[dict, dict]:
    """Return (caller-owned manifest keys, "imported_from" record) for importing `archived`.

    `new_ids` maps the source ids imported so far to their new ids, for rewriting lineage.
    """
    manifest = archived.manifest
    user_manifest = {key: value for key, value in manifest.items() if key not in RESERVED_KEYS}
    lineage = {key: manifest[key] for key in LINEAGE_KEYS if key in manifest}
    if "parent" in user_manifest:
        user_manifest["parent"] = new_ids.get(manifest["parent"])
    if "parents" in user_manifest:
        user_manifest["parents"] = [new_ids[item] for item in manifest["parents"] if item in new_ids]
    source = contents.index["source"]
    imported_from = {
        "registry": source["registry"],
        "host": source.get("host"),
        "id": archived.source_id,
        "created": manifest["created"],
        "lineage": lineage,
    }
    return user_manifest, imported_from


def _hash_stream(reader: BinaryIO) -> tuple[str, int]:
    digest = hashlib.sha256()
    size_bytes = 0
    while chunk := reader.read(COPY_CHUNK_BYTES):
        digest.update(chunk)
        size_bytes += len(chunk)
    return digest.hexdigest(), size_bytes


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    with open(path, "rb") as reader:
        info = tarfile.TarInfo(name)
        info.size = os.fstat(reader.fileno()).st_size
        info.mode = 0o644
        info.mtime = int(time.time())
        tar.addfile(info, reader)


def _check_members(path: Path, tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """Return {entry name: entry} for the regular files, after rejecting every disallowed entry."""
    problems, files, seen = [], {}, set()
    for member in tar.getmembers():
        name = member.name
        problem = _entry_problem(member)
        if problem is None and name in seen:
            problem = "appears twice"
        seen.add(name)
        if problem:
            problems.append(f"entry {name!r} {problem}")
        elif member.isreg():
            files[name] = member
    if problems:
        listed_problems = "; ".join(problems[:MAX_LISTED_PROBLEMS])
        more = f" and {len(problems) - MAX_LISTED_PROBLEMS} more" if len(problems) > MAX_LISTED_PROBLEMS else ""
        raise RegistryError(
            f"Cannot import {path}: {listed_problems}{more}. An archive may contain only regular files under "
            f"versions/<id>/ and {ARCHIVE_INDEX}, so pass an unaltered archive written by export."
        )
    return files


def _entry_problem(member: tarfile.TarInfo) -> str | None:
    name = member.name
    parts = name.split("/")
    if name.startswith("/"):
        return "has an absolute path"
    if ".." in parts:
        return "has '..' in its path"
    if "\\" in name or "\x00" in name or "" in parts or "." in parts:
        return "is not a plain relative path"
    if member.issym():
        return f"is a symlink to {member.linkname!r}"
    if member.islnk():
        return f"is a hard link to {member.linkname!r}"
    if member.ischr() or member.isblk():
        return "is a device file"
    if member.isfifo():
        return "is a FIFO"
    if not (member.isreg() or member.isdir()):
        return "is not a regular file or folder"
    if member.isdir():
        if parts == ["versions"] or (len(parts) == 2 and parts[0] == "versions" and _folder_id(parts[1])):
            return None
        return "is a folder outside versions/<id>/"
    if parts == [ARCHIVE_INDEX]:
        return None
    if len(parts) != 3 or parts[0] != "versions" or _folder_id(parts[1]) is None:
        return "lies outside versions/<id>/"
    if parts[2] == MANIFEST_NAME:
        return None
    if check_file_name(parts[2]):
        return "does not end in a plain file name"
    if pickle_format_problem(parts[2]):
        return "has a pickle-based format, which the registry never stores or loads"
    return None


def _folder_id(name: str) -> int | None:
    if not (name.isascii() and name.isdigit()):
        return None
    version_id = int(name)
    if 1 <= version_id <= MAX_VERSION_ID and name == f"{version_id:06d}":
        return version_id
    return None


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    with tar.extractfile(member) as reader:
        return reader.read()


def _read_index(path: Path, tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> dict:
    if ARCHIVE_INDEX not in members:
        raise RegistryError(
            f"Cannot import {path}: it has no {ARCHIVE_INDEX}, so it was not written by export; "
            "export the versions with `adapters export`."
        )
    try:
        index = json.loads(_read_member(tar, members[ARCHIVE_INDEX]))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RegistryError(f"Cannot import {path}: {ARCHIVE_INDEX} is not valid JSON ({error}).") from None
    format_version = index.get("format_version") if isinstance(index, dict) else None
    if isinstance(format_version, int) and format_version > FORMAT_VERSION:
        raise RegistryError(
            f"Cannot import {path}: it was written with format_version {format_version}, but this "
            f"toolkit reads format_version {FORMAT_VERSION} or older; upgrade the toolkit to import it."
        )
    source = index.get("source") if isinstance(index, dict) else None
    if (
        not isinstance(index, dict)
        or index.get("kind") != ARCHIVE_KIND
        or not isinstance(format_version, int)
        or not isinstance(source, dict)
        or not isinstance(source.get("registry"), str)
        or not isinstance(index.get("versions"), list)
    ):
        raise RegistryError(
            f"Cannot import {path}: {ARCHIVE_INDEX} is not an export index (it needs 'kind' "
            f"{ARCHIVE_KIND!r}, 'format_version', 'source' and 'versions'); export the versions again."
        )
    return index


def _read_versions(
    path: Path, tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], index: dict
) -> list[ArchivedVersion]:
    archived: dict[int, ArchivedVersion] = {}
    for name, member in members.items():
        if name == ARCHIVE_INDEX:
            continue
        _, folder, file_name = name.split("/")
        version = archived.setdefault(_folder_id(folder), ArchivedVersion(_folder_id(folder)))
        if file_name != MANIFEST_NAME:
            version.members[file_name] = member
    if not archived:
        raise RegistryError(f"Cannot import {path}: it contains no versions; export at least one version.")
    if sorted(archived) != sorted(index["versions"]):
        raise RegistryError(
            f"Cannot import {path}: {ARCHIVE_INDEX} lists versions {index['versions']}, but the archive "
            f"contains versions {sorted(archived)}; export the versions again."
        )
    for version_id, version in sorted(archived.items()):
        manifest_name = f"versions/{version_id:06d}/{MANIFEST_NAME}"
        if manifest_name not in members:
            raise RegistryError(f"Cannot import {path}: {manifest_name} is missing; export the version again.")
        version.manifest = _parse_archived_manifest(path, tar, members[manifest_name], version)
    return [archived[version_id] for version_id in sorted(archived)]


def _parse_archived_manifest(path: Path, tar: tarfile.TarFile, member: tarfile.TarInfo, version: ArchivedVersion) -> dict:
    try:
        manifest = parse_manifest(_read_member(tar, member), f"{path}:{member.name}")
    except RegistryError as error:
        raise RegistryError(f"Cannot import {path}: {error}") from None
    if manifest["id"] != version.source_id:
        raise RegistryError(
            f"Cannot import {path}: {member.name} records id {manifest['id']}, not {version.source_id}; "
            "export the version again."
        )
    listed, present = set(manifest["files"]), set(version.members)
    if listed != present:
        details = [f"{name!r} is missing" for name in sorted(listed - present)]
        details += [f"{name!r} is not in its manifest" for name in sorted(present - listed)]
        raise RegistryError(
            f"Cannot import {path}: version {version.source_id} does not match its manifest: "
            f"{'; '.join(details)}; export the version again."
        )
    return manifest
