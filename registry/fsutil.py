"""Durable file operations: atomic JSON writes, fsynced appends and hashed copies.

A write is durable once the data and the directory entry that names it have both been
fsynced. Every helper that writes fsyncs the file. `write_json_atomic` and a first
`append_jsonl` also fsync the directory, while `copy_and_hash`, `copy_stream_and_hash` and
`write_new_file` leave that to the caller, which fsyncs the folder once after writing all
of its files.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import RegistryError

logger = logging.getLogger(__name__)

COPY_CHUNK_BYTES = 1 << 20

# Unreadable .jsonl lines already logged by this process, so each one is warned about once.
_warned_lines: set[tuple[str, int]] = set()


def fsync_dir(path: Path) -> None:
    """Fsync a directory so that entries created, renamed or removed in it are durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as error:
        # Some file systems (certain network mounts) do not support fsync on a directory.
        if error.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: object, temp_path: Path) -> None:
    """Replace `path` with `data` as JSON so that readers see the old or the new file, never a mix.

    `temp_path` must be on the same file system as `path`. The data is written to it,
    fsynced, renamed over `path` with os.replace, and the directory of `path` is fsynced.
    """
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    try:
        with open(temp_path, "x", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def read_json_object(path: Path, what: str) -> dict:
    """Read a JSON file that must contain an object.

    Raises:
        RegistryError: the file is missing, unreadable, not JSON, or not an object.
            `what` names the file's role in the message.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise RegistryError(f"{what} is missing: {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RegistryError(f"{what} is unreadable: {path}: {_one_line(error)}.") from error
    if not isinstance(data, dict):
        raise RegistryError(
            f"{what} is invalid: {path} contains a JSON {type(data).__name__}, expected an object."
        )
    return data


def append_jsonl(path: Path, record: dict) -> None:
    """Append `record` as one JSON line to `path` and fsync it.

    If the file ends without a newline, because an earlier append was cut short by a crash,
    the record starts on a fresh line so that the torn line stays separate. The caller must
    hold the registry lock.
    """
    line = json.dumps(record, sort_keys=True).encode("utf-8") + b"\n"
    created = not path.exists()
    with open(path, "ab+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size > 0:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                line = b"\n" + line
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
    if created:
        fsync_dir(path.parent)


def read_jsonl(path: Path) -> list[dict]:
    """Read every JSON-object line of `path`, oldest first, or nothing if the file is missing.

    Lines that are not a JSON object are skipped with a warning. Such a line is normally
    a torn append left by a crash, which never completed and so carries no record.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    records = []
    for line_number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            _warn_skipped_line(path, line_number)
    return records


def copy_and_hash(source: Path, destination: Path) -> tuple[str, int]:
    """Copy `source` to the new file `destination`, fsync it, and return (sha256 hex, size in bytes).

    The hash covers the bytes written, so it matches the copy even if `source` changes
    during the copy.
    """
    with open(source, "rb") as reader:
        return copy_stream_and_hash(reader, destination)


def copy_stream_and_hash(reader: BinaryIO, destination: Path) -> tuple[str, int]:
    """Copy the rest of the binary stream `reader` to the new file `destination`, fsync it, and hash it.

    Returns (sha256 hex of the bytes written, size in bytes). `destination` must not exist.
    """
    digest = hashlib.sha256()
    size_bytes = 0
    with open(destination, "xb") as writer:
        while chunk := reader.read(COPY_CHUNK_BYTES):
            digest.update(chunk)
            writer.write(chunk)
            size_bytes += len(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    return digest.hexdigest(), size_bytes


def hash_file(path: Path) -> tuple[str, int]:
    """Return the sha256 hex digest and the size in bytes of the file at `path`."""
    digest = hashlib.sha256()
    size_bytes = 0
    with open(path, "rb") as reader:
        while chunk := reader.read(COPY_CHUNK_BYTES):
            digest.update(chunk)
            size_bytes += len(chunk)
    return digest.hexdigest(), size_bytes


def _warn_skipped_line(path: Path, line_number: int) -> None:
    key = (str(path), line_number)
    if key in _warned_lines:
        return
    _warned_lines.add(key)
    logger.warning(
        "Skipped line %d of %s because it is not a JSON object (usually an append cut short by a crash)",
        line_number,
        path,
    )


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def write_new_file(path: Path, data: bytes) -> None:
    """Write `data` to the new file `path` and fsync the file but not its directory."""
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


@contextlib.contextmanager
def storage_errors(root: Path, action: str) -> Iterator[None]:
    """Turn the OSErrors a user can fix (read-only, no permission, disk full) into a one-line RegistryError.

    `action` completes "Cannot ..." in the message, for example "publish to registry /r".
    Other OSErrors, such as an I/O error, pass through unchanged.
    """
    try:
        yield
    except OSError as error:
        fix = _STORAGE_FIXES.get(error.errno)
        if fix is None:
            raise
        outside_root = error.filename is not None and not Path(error.filename).is_relative_to(root)
        if error.errno in _PERMISSION_ERRNOS and outside_root:
            fix = "check the permissions of {filename}"
        where = f" ({error.filename})" if error.filename else ""
        raise RegistryError(
            f"Cannot {action}: {error.strerror}{where}; {fix.format(root=root, filename=error.filename)}."
        ) from error


_PERMISSION_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)
_NOT_WRITABLE = "make {root} writable (or mount it read-write), or use another folder"
_DISK_FULL = "free space on the file system of {root}, or raise its quota, then retry"
_STORAGE_FIXES = {
    errno.EROFS: _NOT_WRITABLE,
    errno.EACCES: _NOT_WRITABLE,
    errno.EPERM: _NOT_WRITABLE,
    errno.ENOSPC: _DISK_FULL,
    errno.EDQUOT: _DISK_FULL,
    errno.EFBIG: "raise the file size limit of this process (ulimit -f), then retry",
}
