"""Tests of the versioned store in `registry`: publishing, verification, aliases, merges and gc."""

from __future__ import annotations

import copy
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import filelock
import pytest

from registry import (
    FORMAT_VERSION,
    AliasNotFoundError,
    IntegrityError,
    InvalidNameError,
    Registry,
    RegistryError,
    VersionNotFoundError,
)
from registry.staging import staging_entry_name

# sha256 of b"abc", written out so that the reference does not come from hashlib.
SHA256_OF_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def make_source(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry", create=True)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_source(tmp_path / "source", {"adapter.safetensors": b"abc", "config.json": b'{"r": 8}'})


def publish_n(registry: Registry, source: Path, count: int) -> list[int]:
    return [registry.publish(source, {"step": index}).id for index in range(count)]


# Opening and creating


def test_registry_imports_no_ml_packages():
    script = (
        "import sys, registry; "
        "print(sorted({name.split('.')[0] for name in sys.modules} "
        "& {'torch', 'peft', 'transformers', 'adapters'}))"
    )
    repo_root = Path(__file__).resolve().parents[1]
    output = subprocess.run(
        [sys.executable, "-c", script], cwd=repo_root, capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


def test_open_missing_registry_names_path_and_fix(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(RegistryError) as raised:
        Registry(missing)
    message = str(raised.value)
    assert str(missing) in message
    assert "create=True" in message
    assert not missing.exists()


def test_create_makes_documented_layout(tmp_path):
    root = tmp_path / "new"
    registry = Registry(root, create=True)
    assert registry.root == root
    for name in ("registry.json", "ids.json", "versions", ".staging"):
        assert (root / name).exists(), name
    settings = json.loads((root / "registry.json").read_text())
    assert settings == {"format_version": FORMAT_VERSION, "labels": None}
    assert Registry(root).versions() == []


def test_create_rejects_folder_of_other_files(tmp_path):
    (tmp_path / "holiday.jpg").write_bytes(b"\xff")
    with pytest.raises(RegistryError, match="holiday.jpg"):
        Registry(tmp_path, create=True)


def test_newer_registry_format_rejected(registry):
    settings_path = registry.root / "registry.json"
    settings_path.write_text(json.dumps({"format_version": FORMAT_VERSION + 1, "labels": None}))
    with pytest.raises(RegistryError) as raised:
        Registry(registry.root)
    assert str(FORMAT_VERSION + 1) in str(raised.value)
    assert "upgrade" in str(raised.value)


# Labels


def test_ensure_labels_fixes_first_set(registry):
    assert registry.labels is None
    assert registry.ensure_labels(["negative", "positive"]) == ["negative", "positive"]
    assert registry.ensure_labels(["cat", "dog", "bird"]) == ["negative", "positive"]
    assert Registry(registry.root).labels == ["negative", "positive"]


@pytest.mark.parametrize("labels", ["positive", [], ["a", ""], ["a", 3], ["a", "a"]])
def test_ensure_labels_rejects_invalid_set(registry, labels):
    with pytest.raises(RegistryError, match="Invalid label set"):
        registry.ensure_labels(labels)
    assert registry.labels is None


# Publishing


def test_publish_assigns_monotonic_ids(registry, source):
    assert publish_n(registry, source, 3) == [1, 2, 3]
    assert [version.id for version in registry.versions()] == [1, 2, 3]
    assert sorted(path.name for path in (registry.root / "versions").iterdir()) == [
        "000001",
        "000002",
        "000003",
    ]


def test_manifest_records_sha256_and_size(registry, source):
    version = registry.publish(source, {"method": "lora"})
    files = version.manifest["files"]
    assert files["adapter.safetensors"] == {"sha256": SHA256_OF_ABC, "bytes": 3}
    assert files["config.json"] == {"sha256": hashlib.sha256(b'{"r": 8}').hexdigest(), "bytes": 8}
    assert version.file("adapter.safetensors").read_bytes() == b"abc"

    stored = json.loads((version.path / "manifest.json").read_text())
    assert stored == version.manifest
    assert stored["id"] == 1
    assert stored["format_version"] == FORMAT_VERSION
    assert stored["method"] == "lora"
    created = datetime.fromisoformat(stored["created"])
    assert created.utcoffset() == timezone.utc.utcoffset(None)


def test_publish_leaves_caller_manifest_unchanged(registry, source):
    manifest = {"method": "lora", "metrics": {"accuracy": 0.9}, "parents": [1, 2]}
    snapshot = copy.deepcopy(manifest)
    version = registry.publish(source, manifest)
    assert manifest == snapshot
    version.manifest["metrics"]["accuracy"] = 0.0
    assert manifest["metrics"]["accuracy"] == 0.9
    assert registry.get(1).manifest["metrics"]["accuracy"] == 0.9


def test_publish_rejects_invalid_manifest(registry, source):
    with pytest.raises(RegistryError, match="'files'"):
        registry.publish(source, {"files": {}, "id": 7})
    with pytest.raises(RegistryError, match="JSON"):
        registry.publish(source, {"path": Path("x")})
    with pytest.raises(RegistryError, match="dict"):
        registry.publish(source, [("method", "lora")])
    assert registry.versions() == []


def test_stored_manifest_can_be_published_again(registry, source):
    first = registry.publish(source, {"method": "lora"})
    copied = {key: value for key, value in first.manifest.items() if key not in ("id", "created", "format_version", "files")}
    assert "manifest_sha256" in copied

    second = registry.publish(source, copied)

    assert second.manifest["method"] == "lora"
    assert second.manifest["manifest_sha256"] != first.manifest["manifest_sha256"]
    assert registry.get(second.id).manifest == second.manifest


@pytest.mark.parametrize("key", ["imported_from", "id", "files"])
def test_publish_rejects_registry_owned_key(registry, source, key):
    with pytest.raises(RegistryError, match=f"'{key}'"):
        registry.publish(source, {key: {"registry": "/elsewhere", "id": 1}})
    assert registry.versions() == []


def test_publish_rejects_non_file_entries(registry, tmp_path):
    source = make_source(tmp_path / "bad", {"adapter.safetensors": b"abc", "manifest.json": b"{}"})
    (source / "checkpoints").mkdir()
    (source / "link.bin").symlink_to(source / "adapter.safetensors")
    with pytest.raises(RegistryError) as raised:
        registry.publish(source, {})
    message = str(raised.value)
    for name in ("checkpoints", "link.bin", "manifest.json"):
        assert name in message
    assert "\n" not in message
    assert registry.versions() == []
    assert list((registry.root / ".staging").iterdir()) == []


def test_publish_rejects_missing_or_empty_source(registry, tmp_path):
    with pytest.raises(RegistryError, match="not an existing folder"):
        registry.publish(tmp_path / "absent", {})
    (tmp_path / "empty").mkdir()
    with pytest.raises(RegistryError, match="no files"):
        registry.publish(tmp_path / "empty", {})


def test_ids_not_reused_after_deleting_highest_version(registry, source):
    publish_n(registry, source, 3)
    for path in (registry.root / "versions" / "000003").iterdir():
        path.unlink()
    (registry.root / "versions" / "000003").rmdir()
    assert registry.publish(source, {}).id == 4
    assert [version.id for version in registry.versions()] == [1, 2, 4]


def test_failed_rename_consumes_id(registry, source, monkeypatch):
    def fail_rename(source_path, target_path):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr("registry.store.os.rename", fail_rename)
    with pytest.raises(OSError, match="simulated crash"):
        registry.publish(source, {})
    monkeypatch.undo()

    assert registry.versions() == []
    assert list((registry.root / ".staging").iterdir()) == []
    assert registry.publish(source, {}).id == 2


def test_publish_times_out_while_lock_held(tmp_path, source):
    root = tmp_path / "registry"
    Registry(root, create=True)
    impatient = Registry(root, lock_timeout_s=0.2)
    with filelock.FileLock(str(root / ".lock")):
        with pytest.raises(RegistryError, match="Timed out after 0.2 s"):
            impatient.publish(source, {})
    assert list((root / ".staging").iterdir()) == []
    assert impatient.publish(source, {}).id == 1


def test_folder_without_valid_manifest_not_listed(registry, source):
    publish_n(registry, source, 2)
    (registry.root / "versions" / "000002" / "manifest.json").write_text('{"id": 2}')
    (registry.root / "versions" / "000005").mkdir()
    assert [version.id for version in registry.versions()] == [1]
    with pytest.raises(IntegrityError, match="manifest.json") as raised:
        registry.get(2)
    assert raised.value.version_id == 2
    assert raised.value.problems == {"manifest.json": "invalid manifest"}
    assert registry.publish(source, {}).id == 6


def test_newer_manifest_format_rejected(registry, source):
    version = registry.publish(source, {})
    manifest = dict(version.manifest, format_version=FORMAT_VERSION + 1)
    (version.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RegistryError) as raised:
        registry.get(1)
    message = str(raised.value)
    assert f"format_version {FORMAT_VERSION + 1}" in message
    assert f"format_version {FORMAT_VERSION}" in message
    assert "upgrade the toolkit" in message


# Looking up versions


def test_get_accepts_int_digit_string_and_alias(registry, source):
    publish_n(registry, source, 2)
    registry.promote("production", 2)
    assert registry.get(2).id == 2
    assert registry.get("2").id == 2
    assert registry.get("production").id == 2
    assert registry.get(1).path == registry.root / "versions" / "000001"


def test_get_unknown_id_lists_existing_ids(registry, source):
    with pytest.raises(VersionNotFoundError, match="registry is empty"):
        registry.get(1)
    publish_n(registry, source, 2)
    with pytest.raises(VersionNotFoundError, match="Version 9 not found; existing versions: 1, 2"):
        registry.get(9)
    with pytest.raises(VersionNotFoundError):
        registry.get(0)


def test_get_unknown_alias_lists_aliases(registry, source):
    with pytest.raises(AliasNotFoundError, match="no aliases yet"):
        registry.get("production")
    publish_n(registry, source, 1)
    registry.promote("staging", 1)
    with pytest.raises(AliasNotFoundError, match="existing aliases: staging"):
        registry.get("production")


@pytest.mark.parametrize("ref", ["../x", "-1", "3a", "", " 3", 2.0, None, True])
def test_get_rejects_malformed_reference(registry, ref):
    with pytest.raises(InvalidNameError):
        registry.get(ref)


def test_version_is_frozen_and_hashable(registry, source):
    version = registry.publish(source, {})
    assert hash(version) == hash(registry.get(1))
    assert version == registry.get(1)
    with pytest.raises(AttributeError):
        version.id = 2


def test_version_file_rejects_unlisted_name(registry, source):
    version = registry.publish(source, {})
    with pytest.raises(RegistryError, match="adapter.safetensors, config.json"):
        version.file("weights.safetensors")


# Verification


def flip_first_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[0] ^= 0x01
    path.write_bytes(bytes(content))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1])


def add_extra_file(path: Path) -> None:
    (path.parent / "notes.txt").write_text("left here by hand")


@pytest.mark.parametrize(
    ("damage", "damaged_name", "problem"),
    [
        (flip_first_byte, "adapter.safetensors", "changed"),
        (truncate, "adapter.safetensors", "truncated"),
        (Path.unlink, "adapter.safetensors", "missing"),
        (add_extra_file, "notes.txt", "unexpected extra file"),
    ],
)
def test_verify_detects_damage_naming_file(registry, source, damage, damaged_name, problem):
    version = registry.publish(source, {})
    registry.verify(1)
    damage(version.path / "adapter.safetensors")
    with pytest.raises(IntegrityError) as raised:
        registry.verify(1)
    assert raised.value.version_id == 1
    assert raised.value.problems == {damaged_name: problem}
    assert "Version 1" in str(raised.value)
    assert damaged_name in str(raised.value)


def test_open_version_rejects_corrupted_version(registry, source):
    publish_n(registry, source, 2)
    registry.promote("production", 1)
    assert registry.open_version("production").id == 1
    flip_first_byte(registry.root / "versions" / "000001" / "config.json")
    with pytest.raises(IntegrityError, match="config.json"):
        registry.open_version("production")
    assert registry.open_version(2).id == 2


# Staging and garbage collection


def dead_process_pid() -> int:
    """Return the pid of a child process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_gc_removes_dead_staging_leftover(registry, source):
    publish_n(registry, source, 1)
    leftover = registry.root / ".staging" / staging_entry_name(dead_process_pid())
    make_source(leftover, {"adapter.safetensors": b"half", "manifest.json": b'{"id": 2}'})
    temp_file = registry.root / ".staging" / staging_entry_name(dead_process_pid(), suffix=".tmp")
    temp_file.write_text("{")

    assert [version.id for version in registry.versions()] == [1]
    assert sorted(registry.gc()) == sorted([leftover, temp_file])
    assert not leftover.exists()
    assert not temp_file.exists()
    assert registry.open_version(1).id == 1
    assert registry.gc() == []


def test_gc_keeps_live_publish_and_unknown_entries(registry, source):
    publish_n(registry, source, 1)
    live = registry.root / ".staging" / staging_entry_name(os.getpid())
    live.mkdir()
    unknown = registry.root / ".staging" / "copied-by-hand"
    unknown.mkdir()
    assert registry.gc() == []
    assert live.is_dir()
    assert unknown.is_dir()
    assert [version.id for version in registry.versions()] == [1]


# Aliases


def test_promote_returns_move_record(registry, source):
    publish_n(registry, source, 2)
    first = registry.promote("production", 1, reason="baseline")
    assert first["alias"] == "production"
    assert first["action"] == "promote"
    assert first["from"] is None
    assert first["to"] == 1
    assert first["reason"] == "baseline"
    assert datetime.fromisoformat(first["time"]).tzinfo is not None
    second = registry.promote("production", "2")
    assert (second["from"], second["to"]) == (1, 2)
    assert registry.aliases() == {"production": 2}


def test_rollback_returns_to_previous_target(registry, source):
    publish_n(registry, source, 3)
    for version_id in (1, 2, 3):
        registry.promote("production", version_id)
    move = registry.rollback("production", reason="regression")
    assert (move["action"], move["from"], move["to"]) == ("rollback", 3, 2)
    assert registry.aliases() == {"production": 2}
    registry.rollback("production")
    assert registry.aliases() == {"production": 1}
    with pytest.raises(RegistryError, match="no earlier target"):
        registry.rollback("production")


def test_rollback_to_pops_until_target(registry, source):
    publish_n(registry, source, 4)
    for version_id in (1, 2, 3, 4):
        registry.promote("production", version_id)
    move = registry.rollback("production", to=2)
    assert (move["from"], move["to"]) == (4, 2)
    assert registry.aliases() == {"production": 2}
    # Version 3 was popped, so the next rollback goes to 1, not back to 3.
    assert registry.rollback("production")["to"] == 1


def test_rollback_to_unstacked_target_lists_choices(registry, source):
    publish_n(registry, source, 4)
    for version_id in (1, 2, 3):
        registry.promote("production", version_id)
    with pytest.raises(RegistryError, match="version 4 is not an earlier target.*roll back to 2, 1"):
        registry.rollback("production", to=4)
    with pytest.raises(RegistryError, match="already points to"):
        registry.rollback("production", to=3)
    assert registry.aliases() == {"production": 3}


def test_single_target_alias_cannot_roll_back(registry, source):
    publish_n(registry, source, 1)
    registry.promote("production", 1)
    with pytest.raises(RegistryError, match="no earlier target"):
        registry.rollback("production")
    with pytest.raises(AliasNotFoundError, match="staging"):
        registry.rollback("staging")


def test_repeated_promote_skipped_by_rollback(registry, source):
    publish_n(registry, source, 2)
    registry.promote("production", 1)
    registry.promote("production", 2)
    repeat = registry.promote("production", 2)
    assert (repeat["from"], repeat["to"]) == (2, 2)
    assert len(registry.alias_history("production")) == 3
    assert registry.rollback("production")["to"] == 1


def test_move_to_missing_version_raises(registry, source):
    publish_n(registry, source, 2)
    with pytest.raises(VersionNotFoundError, match="Version 5 not found"):
        registry.promote("production", 5)
    registry.promote("production", 1)
    registry.promote("production", 2)
    for path in (registry.root / "versions" / "000001").iterdir():
        path.unlink()
    (registry.root / "versions" / "000001").rmdir()
    with pytest.raises(VersionNotFoundError, match="Version 1"):
        registry.rollback("production")
    with pytest.raises(VersionNotFoundError, match="Version 1"):
        registry.rollback("production", to=1)
    assert registry.aliases() == {"production": 2}


def test_alias_history_keeps_order_and_filters(registry, source):
    publish_n(registry, source, 2)
    registry.promote("production", 1)
    registry.promote("staging", 2)
    registry.promote("production", 2)
    registry.rollback("production")
    history = registry.alias_history()
    assert [(move["alias"], move["action"], move["to"]) for move in history] == [
        ("production", "promote", 1),
        ("staging", "promote", 2),
        ("production", "promote", 2),
        ("production", "rollback", 1),
    ]
    assert [move["to"] for move in registry.alias_history("production")] == [1, 2, 1]
    with pytest.raises(AliasNotFoundError):
        registry.alias_history("canary")


def test_torn_last_alias_line_ignored(registry, source):
    publish_n(registry, source, 3)
    registry.promote("production", 1)
    registry.promote("production", 2)
    history_path = registry.root / "aliases.jsonl"
    with open(history_path, "ab") as handle:
        handle.write(b'{"alias": "production", "action": "prom')

    assert registry.aliases() == {"production": 2}
    assert len(registry.alias_history()) == 2
    registry.promote("production", 3)
    assert registry.aliases() == {"production": 3}
    assert [move["to"] for move in registry.alias_history()] == [1, 2, 3]
    last_line = history_path.read_bytes().splitlines()[-1]
    assert json.loads(last_line)["to"] == 3


INVALID_ALIAS_NAMES = [
    "../x",
    "/abs",
    "a/b",
    "a\\b",
    "",
    "1",
    "42",
    ".hidden",
    "-dash",
    "_under",
    "a b",
    "abc\n",
    "é",
    "a" * 65,
]


@pytest.mark.parametrize("name", INVALID_ALIAS_NAMES)
def test_invalid_alias_name_rejected(registry, source, name):
    publish_n(registry, source, 1)
    with pytest.raises(InvalidNameError) as raised:
        registry.promote(name, 1)
    assert repr(name) in str(raised.value)
    assert "^[A-Za-z][A-Za-z0-9._-]{0,63}$" in str(raised.value)
    assert registry.alias_history() == []


@pytest.mark.parametrize("name", ["a", "prod", "v1.2_rc-3", "A" * 64])
def test_valid_alias_name_accepted(registry, source, name):
    publish_n(registry, source, 1)
    registry.promote(name, 1)
    assert registry.aliases() == {name: 1}


# Merge records


def test_record_merge_assigns_monotonic_ids(registry):
    record = {"method": "ties", "sources": [1, 2], "weights": [0.5, 0.5]}
    snapshot = copy.deepcopy(record)
    first = registry.record_merge(record)
    second = registry.record_merge({"method": "linear", "sources": [2, 3]})
    assert record == snapshot
    assert (first["merge_id"], second["merge_id"]) == (1, 2)
    assert first["sources"] == [1, 2]
    assert datetime.fromisoformat(first["time"]).tzinfo is not None
    assert registry.merges() == [first, second]


def test_record_merge_rejects_reserved_keys(registry):
    with pytest.raises(RegistryError, match="merge_id"):
        registry.record_merge({"merge_id": 9})
    assert registry.merges() == []


def test_torn_last_merge_line_ignored(registry):
    registry.record_merge({"method": "linear"})
    with open(registry.root / "merges.jsonl", "ab") as handle:
        handle.write(b'{"method": "ti')
    assert [record["merge_id"] for record in registry.merges()] == [1]
    assert registry.record_merge({"method": "ties"})["merge_id"] == 2
    assert [record["method"] for record in registry.merges()] == ["linear", "ties"]


# Concurrency


def publish_from_worker(root: str, source_root: str, worker_index: int, count: int) -> list[int]:
    """Publish `count` versions from one spawned child process and return their ids."""
    registry = Registry(root)
    ids = []
    for step in range(count):
        source = make_source(
            Path(source_root) / f"worker{worker_index}-{step}",
            {"adapter.safetensors": f"{worker_index}:{step}".encode() * 1000},
        )
        ids.append(registry.publish(source, {"worker": worker_index, "step": step}).id)
    return ids


def test_concurrent_publish_allocates_distinct_ids(registry, tmp_path):
    context = multiprocessing.get_context("spawn")
    arguments = [(str(registry.root), str(tmp_path / "sources"), worker, 5) for worker in range(4)]
    with context.Pool(processes=4) as pool:
        ids_per_worker = pool.starmap(publish_from_worker, arguments)

    all_ids = sorted(version_id for ids in ids_per_worker for version_id in ids)
    assert all_ids == list(range(1, 21))
    for ids in ids_per_worker:
        assert ids == sorted(ids)
    for version in registry.versions():
        registry.verify(version.id)
        worker, step = version.manifest["worker"], version.manifest["step"]
        assert version.file("adapter.safetensors").read_bytes() == f"{worker}:{step}".encode() * 1000
    assert list((registry.root / ".staging").iterdir()) == []
