"""Staging folders: where a publish copies files before it renames them into versions/.

Every entry under root/.staging/ is named "<pid>.<host tag>.<random hex>", optionally with
a suffix such as ".tmp". The pid and the host tag identify the process that created it, so
`remove_dead_entries` can tell the leftovers of a crashed publish from a publish that is
still running.

Test hook: when the environment variable REGISTRY_TEST_DELAY_S is set to a number of
seconds, `pause_between_steps` sleeps that long between the steps of a publish or a delete,
so a test can kill the process at a chosen step. It is unset, and costs nothing, otherwise.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import socket
import time
from pathlib import Path

from .errors import RegistryError
from .fsutil import copy_and_hash, fsync_dir
from .manifest import check_file_name, pickle_format_problem

logger = logging.getLogger(__name__)

TEST_DELAY_ENV = "REGISTRY_TEST_DELAY_S"


def pause_between_steps() -> None:
    """Sleep REGISTRY_TEST_DELAY_S seconds if that variable is set, so tests can kill a publish mid-way."""
    delay = os.environ.get(TEST_DELAY_ENV)
    if delay:
        time.sleep(float(delay))


def host_tag() -> str:
    """Return 8 hex digits derived from this machine's host name."""
    return hashlib.sha256(socket.gethostname().encode("utf-8")).hexdigest()[:8]


def staging_entry_name(pid: int | None = None, suffix: str = "") -> str:
    """Return a new, unique staging entry name owned by `pid` (this process if None)."""
    owner = os.getpid() if pid is None else pid
    return f"{owner}.{host_tag()}.{secrets.token_hex(8)}{suffix}"


def list_source_files(source_dir: Path) -> list[Path]:
    """List the regular files directly inside `source_dir`, sorted by name.

    Raises:
        RegistryError: `source_dir` is not a folder, is empty, or contains a subfolder,
            a symlink, another non-regular entry, or a reserved name. The message lists
            every offending entry.
    """
    if not source_dir.is_dir():
        raise RegistryError(f"Cannot publish {source_dir}: it is not an existing folder.")
    files, problems = [], []
    for entry in sorted(os.scandir(source_dir), key=lambda item: item.name):
        if entry.is_symlink():
            problems.append(f"{entry.name!r} is a symlink")
        elif entry.is_dir():
            problems.append(f"{entry.name!r} is a subfolder")
        elif not entry.is_file():
            problems.append(f"{entry.name!r} is not a regular file")
        elif name_problem := check_file_name(entry.name) or pickle_format_problem(entry.name):
            problems.append(name_problem)
        else:
            files.append(Path(entry.path))
    if problems:
        raise RegistryError(
            f"Cannot publish {source_dir}: {'; '.join(problems)}. A version contains only the regular "
            "files directly inside the source folder, so move, rename or convert these entries."
        )
    if not files:
        raise RegistryError(f"Cannot publish {source_dir}: the folder contains no files.")
    return files


def stage_files(files: list[Path], staging_dir: Path) -> dict[str, dict]:
    """Copy `files` into the existing folder `staging_dir`, fsync them, and return their manifest entries.

    Returns {file name: {"sha256": hex digest, "bytes": size}}.
    """
    entries = {}
    for source in files:
        digest, size_bytes = copy_and_hash(source, staging_dir / source.name)
        entries[source.name] = {"sha256": digest, "bytes": size_bytes}
        pause_between_steps()
    fsync_dir(staging_dir)
    return entries


def remove_dead_entries(staging_root: Path) -> list[Path]:
    """Remove the staging entries whose owning process on this host has exited and return their paths.

    Entries of a live process, of another host, or with a name this module did not make
    are kept. A pid that the system has since reused for another live process keeps its
    entry too, which leaves a leftover but never removes a running publish.
    """
    if not staging_root.is_dir():
        return []
    removed = []
    this_host = host_tag()
    for entry in sorted(staging_root.iterdir()):
        owner = _parse_owner(entry.name)
        if owner is None:
            logger.warning("Kept %s during gc: its name does not identify an owning process", entry)
            continue
        pid, tag = owner
        # NOTE: a publisher in another pid namespace with the same host name, such as a
        # container that reuses the host's name, looks dead here. Run gc where the publishers run.
        if tag != this_host or _process_is_alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry)
        logger.info("Removed staging leftover %s of exited process %d", entry, pid)
    if removed:
        fsync_dir(staging_root)
    return removed


def _parse_owner(name: str) -> tuple[int, str] | None:
    parts = name.split(".")
    if len(parts) < 3 or not parts[0].isascii() or not parts[0].isdigit():
        return None
    return int(parts[0]), parts[1]


def _process_is_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        # The process exists but belongs to another user.
        return True
    return True
