"""Tests of what the registry guarantees to a team that shares it: crash safety, concurrency,
integrity, rollback, deletion, hostile input and moving versions between registries.

Crash and concurrency tests run real child processes. The crash test kills publishes with
SIGKILL at spread points, slowed down by the REGISTRY_TEST_DELAY_S hook of registry.staging.
CLI checks call `adapters.cli.main.main` in-process.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from datetime import datetime
from pathlib import Path

import pytest

from adapters.cli.main import main
from registry import (
    FORMAT_VERSION,
    AliasNotFoundError,
    IntegrityError,
    InvalidNameError,
    Registry,
    RegistryError,
    VersionNotFoundError,
)
from registry.manifest import manifest_digest, serialize_manifest
from registry.staging import staging_entry_name

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"


def make_source(folder: Path, weights: bytes, config: bytes = b'{"r": 8}') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / WEIGHTS).write_bytes(weights)
    (folder / CONFIG).write_bytes(config)
    return folder


def tree_digest(root: Path) -> dict[str, str]:
    """Map every path under `root`, hidden ones included, to the sha256 of its bytes, "folder" or its link target."""
    entries = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            entries[key] = "link to " + os.readlink(path)
        elif path.is_file():
            entries[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            entries[key] = "folder"
    return entries


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the CLI in-process and return (exit status, stdout, stderr)."""
    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as exit_request:
        status = exit_request.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def rewrite_manifest(version_path: Path, **changes) -> None:
    """Rewrite a manifest with `changes` applied and a matching digest, as a newer or buggy writer would."""
    manifest = json.loads((version_path / "manifest.json").read_bytes())
    manifest.update(changes)
    manifest["manifest_sha256"] = manifest_digest(manifest)
    (version_path / "manifest.json").write_bytes(serialize_manifest(manifest))


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry", create=True)


@pytest.fixture
def published(registry: Registry, tmp_path: Path) -> Registry:
    """A registry with versions 1 to 3, each with distinct weights."""
    for index in range(3):
        source = make_source(tmp_path / f"source-{index}", f"weights {index}".encode() * 100)
        registry.publish(source, {"kind": "adapter", "step": index})
    return registry


# Crash safety

PUBLISH_CHILD = """
import sys
from registry import Registry

registry = Registry(sys.argv[1])
print("ready", flush=True)
registry.publish(sys.argv[2], {"attempt": int(sys.argv[3])})
print("published", flush=True)
"""
KILL_POINTS = 24
STEP_DELAY_S = 0.04


def start_publish(root: Path, source: Path, attempt: int) -> subprocess.Popen:
    """Start a child that publishes `source` slowly, and return once it is about to publish."""
    environment = dict(os.environ, REGISTRY_TEST_DELAY_S=str(STEP_DELAY_S))
    child = subprocess.Popen(
        [sys.executable, "-c", PUBLISH_CHILD, str(root), str(source), str(attempt)],
        stdout=subprocess.PIPE, text=True, env=environment,
    )
    assert child.stdout.readline() == "ready\n"
    return child


def last_id(root: Path) -> int:
    return json.loads((root / "ids.json").read_text())["last_id"]


def assert_only_complete_versions(registry: Registry) -> list[int]:
    """Check that every folder under versions/ is a listed version that verifies, and return the ids."""
    listed = [version.id for version in registry.versions()]
    folders = sorted(path.name for path in (registry.root / "versions").iterdir())
    assert folders == [f"{version_id:06d}" for version_id in listed]
    for check in registry.check():
        assert check.ok, check.details
    return listed


def test_killed_publishes_leave_no_partial_version(registry, tmp_path, capsys):
    source = make_source(tmp_path / "source", os.urandom(256 * 1024))
    root = registry.root

    # A publish that runs to the end gives the duration over which the kill points are spread.
    calibration = start_publish(root, source, attempt=0)
    started_s = time.monotonic()
    assert calibration.stdout.readline() == "published\n"
    publish_s = time.monotonic() - started_s
    assert calibration.wait(timeout=60) == 0

    outcomes = collections.Counter()
    killed_pids = set()
    for point in range(KILL_POINTS):
        ids_before, versions_before = last_id(root), len(registry.versions())
        child = start_publish(root, source, attempt=point + 1)
        time.sleep(publish_s * (point + 0.5) / KILL_POINTS)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
        if child.returncode == -signal.SIGKILL:
            killed_pids.add(child.pid)

        listed = assert_only_complete_versions(registry)
        assert listed == sorted(listed)
        if len(listed) > versions_before:
            outcomes["after commit"] += 1
        elif last_id(root) > ids_before:
            outcomes["after id allocation"] += 1
        else:
            outcomes["while staging"] += 1

    assert len(killed_pids) >= 20, outcomes
    assert outcomes["while staging"] >= 3, outcomes
    assert outcomes["after id allocation"] >= 3, outcomes
    assert outcomes["after commit"] >= 1, outcomes

    # Ids follow publish order, and the ids of killed publishes stay used.
    versions = registry.versions()
    created = [version.manifest["created"] for version in versions]
    assert created == sorted(created)
    assert last_id(root) >= max(version.id for version in versions)
    status, listed_json, _ = run_cli(["list", "--json", "--registry", str(root)], capsys)
    assert status == 0
    assert [entry["id"] for entry in json.loads(listed_json)["versions"]] == [version.id for version in versions]

    # gc removes exactly the staging leftovers of the killed publishes.
    leftovers = list((root / ".staging").iterdir())
    assert leftovers, "no killed publish left anything to collect"
    assert {int(path.name.split(".")[0]) for path in leftovers} <= killed_pids
    live = root / ".staging" / staging_entry_name(os.getpid())
    live.mkdir()
    unknown = root / ".staging" / "copied-by-hand"
    unknown.mkdir()
    versions_tree = tree_digest(root / "versions")

    status, out, err = run_cli(["gc", "--registry", str(root)], capsys)

    assert status == 0, err
    assert f"removed {len(leftovers)} leftovers" in out
    assert sorted(path.name for path in (root / ".staging").iterdir()) == sorted([live.name, unknown.name])
    assert tree_digest(root / "versions") == versions_tree
    next_id = last_id(root) + 1
    assert registry.publish(source, {"attempt": "after gc"}).id == next_id


DELETE_CHILD = """
import sys
from registry import Registry

Registry(sys.argv[1]).delete(int(sys.argv[2]))
"""


def test_delete_killed_after_tombstone_finished_by_gc(published, tmp_path, capsys):
    root = published.root
    environment = dict(os.environ, REGISTRY_TEST_DELAY_S="30")
    child = subprocess.Popen([sys.executable, "-c", DELETE_CHILD, str(root), "2"], env=environment)
    deadline = time.monotonic() + 30
    while not (root / "deleted.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=60)

    assert (root / "versions" / "000002").is_dir()
    assert [version.id for version in published.versions()] == [1, 3]
    with pytest.raises(VersionNotFoundError, match="deleted"):
        published.get(2)
    status, out, _ = run_cli(["gc", "--registry", str(root)], capsys)
    assert status == 0
    assert "000002" in out
    assert not (root / "versions" / "000002").exists()
    assert published.publish(tmp_path / "source-0", {}).id == 4


# Concurrency

PUBLISH_WORKER = """
import os, sys, time
from pathlib import Path
from registry import Registry

root, sources, worker, count, start_file = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
registry = Registry(root)
for step in range(count):
    source = sources / f"worker{worker}-{step}"
    source.mkdir(parents=True)
    (source / "adapter_model.safetensors").write_bytes(f"{worker}:{step};".encode() * 4096)
while not os.path.exists(start_file):
    time.sleep(0.002)
for step in range(count):
    print(registry.publish(sources / f"worker{worker}-{step}", {"worker": worker, "step": step}).id, flush=True)
"""

PROMOTE_WORKER = """
import os, sys, time
from registry import Registry

root, worker, count, versions, start_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
registry = Registry(root)
while not os.path.exists(start_file):
    time.sleep(0.002)
for step in range(count):
    registry.promote("production", (worker + step) % versions + 1, reason=f"worker {worker} step {step}")
"""


def run_workers(script: str, arguments: list[list[str]], start_file: Path) -> list[str]:
    """Start one child per argument list, release them together, and return their stdout."""
    children = [
        subprocess.Popen([sys.executable, "-c", script, *worker_arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for worker_arguments in arguments
    ]
    time.sleep(0.5)
    start_file.touch()
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
        outputs.append(out)
    return outputs


def test_eight_processes_publish_eighty_distinct_versions(registry, tmp_path):
    workers, count = 8, 10
    start_file = tmp_path / "start"
    arguments = [[str(registry.root), str(tmp_path / "sources"), str(worker), str(count), str(start_file)] for worker in range(workers)]

    outputs = run_workers(PUBLISH_WORKER, arguments, start_file)

    ids_per_worker = [[int(line) for line in out.split()] for out in outputs]
    all_ids = sorted(version_id for ids in ids_per_worker for version_id in ids)
    assert all_ids == list(range(1, workers * count + 1))
    for ids in ids_per_worker:
        assert ids == sorted(ids)
    versions = registry.versions()
    assert len(versions) == workers * count
    pairs = collections.Counter((version.manifest["worker"], version.manifest["step"]) for version in versions)
    assert set(pairs) == {(worker, step) for worker in range(workers) for step in range(count)}
    assert max(pairs.values()) == 1
    for version in versions:
        registry.verify(version.id)
        worker, step = version.manifest["worker"], version.manifest["step"]
        assert version.file(WEIGHTS).read_bytes() == f"{worker}:{step};".encode() * 4096
    assert list((registry.root / ".staging").iterdir()) == []


def test_racing_alias_moves_each_recorded_once(published, tmp_path):
    for index in range(3, 8):
        published.publish(make_source(tmp_path / f"more-{index}", bytes([index]) * 64), {})
    workers, count, versions = 8, 10, 8
    start_file = tmp_path / "start"
    arguments = [[str(published.root), str(worker), str(count), str(versions), str(start_file)] for worker in range(workers)]

    run_workers(PROMOTE_WORKER, arguments, start_file)

    moves = published.alias_history("production")
    reasons = collections.Counter(move["reason"] for move in moves)
    assert len(moves) == workers * count
    assert set(reasons) == {f"worker {worker} step {step}" for worker in range(workers) for step in range(count)}
    assert max(reasons.values()) == 1
    assert moves[0]["from"] is None
    for previous, move in zip(moves, moves[1:]):
        assert move["from"] == previous["to"], (previous, move)
    for move in moves:
        worker, step = (int(word) for word in move["reason"].split()[1::2])
        assert move["to"] == (worker + step) % versions + 1
    assert published.aliases()["production"] == moves[-1]["to"]


# Integrity


def flip_byte(position: str):
    def damage(path: Path) -> None:
        content = bytearray(path.read_bytes())
        index = {"first": 0, "middle": len(content) // 2, "last": len(content) - 1}[position]
        content[index] ^= 0x01
        path.write_bytes(bytes(content))

    return damage


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


DAMAGES = {
    "flip-first": flip_byte("first"),
    "flip-middle": flip_byte("middle"),
    "flip-last": flip_byte("last"),
    "truncate": truncate,
    "delete": Path.unlink,
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("name", [WEIGHTS, CONFIG, "manifest.json"])
def test_damaged_file_reported_and_load_rejected(published, capsys, damage, name):
    DAMAGES[damage](published.root / "versions" / "000002" / name)
    root = str(published.root)

    status, out, _ = run_cli(["verify", "--registry", root], capsys)
    problem_lines = [line for line in out.splitlines() if line.startswith("version ")]

    assert status == 1
    assert problem_lines, out
    assert all(line.startswith("version 2: ") for line in problem_lines), out
    assert name in out
    assert run_cli(["verify", "2", "--registry", root], capsys)[0] == 1
    assert run_cli(["verify", "3", "--registry", root], capsys)[0] == 0
    with pytest.raises(IntegrityError) as raised:
        published.open_version(2)
    assert raised.value.version_id == 2
    assert name in raised.value.problems
    assert "Version 2" in str(raised.value)
    assert published.open_version(3).id == 3


def test_verify_json_lists_each_version(published, capsys):
    (published.root / "versions" / "000001" / CONFIG).write_bytes(b'{"r": 9}')

    status, out, _ = run_cli(["verify", "--json", "--registry", str(published.root)], capsys)
    report = json.loads(out)

    assert status == 1
    assert report["ok"] is False
    assert [(entry["id"], entry["ok"]) for entry in report["versions"]] == [(1, False), (2, True), (3, True)]
    assert report["versions"][0]["problems"] == {CONFIG: "changed"}


def test_manifest_layout_change_detected(published):
    path = published.root / "versions" / "000001" / "manifest.json"
    path.write_bytes(path.read_bytes().replace(b'  "id"', b'\t"id"', 1))

    with pytest.raises(IntegrityError, match="bytes differ"):
        published.get(1)
    assert [version.id for version in published.versions()] == [2, 3]


def test_manifest_schema_checked_on_read(published, capsys):
    rewrite_manifest(published.root / "versions" / "000001", parent="seven")

    with pytest.raises(IntegrityError, match="'parent' must be null or a version id"):
        published.get(1)
    status, out, _ = run_cli(["verify", "1", "--registry", str(published.root)], capsys)
    assert status == 1
    assert "'parent'" in out


def test_newer_manifest_format_names_both_versions(published, capsys):
    rewrite_manifest(published.root / "versions" / "000001", format_version=FORMAT_VERSION + 1)

    with pytest.raises(RegistryError) as raised:
        published.get(1)
    status, _, err = run_cli(["show", "1", "--registry", str(published.root)], capsys)

    assert f"format_version {FORMAT_VERSION + 1}" in str(raised.value)
    assert f"format_version {FORMAT_VERSION} or older" in str(raised.value)
    assert status == 2
    assert f"format_version {FORMAT_VERSION + 1}" in err
    assert len(err.strip().splitlines()) == 1


# Rollback and history


def test_rollback_moves_pointer_without_copying(published, capsys):
    for version_id in (1, 2, 3):
        published.promote("production", version_id)
    versions_before = {path: os.stat(path).st_ino for path in (published.root / "versions").rglob("*")}
    history_size = (published.root / "aliases.jsonl").stat().st_size

    status, out, _ = run_cli(["rollback", "--alias", "production", "--reason", "bad metrics", "--registry", str(published.root)], capsys)

    assert status == 0
    assert out.strip() == "production: 3 -> 2"
    assert {path: os.stat(path).st_ino for path in (published.root / "versions").rglob("*")} == versions_before
    assert published.aliases() == {"production": 2}
    assert (published.root / "aliases.jsonl").stat().st_size > history_size
    assert published.open_version("production").path == published.root / "versions" / "000002"


def test_history_prints_every_move(published, capsys):
    root = str(published.root)
    assert run_cli(["promote", "1", "--alias", "production", "--reason", "first release", "--registry", root], capsys)[0] == 0
    assert run_cli(["promote", "3", "--alias", "production", "--reason", "new data", "--registry", root], capsys)[0] == 0
    assert run_cli(["rollback", "--alias", "production", "--reason", "regression at 3 a.m.", "--registry", root], capsys)[0] == 0
    published.promote("staging", 2)

    status, out, _ = run_cli(["history", "production", "--registry", root], capsys)
    rows = [line.split(None, 5) for line in out.splitlines()[2:]]

    assert status == 0
    assert out.splitlines()[0] == "alias production points to version 1 after 3 moves"
    assert out.splitlines()[1].split() == ["time", "alias", "action", "from", "to", "reason"]
    assert [row[1:] for row in rows] == [
        ["production", "promote", "-", "1", "first release"],
        ["production", "promote", "1", "3", "new data"],
        ["production", "rollback", "3", "1", "regression at 3 a.m."],
    ]
    for row in rows:
        assert datetime.fromisoformat(row[0]).tzinfo is not None

    status, out, _ = run_cli(["history", "production", "--json", "--registry", root], capsys)
    assert status == 0
    assert json.loads(out)["moves"] == published.alias_history("production")
    assert json.loads(out)["target"] == 1


def test_rollback_past_first_entry_rejected(published, capsys):
    published.promote("production", 1)
    before = tree_digest(published.root)

    status, _, err = run_cli(["rollback", "--alias", "production", "--registry", str(published.root)], capsys)

    assert status == 2
    assert "no earlier target" in err
    assert tree_digest(published.root) == before


def test_rollback_to_deleted_version_rejected(published, capsys):
    for version_id in (1, 2, 3):
        published.promote("production", version_id)
    published.delete(2, reason="leaked test data")
    before = tree_digest(published.root)

    status, _, err = run_cli(["rollback", "--alias", "production", "--registry", str(published.root)], capsys)
    assert status == 2
    assert "version 2" in err
    assert "deleted" in err
    assert "leaked test data" in err
    status, _, err = run_cli(["rollback", "--alias", "production", "--to", "2", "--registry", str(published.root)], capsys)
    assert status == 2
    assert "deleted" in err
    assert tree_digest(published.root) == before

    assert published.rollback("production", to=1)["to"] == 1


# Deletion


def test_delete_rejected_while_referenced(published, tmp_path, capsys):
    child = published.publish(make_source(tmp_path / "child", b"child"), {"parent": 1})
    merged = published.publish(make_source(tmp_path / "merged", b"merged"), {"parents": [2, 3]})
    published.record_merge({"versions": [2, 3], "version": merged.id})
    published.promote("production", 3)
    root = str(published.root)
    before = tree_digest(published.root)

    expected = {
        "1": [f"version {child.id} names it as parent"],
        "2": ["merge 1 used it", f"version {merged.id} names it as parent"],
        "3": ["alias 'production' points to it", "merge 1 used it", f"version {merged.id} names it as parent"],
    }
    for version, referrers in expected.items():
        status, _, err = run_cli(["delete", version, "--registry", root], capsys)
        assert status == 2
        assert len(err.strip().splitlines()) == 1
        assert f"Cannot delete version {version}" in err
        for referrer in referrers:
            assert referrer in err
        assert "--force" in err
    assert tree_digest(published.root) == before
    assert published.delete(child.id).get("force") is False


def test_forced_delete_recorded(published, capsys):
    published.promote("production", 2)

    status, out, _ = run_cli(["delete", "2", "--force", "--reason", "trained on leaked data", "--registry", str(published.root)], capsys)

    assert status == 0
    assert "alias 'production' points to it" in out
    (tombstone,) = published.tombstones()
    assert tombstone["id"] == 2
    assert tombstone["force"] is True
    assert tombstone["reason"] == "trained on leaked data"
    assert tombstone["referrers"] == ["alias 'production' points to it"]
    assert datetime.fromisoformat(tombstone["time"]).tzinfo is not None
    assert [version.id for version in published.versions()] == [1, 3]
    assert not (published.root / "versions" / "000002").exists()
    with pytest.raises(VersionNotFoundError, match="Version 2 was deleted at .* with --force"):
        published.get(2)
    with pytest.raises(VersionNotFoundError, match="deleted"):
        published.promote("staging", 2)


def test_deleted_ids_never_reused(published, tmp_path):
    published.delete(3)
    (published.root / "ids.json").unlink()

    assert published.publish(make_source(tmp_path / "next", b"next"), {}).id == 4
    assert [version.id for version in published.versions()] == [1, 2, 4]


# Hostile input

HOSTILE_REFS = ["../1", "/etc/passwd", "1/2", "..", "0x10", "1e3", "-3", "", " 1", "1234567890", "9" * 40, "a" * 65, "x\x00y"]


@pytest.mark.parametrize("ref", HOSTILE_REFS)
def test_hostile_version_reference_rejected(published, tmp_path, ref):
    before = tree_digest(published.root)
    archive = tmp_path / "never.tar"
    for action in (published.get, published.check, published.delete, lambda value: published.export([value], archive)):
        with pytest.raises(InvalidNameError):
            action(ref)
    with pytest.raises(InvalidNameError):
        published.promote("production", ref)
    assert tree_digest(published.root) == before
    assert not archive.exists()


@pytest.mark.parametrize("alias", ["../x", "/abs", "a/b", "..", "a" * 65])
def test_hostile_alias_rejected_everywhere(published, alias):
    with pytest.raises(InvalidNameError):
        published.alias_history(alias)
    with pytest.raises(InvalidNameError):
        published.rollback(alias)
    with pytest.raises(InvalidNameError):
        published.promote(alias, 1)
    assert published.alias_history() == []


def test_stored_file_symlink_out_rejected(published, tmp_path, capsys):
    outside = tmp_path / "outside.safetensors"
    stored = published.root / "versions" / "000001" / WEIGHTS
    outside.write_bytes(stored.read_bytes())
    stored.unlink()
    stored.symlink_to(outside)

    with pytest.raises(IntegrityError) as raised:
        published.open_version(1)
    assert raised.value.problems == {WEIGHTS: "symlink"}
    status, out, _ = run_cli(["verify", "--registry", str(published.root)], capsys)
    assert status == 1
    assert "symlink" in out


def test_version_folder_symlink_out_rejected(published, tmp_path, capsys):
    folder = published.root / "versions" / "000002"
    outside = tmp_path / "outside-version"
    folder.rename(outside)
    folder.symlink_to(outside)

    assert [version.id for version in published.versions()] == [1, 3]
    with pytest.raises(IntegrityError, match="symlink"):
        published.get(2)
    status, out, _ = run_cli(["verify", "--registry", str(published.root)], capsys)
    assert status == 1
    assert "version 2: the version folder is a symlink" in out


@pytest.mark.parametrize("name", ["aliases.jsonl", "ids.json", ".staging", "versions", "deleted.jsonl"])
def test_layout_symlink_out_rejected(published, tmp_path, name):
    target = tmp_path / "elsewhere" / name
    target.parent.mkdir()
    entry = published.root / name
    if entry.exists():
        entry.rename(target)
    else:
        target.write_text("")
    entry.symlink_to(target)

    with pytest.raises(RegistryError, match=f"{name} -> .* points outside the registry"):
        Registry(published.root)


def test_pickle_weights_never_stored(registry, tmp_path):
    source = make_source(tmp_path / "source", b"weights")
    (source / "adapter_model.bin").write_bytes(b"\x80\x04\x95")

    with pytest.raises(RegistryError, match="adapter_model.bin.*pickle"):
        registry.publish(source, {})
    assert registry.versions() == []


def test_pickle_file_in_manifest_fails_verification(published):
    folder = published.root / "versions" / "000001"
    content = b"\x80\x04\x95"
    (folder / "adapter_model.bin").write_bytes(content)
    manifest = json.loads((folder / "manifest.json").read_bytes())
    manifest["files"]["adapter_model.bin"] = {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}
    rewrite_manifest(folder, files=manifest["files"])

    with pytest.raises(IntegrityError) as raised:
        published.open_version(1)
    assert raised.value.problems == {"adapter_model.bin": "pickle format"}


def test_registry_source_never_unpickles():
    package = Path(__file__).resolve().parents[1] / "registry"
    for path in package.glob("*.py"):
        text = path.read_text()
        for forbidden in ("import pickle", "torch.load", "import marshal", "import shelve", "import joblib", "joblib.load"):
            assert forbidden not in text, f"{path.name} contains {forbidden!r}"


# Export and import


def test_export_import_round_trip(published, tmp_path, capsys):
    child = published.publish(make_source(tmp_path / "child", b"child weights"), {"parent": 2, "labels": ["no", "yes"]})
    archive = tmp_path / "moved.tar"

    status, out, _ = run_cli(["export", "2", str(child.id), "--out", str(archive), "--registry", str(published.root)], capsys)
    assert status == 0
    assert f"exported versions 2, {child.id} to {archive}" in out

    target = tmp_path / "other-machine"
    status, out, _ = run_cli(["import", str(archive), "--registry", str(target)], capsys)
    assert status == 0
    assert out.splitlines() == [
        f"imported version 2 of {published.root.resolve()} as version 1",
        f"imported version {child.id} of {published.root.resolve()} as version 2",
    ]
    imported = Registry(target)
    assert [check.ok for check in imported.check()] == [True, True]
    copy_of_child = imported.get(2)
    assert copy_of_child.manifest["parent"] == 1
    assert copy_of_child.manifest["labels"] == ["no", "yes"]
    assert copy_of_child.manifest["files"] == child.manifest["files"]
    assert copy_of_child.manifest["imported_from"] == {
        "registry": str(published.root.resolve()),
        "host": copy_of_child.manifest["imported_from"]["host"],
        "id": child.id,
        "created": child.manifest["created"],
        "lineage": {"parent": 2},
    }
    assert copy_of_child.file(WEIGHTS).read_bytes() == b"child weights"
    assert imported.labels == ["no", "yes"]


def test_import_gets_next_ids_of_target(published, tmp_path):
    archive = tmp_path / "again.tar"
    published.export([1, 3, "1"], archive)

    imported = published.import_archive(archive)

    assert [(entry["source_id"], entry["id"]) for entry in imported] == [(1, 4), (3, 5)]
    assert published.get(5).manifest["step"] == 2
    assert published.get(5).manifest["imported_from"]["id"] == 3
    assert [check.ok for check in published.check()] == [True] * 5


def add_entry(tar: tarfile.TarFile, name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def rewrite_archive(source: Path, destination: Path, change) -> Path:
    """Copy an archive entry by entry; `change(name, data)` returns new bytes, or None to keep them."""
    with tarfile.open(source) as reader, tarfile.open(destination, "w") as writer:
        for member in reader.getmembers():
            data = reader.extractfile(member).read()
            data = change(member.name, data) or data
            member.size = len(data)
            writer.addfile(member, io.BytesIO(data))
    return destination


HOSTILE_ENTRIES = {
    "absolute": (dict(name="/tmp/adapters-escape"), "absolute path"),
    "dot-dot": (dict(name="versions/000001/../../escape"), "'..'"),
    "symlink": (dict(name=f"versions/000001/{WEIGHTS}", kind=tarfile.SYMTYPE, link="/etc/passwd"), "symlink"),
    "hard-link": (dict(name="versions/000001/linked", kind=tarfile.LNKTYPE, link="export.json"), "hard link"),
    "device": (dict(name="versions/000001/null", kind=tarfile.CHRTYPE), "device file"),
    "fifo": (dict(name="versions/000001/pipe", kind=tarfile.FIFOTYPE), "FIFO"),
    "outside-versions": (dict(name="escape.txt"), "outside versions/<id>/"),
    "bad-id-folder": (dict(name="versions/abc/file"), "outside versions/<id>/"),
    "pickle": (dict(name="versions/000001/adapter_model.bin"), "pickle"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ENTRIES))
def test_hostile_archive_rejected(published, tmp_path, case):
    entry, expected = HOSTILE_ENTRIES[case]
    good = tmp_path / "good.tar"
    published.export([1], good)
    hostile = tmp_path / f"{case}.tar"
    with tarfile.open(good) as reader, tarfile.open(hostile, "w") as writer:
        for member in reader.getmembers():
            writer.addfile(member, reader.extractfile(member))
        add_entry(writer, **entry)
    before = tree_digest(published.root)

    with pytest.raises(RegistryError) as raised:
        published.import_archive(hostile)

    assert expected in str(raised.value)
    assert entry["name"] in str(raised.value)
    assert tree_digest(published.root) == before
    assert not Path("/tmp/adapters-escape").exists()
    assert not (tmp_path / "escape").exists()


def test_damaged_archive_rejected(published, tmp_path):
    good = tmp_path / "good.tar"
    published.export([1, 2], good)

    def flip_weights_of_2(name: str, data: bytes) -> bytes | None:
        if name == f"versions/000002/{WEIGHTS}":
            return bytes([data[0] ^ 1]) + data[1:]
        return None

    damaged = rewrite_archive(good, tmp_path / "damaged.tar", flip_weights_of_2)
    before = tree_digest(published.root)

    with pytest.raises(RegistryError, match=f"versions/000002/{WEIGHTS} has .* sha256"):
        published.import_archive(damaged)
    assert tree_digest(published.root) == before


def test_archive_of_newer_format_rejected(published, tmp_path):
    good = tmp_path / "good.tar"
    published.export([1], good)

    def newer_manifest(name: str, data: bytes) -> bytes | None:
        if name.endswith("manifest.json"):
            manifest = json.loads(data)
            manifest["format_version"] = FORMAT_VERSION + 1
            manifest["manifest_sha256"] = manifest_digest(manifest)
            return serialize_manifest(manifest)
        return None

    newer = rewrite_archive(good, tmp_path / "newer.tar", newer_manifest)

    with pytest.raises(RegistryError) as raised:
        published.import_archive(newer)
    assert f"format_version {FORMAT_VERSION + 1}" in str(raised.value)
    assert f"format_version {FORMAT_VERSION} or older" in str(raised.value)


def test_export_rejects_existing_or_inner_path(published, tmp_path):
    existing = tmp_path / "existing.tar"
    existing.write_bytes(b"keep me")

    with pytest.raises(RegistryError, match="already exists"):
        published.export([1], existing)
    with pytest.raises(RegistryError, match="inside the registry"):
        published.export([1], published.root / "versions" / "inside.tar")
    with pytest.raises(AliasNotFoundError):
        published.export(["production"], tmp_path / "new.tar")
    assert existing.read_bytes() == b"keep me"
    assert not (tmp_path / "new.tar").exists()
