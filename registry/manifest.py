"""The manifest of a stored version and the `Version` handle that carries it.

A manifest is the caller's JSON object plus four keys that the registry owns:

- "id": the version id (int, from 1).
- "created": the publish time in UTC, ISO-8601.
- "format_version": the registry format that wrote it (int).
- "files": {file name: {"sha256": lower-case hex digest, "bytes": size}} for every file
  in the version folder except manifest.json.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RegistryError
from .fsutil import read_json_object

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
RESERVED_KEYS = ("id", "created", "format_version", "files")

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


class InvalidManifestError(RegistryError):
    """A manifest.json is unreadable or lacks a required key of the right type."""


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
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\x00" in name:
        return f"{name!r} is not a plain file name"
    return None


def build_manifest(user_manifest: dict, version_id: int, created: str, files: dict) -> dict:
    """Return a new manifest: a JSON copy of `user_manifest` plus the registry-owned keys.

    `user_manifest` must already have passed `check_user_manifest`. It is not modified.
    """
    manifest = json.loads(json.dumps(user_manifest))
    manifest["id"] = version_id
    manifest["created"] = created
    manifest["format_version"] = FORMAT_VERSION
    manifest["files"] = {name: dict(entry) for name, entry in sorted(files.items())}
    return manifest


def check_user_manifest(user_manifest: object) -> list[str]:
    """Return every problem that stops `user_manifest` from being published, or an empty list.

    The manifest must be a dict that JSON can encode and must not set a key the registry owns.
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
    return problems


def read_manifest(path: Path) -> dict:
    """Read and validate the manifest.json at `path`.

    Raises:
        RegistryError: the manifest was written by a newer registry format.
        InvalidManifestError: the file is unreadable or a required key is missing or
            of the wrong type. The message lists every problem.
    """
    try:
        manifest = read_json_object(path, "Manifest")
    except RegistryError as error:
        raise InvalidManifestError(str(error)) from error

    format_version = manifest.get("format_version")
    if _is_int(format_version) and format_version > FORMAT_VERSION:
        raise RegistryError(
            f"Manifest {path} has format_version {format_version}, but this toolkit reads "
            f"format_version {FORMAT_VERSION} or older; upgrade the toolkit to read it."
        )
    problems = _manifest_problems(manifest)
    if problems:
        raise InvalidManifestError(f"Manifest {path} is invalid: {'; '.join(problems)}.")
    return manifest


def _manifest_problems(manifest: dict) -> list[str]:
    problems = []
    if not _is_int(manifest.get("id")) or manifest["id"] < 1:
        problems.append(f"'id' must be an int of 1 or more, got {manifest.get('id')!r}")
    if not isinstance(manifest.get("created"), str):
        problems.append(f"'created' must be a string, got {manifest.get('created')!r}")
    if not _is_int(manifest.get("format_version")) or manifest["format_version"] < 1:
        problems.append(
            f"'format_version' must be an int of 1 or more, got {manifest.get('format_version')!r}"
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        problems.append(f"'files' must be an object, got {type(files).__name__}")
        return problems
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


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
