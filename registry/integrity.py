"""Verification of a stored version's files against its manifest."""

from __future__ import annotations

import logging
import os
import stat
import time

from .errors import IntegrityError
from .fsutil import hash_file
from .manifest import MANIFEST_NAME, Version

logger = logging.getLogger(__name__)


def verify_files(version: Version) -> None:
    """Recompute the size and sha256 of every file of `version` and compare them with its manifest.

    Raises:
        IntegrityError: a listed file changed, was truncated, is missing or is not a regular
            file, or the folder contains a file the manifest does not list. The message names
            the version and every offending file.
    """
    started_s = time.monotonic()
    problems, details = _check_files(version)
    if problems:
        raise IntegrityError(
            f"Version {version.id} at {version.path} failed verification: {'; '.join(details)}. "
            "Restore these files from a backup or publish the version again.",
            version.id,
            problems,
        )
    logger.debug("Verified version %d in %.2f s", version.id, time.monotonic() - started_s)


def _check_files(version: Version) -> tuple[dict[str, str], list[str]]:
    """Compare the files of `version` with its manifest and return ({name: problem}, message parts)."""
    problems, details = {}, []
    expected_files = version.manifest["files"]
    for name, expected in sorted(expected_files.items()):
        try:
            file_stat = os.lstat(version.path / name)
        except FileNotFoundError:
            problems[name] = "missing"
            details.append(f"{name!r} is missing")
            continue
        if not stat.S_ISREG(file_stat.st_mode):
            problems[name] = "not a regular file"
            details.append(f"{name!r} is not a regular file")
            continue
        size_bytes = file_stat.st_size
        if size_bytes != expected["bytes"]:
            problems[name] = "truncated" if size_bytes < expected["bytes"] else "size changed"
            verb = "is truncated" if size_bytes < expected["bytes"] else "changed size"
            details.append(f"{name!r} {verb} ({size_bytes} bytes, expected {expected['bytes']})")
            continue
        digest, _ = hash_file(version.path / name)
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
