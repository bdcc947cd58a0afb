"""The manifest of a stored version and the `Version` handle that carries it.

A manifest is the caller's JSON object plus keys that the registry owns:

- "id": the version id (int, from 1).
- "created": the publish or import time in UTC, ISO-8601.
- "format_version": the registry format that wrote it (int).
- "files": {file name: {"sha256": lower-case hex digest, "bytes": size}} for every file
  in the version folder except manifest.json.
- "manifest_sha256" (format 2 and later): the sha256 of the manifest's canonical JSON
  (sorted keys, no whitespace, ASCII) without this key.
- "imported_from" (imported versions only): {"registry", "host", "id", "created",
  "lineage"}, where the version came from (see registry.archive).

The caller may set any other key. Two of them are lineage keys and are checked on publish
and on read: "parent" (null or a version id) and "parents" (a list of version ids). A
"manifest_sha256" that the caller passes is replaced by the recomputed one, so the manifest
of a stored version can be published again once "id", "created", "format_version" and
"files" are removed.

From format 2 on, manifest.json must be exactly the bytes `serialize_manifest` writes, and
"manifest_sha256" must match. So a changed, added or removed byte anywhere in the file is
detected: it breaks the JSON, changes a value and so the digest, or changes the layout.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RegistryError

FORMAT_VERSION = 2
MANIFEST_NAME = "manifest.json"
RESERVED_KEYS = ("id", "created", "format_version", "files", "imported_from")
LINEAGE_KEYS = ("parent", "parents")
# Suffixes of formats that load through pickle (torch.save, pickle, joblib). The registry
# stores weights as safetensors only, so these are rejected on publish and import and fail
# verification, and no loader can fall back to unpickling a stored file.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class InvalidManifestError(RegistryError):
    """A manifest.json is unreadable, does not match the manifest schema, or changed after it was written."""


@dataclass(frozen=True)
class Version:
    """A complete stored version: its id, its folder and its parsed manifest.

    `manifest` is the registry's own copy. Changing it changes neither the stored file
    nor other `Version` objects. The hash covers `id` and `path` only, because a dict
    cannot be hashed.
    """

    id: int
    path: Path
    manifest: dict = field(hash=False)

    def file(self, name: str) -> Path:
        """Return the path of the stored file `name`.

        Raises:
            RegistryError: `name` is not listed in the manifest's "files".
        """
        files = self.manifest["files"]
        if name not in files:
            listed = ", ".join(sorted(files)) or "none"
            raise RegistryError(
                f"File {name!r} is not in version {self.id}; files in its manifest: {listed}."
            )
        return self.path / name


def check_file_name(name: str) -> str | None:
    """Return why `name` cannot be a stored file name, or None if it can."""
    if name == MANIFEST_NAME:
        return f"{name!r} is reserved for the manifest the registry writes"
    if name in ("", ".", "..") or "/" in name or "\\" in name or _CONTROL_RE.search(name):
        return f"{name!r} is not a plain file name"
    return None


def pickle_format_problem(name: str) -> str | None:
    """Return why the file `name` is rejected as a pickle-based weight format, or None if it is not one."""
    if name.lower().endswith(PICKLE_SUFFIXES):
        return (
            f"{name!r} has a pickle-based format, which the registry never stores or loads; "
            "save the weights as safetensors"
        )
    return None


def serialize_manifest(manifest: dict) -> bytes:
    """Return the exact bytes of manifest.json for `manifest`: sorted keys, 2-space indent, ASCII."""
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("ascii")


def manifest_digest(manifest: dict) -> str:
    """Return the sha256 hex digest of `manifest`'s canonical JSON without "manifest_sha256"."""
    content = {key: value for key, value in manifest.items() if key != "manifest_sha256"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def build_manifest(
    user_manifest: dict, version_id: int, created: str, files: dict, imported_from: dict | None = None
) -> dict:
    """Return a new manifest: a JSON copy of `user_manifest` plus the registry-owned keys.

    `user_manifest` must already have passed `check_user_manifest`. It is not modified.
    """
    manifest = json.loads(json.dumps(user_manifest))
    manifest.pop("manifest_sha256", None)
    manifest["id"] = version_id
    manifest["created"] = created
    manifest["format_version"] = FORMAT_VERSION
    manifest["files"] = {name: dict(entry) for name, entry in sorted(files.items())}
    if imported_from is not None:
        manifest["imported_from"] = json.loads(json.dumps(imported_from))
    manifest["manifest_sha256"] = manifest_digest(manifest)
    return manifest


def check_user_manifest(user_manifest: object) -> list[str]:
    """Return every problem that stops `user_manifest` from being published, or an empty list.

    The manifest must be a dict that JSON can encode, must not set a key the registry owns,
    and its lineage keys must name version ids.
    """
    if not isinstance(user_manifest, dict):
        return [f"the manifest must be a dict, got {type(user_manifest).__name__}"]
    problems = []
    reserved = [key for key in RESERVED_KEYS if key in user_manifest]
    if reserved:
        problems.append(f"the manifest sets {reserved}, which the registry writes itself; remove them")
    try:
        json.dumps(user_manifest)
    except (TypeError, ValueError) as error:
        problems.append(f"the manifest cannot be encoded as JSON ({error})")
    return problems + _lineage_problems(user_manifest)


def read_manifest(path: Path) -> dict:
    """Read and validate the manifest.json at `path`, which must not be a symlink.

    Raises:
        RegistryError: the manifest was written by a newer registry format.
        InvalidManifestError: the file is missing, a symlink or unreadable, does not match
            the schema, or its bytes or digest changed. The message lists every problem.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise InvalidManifestError(f"Manifest {path} is missing.") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise InvalidManifestError(f"Manifest {path} is a symlink, which the registry never follows.") from None
        raise InvalidManifestError(f"Manifest {path} is unreadable: {error.strerror}.") from error
    try:
        with os.fdopen(descriptor, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise InvalidManifestError(f"Manifest {path} is unreadable: {error.strerror}.") from error
    return parse_manifest(raw, str(path))


def parse_manifest(raw: bytes, where: str) -> dict:
    """Parse and validate the bytes of a manifest.json; `where` names it in messages.

    Raises:
        RegistryError: the manifest was written by a newer registry format. The message
            names both format versions.
        InvalidManifestError: the bytes are not a JSON object, do not match the schema, or
            (format 2 and later) differ from what the registry writes or fail the digest.
    """
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidManifestError(f"Manifest {where} is not valid JSON: {error}.") from None
    if not isinstance(manifest, dict):
        raise InvalidManifestError(
            f"Manifest {where} contains a JSON {type(manifest).__name__}, expected an object."
        )

    format_version = manifest.get("format_version")
    if _is_int(format_version) and format_version > FORMAT_VERSION:
        raise RegistryError(
            f"Manifest {where} has format_version {format_version}, but this toolkit reads "
            f"format_version {FORMAT_VERSION} or older; upgrade the toolkit to read it."
        )
    problems = _manifest_problems(manifest)
    if problems:
        raise InvalidManifestError(f"Manifest {where} is invalid: {'; '.join(problems)}.")
    # NOTE: format 1 manifests carry no digest, so an edit that keeps one valid goes unnoticed.
    if format_version >= 2:
        _check_unchanged(manifest, raw, where)
    return manifest


def _check_unchanged(manifest: dict, raw: bytes, where: str) -> None:
    digest = manifest_digest(manifest)
    if manifest.get("manifest_sha256") != digest:
        raise InvalidManifestError(
            f"Manifest {where} changed after it was written: its content has sha256 {digest[:12]}..., "
            f"but 'manifest_sha256' records {str(manifest.get('manifest_sha256'))[:12]}...."
        )
    if raw != serialize_manifest(manifest):
        raise InvalidManifestError(
            f"Manifest {where} changed after it was written: its bytes differ from the layout the "
            "registry writes, although its values are intact."
        )


def _manifest_problems(manifest: dict) -> list[str]:
    problems = []
    if not _is_int(manifest.get("id")) or manifest["id"] < 1:
        problems.append(f"'id' must be an int of 1 or more, got {manifest.get('id')!r}")
    if not isinstance(manifest.get("created"), str):
        problems.append(f"'created' must be a string, got {manifest.get('created')!r}")
    format_version = manifest.get("format_version")
    if not _is_int(format_version) or format_version < 1:
        problems.append(f"'format_version' must be an int of 1 or more, got {format_version!r}")
        return problems
    if format_version >= 2:
        digest = manifest.get("manifest_sha256")
        if not isinstance(digest, str) or _SHA256_RE.fullmatch(digest) is None:
            problems.append(f"'manifest_sha256' must be 64 lower-case hex digits, got {digest!r}")
        imported_from = manifest.get("imported_from")
        if imported_from is not None and not _is_import_record(imported_from):
            problems.append(
                "'imported_from' must be an object with 'registry' (string) and 'id' (int of 1 or "
                f"more), got {imported_from!r}"
            )
    return problems + _lineage_problems(manifest) + _files_problems(manifest.get("files"))


def _files_problems(files: object) -> list[str]:
    if not isinstance(files, dict):
        return [f"'files' must be an object, got {type(files).__name__}"]
    problems = []
    for name, entry in files.items():
        name_problem = check_file_name(name)
        if name_problem:
            problems.append(f"files: {name_problem}")
        if not isinstance(entry, dict):
            problems.append(f"files[{name!r}] must be an object with 'sha256' and 'bytes'")
            continue
        digest = entry.get("sha256")
        if not isinstance(digest, str) or _SHA256_RE.fullmatch(digest) is None:
            problems.append(f"files[{name!r}]['sha256'] must be 64 lower-case hex digits, got {digest!r}")
        size_bytes = entry.get("bytes")
        if not _is_int(size_bytes) or size_bytes < 0:
            problems.append(f"files[{name!r}]['bytes'] must be an int of 0 or more, got {size_bytes!r}")
    return problems


def _lineage_problems(manifest: dict) -> list[str]:
    problems = []
    parent = manifest.get("parent")
    if parent is not None and not _is_version_id(parent):
        problems.append(f"'parent' must be null or a version id (int of 1 or more), got {parent!r}")
    parents = manifest.get("parents")
    if parents is not None and (
        not isinstance(parents, list) or not all(_is_version_id(item) for item in parents)
    ):
        problems.append(f"'parents' must be a list of version ids (ints of 1 or more), got {parents!r}")
    return problems


def lineage_ids(manifest: dict) -> set[int]:
    """Return the version ids that `manifest` names in "parent" and "parents"."""
    ids = set(manifest.get("parents") or [])
    if manifest.get("parent") is not None:
        ids.add(manifest["parent"])
    return ids


def _is_import_record(value: object) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("registry"), str)
        and _is_version_id(value.get("id"))
    )


def _is_version_id(value: object) -> bool:
    return _is_int(value) and value >= 1


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
