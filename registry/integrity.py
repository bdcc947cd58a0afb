"""Verification of a stored version's files against its manifest."""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import IntegrityError, RegistryError
from .fsutil import hash_file
from .manifest import MANIFEST_NAME, InvalidManifestError, Version, pickle_format_problem, read_manifest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionCheck:
    """The result of checking one version folder: {file name: problem} and one message part per problem.

    A problem is one of "changed", "truncated", "size changed", "missing", "symlink",
    "not a regular file", "unexpected extra file", "pickle format" or, for manifest.json,
    "invalid manifest" and "newer format". A symlinked version folder is reported under the
    folder's own name.
    """

    id: int
    path: Path
    problems: dict[str, str] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the version matched its manifest."""
        return not self.problems


def verify_files(version: Version) -> None:
    """Recompute the size and sha256 of every file of `version` and compare them with its manifest.

    Raises:
        IntegrityError: a listed file changed, was truncated, is missing, is a symlink or not
            a regular file, or has a pickle-based format, or the folder contains a file the
            manifest does not list. The message names the version and every offending file.
    """
    started_s = time.monotonic()
    problems, details = _check_files(version)
    if problems:
        raise integrity_error(VersionCheck(version.id, version.path, problems, details))
    logger.debug("Verified version %d in %.2f s", version.id, time.monotonic() - started_s)


def check_version_folder(version_id: int, path: Path) -> VersionCheck:
    """Check the folder of version `version_id` without raising: its manifest, then every file."""
    if path.is_symlink():
        detail = f"the version folder is a symlink to {os.readlink(path)!r}, which the registry never follows"
        return VersionCheck(version_id, path, {path.name: "symlink"}, [detail])
    try:
        manifest = read_manifest(path / MANIFEST_NAME)
    except InvalidManifestError as error:
        return VersionCheck(version_id, path, {MANIFEST_NAME: "invalid manifest"}, [str(error).rstrip(".")])
    except RegistryError as error:
        return VersionCheck(version_id, path, {MANIFEST_NAME: "newer format"}, [str(error).rstrip(".")])
    if manifest["id"] != version_id:
        detail = f"{MANIFEST_NAME!r} records id {manifest['id']}, not {version_id}"
        return VersionCheck(version_id, path, {MANIFEST_NAME: "invalid manifest"}, [detail])
    problems, details = _check_files(Version(version_id, path, manifest))
    return VersionCheck(version_id, path, problems, details)


def integrity_error(check: VersionCheck) -> IntegrityError:
    """Build the IntegrityError for a failed check, naming the version and every offending file."""
    return IntegrityError(
        f"Version {check.id} at {check.path} failed verification: {'; '.join(check.details)}. "
        "Restore these files from a backup, or delete the version and publish it again.",
        check.id,
        check.problems,
    )


def _check_files(version: Version) -> tuple[dict[str, str], list[str]]:
    """Compare the files of `version` with its manifest and return ({name: problem}, message parts)."""
    problems, details = {}, []
    expected_files = version.manifest["files"]
    for name, expected in sorted(expected_files.items()):
        path = version.path / name
        try:
            file_stat = os.lstat(path)
        except FileNotFoundError:
            problems[name] = "missing"
            details.append(f"{name!r} is missing")
            continue
        if stat.S_ISLNK(file_stat.st_mode):
            problems[name] = "symlink"
            details.append(f"{name!r} is a symlink to {os.readlink(path)!r}, which the registry never follows")
            continue
        if not stat.S_ISREG(file_stat.st_mode):
            problems[name] = "not a regular file"
            details.append(f"{name!r} is not a regular file")
            continue
        if pickle_problem := pickle_format_problem(name):
            problems[name] = "pickle format"
            details.append(pickle_problem)
            continue
        size_bytes = file_stat.st_size
        if size_bytes != expected["bytes"]:
            problems[name] = "truncated" if size_bytes < expected["bytes"] else "size changed"
            verb = "is truncated" if size_bytes < expected["bytes"] else "changed size"
            details.append(f"{name!r} {verb} ({size_bytes} bytes, expected {expected['bytes']})")
            continue
        digest, _ = hash_file(path)
        if digest != expected["sha256"]:
            problems[name] = "changed"
            details.append(
                f"{name!r} changed (sha256 {digest[:12]}..., expected {expected['sha256'][:12]}...)"
            )
    for name in sorted(os.listdir(version.path)):
        if name != MANIFEST_NAME and name not in expected_files:
            problems[name] = "unexpected extra file"
            details.append(f"{name!r} is an unexpected extra file")
    return problems, details
