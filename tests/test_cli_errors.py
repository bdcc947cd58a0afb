"""Tests of malformed command lines. Each must exit with status 2, print one error line and change no file.

The table runs `adapters.cli.main.main` in-process for speed. An exception that escapes `main`
would be a traceback and exit status 1 in a real run, so the helper fails the case on it. Log
records at WARNING or above count as extra stderr lines, because `--quiet` still prints them.
One subprocess test checks the real exit status and stderr of the installed entry point.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from adapters.cli.main import main
from conftest import synthetic_rows, write_homedepot_csv, write_tiny_bert
from registry import Registry
from registry.manifest import manifest_digest, serialize_manifest


def snapshot(root: Path) -> dict[str, str]:
    """Map every path under `root`, hidden ones included, to the sha256 of its bytes or to "folder"."""
    entries = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        entries[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
    return entries


def write_plain_csv(path: Path, header: list[str], rows: list[tuple]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_input_files(files: Path) -> None:
    """Write one data file per malformed-input case next to the training increment."""
    files.mkdir()
    write_homedepot_csv(files / "increment.csv", synthetic_rows(120))
    (files / "increment.txt").write_text("search_term,product_title,relevance\n")
    write_homedepot_csv(files / "latin1.csv", [(1, "caf\u00e9 table", "table", 3.0)] + synthetic_rows(40, seed=1))
    # The header read decodes only the first block of the file, so datasets' CSV reader meets this late byte.
    write_homedepot_csv(files / "latin1-long.csv", synthetic_rows(400, seed=2) + [(1, "caf\u00e9 table", "table", 3.0)])
    write_plain_csv(files / "grades.csv", ["query", "grade"], [(f"query {index}", "maybe") for index in range(30)])
    write_homedepot_csv(files / "all-missing.csv", [(1, "deck paint", "", 3.0), (2, "", "drill bit", 2.0), (3, "faucet", "faucet", "")])
    write_homedepot_csv(files / "duplicates.csv", [(1, "deck paint", "deck paint", 3.0)] * 5)
    write_homedepot_csv(files / "header-only.csv", [])
    write_homedepot_csv(files / "relevance-word.csv", synthetic_rows(20) + [(9, "deck paint", "paint", "high")])
    write_homedepot_csv(files / "relevance-range.csv", synthetic_rows(20) + [(9, "deck paint", "paint", 4.5)])
    (files / "empty.jsonl").write_bytes(b"")


@pytest.fixture(scope="module")
def workspace(tiny_bert, tmp_path_factory) -> dict[str, str]:
    """A registry with version 1 trained on the tiny base and alias production, plus input files.

    Returns the placeholders that the command templates below use.
    """
    work = tmp_path_factory.mktemp("cli-errors")
    registry = work / "registry"
    write_input_files(work / "files")
    other_base = write_tiny_bert(work / "tiny-bert-seed-1", seed=1)
    for name in ("not-a-model", "merged-out", "foreign-folder"):
        (work / name).mkdir()
        (work / name / "notes.txt").write_text("unrelated file\n")

    trained = main([
        "train", "--registry", str(registry), "--data", str(work / "files" / "increment.csv"), "--preset", "homedepot",
        "--base", str(tiny_bert), "--epochs", "1", "--batch-size", "16",
    ])
    promoted = main(["promote", "1", "--alias", "production", "--registry", str(registry)])
    assert trained == 0
    assert promoted == 0
    return {"work": str(work), "registry": str(registry), "files": str(work / "files"), "base": str(tiny_bert), "other_base": str(other_base)}


def expand(template: str, places: dict[str, str]) -> list[str]:
    return [token.format(**places) for token in template.split()]


def run_in_process(argv: list[str], capsys) -> tuple[int, str]:
    """Run the CLI and return its exit status and stderr."""
    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as exit_request:
        status = exit_request.code
    except Exception as error:
        pytest.fail(f"`adapters {' '.join(argv)}` raised {type(error).__name__}: {error}")
    return status, capsys.readouterr().err


def non_empty_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


TRAIN = "train --registry {registry} --base {base}"
# One character over the reason limit of promote, rollback and delete, and free of spaces so it stays one token.
LONG_REASON = "x" * 501
ON_INCREMENT = "--data {files}/increment.csv --preset homedepot --force"


# Errors that the product raises itself, as (command template, text the error line must contain).
PRODUCT_ERRORS = [
    pytest.param(f"{TRAIN} --preset homedepot --data {{files}}/missing.csv", "missing.csv", id="data-file-missing"),
    pytest.param(f"{TRAIN} --preset homedepot --data {{files}}/increment.txt", "'.txt'", id="data-suffix-unknown"),
    pytest.param(f"{TRAIN} --preset homedepot --encoding utf-8 --data {{files}}/latin1.csv", "not valid utf-8", id="data-encoding-wrong"),
    pytest.param(f"{TRAIN} --preset homedepot --text-column query_text --data {{files}}/increment.csv", "'query_text'", id="data-column-missing"),
    pytest.param(f"{TRAIN} --text-column query --label-column grade --data {{files}}/grades.csv", "'maybe'", id="label-unknown"),
    pytest.param(f"{TRAIN} --preset homedepot --data {{files}}/all-missing.csv", "all-missing.csv", id="increment-empty-after-cleaning"),
    pytest.param(f"{TRAIN} --preset homedepot --data {{files}}/duplicates.csv", "duplicates.csv", id="increment-all-duplicates"),
    pytest.param(f"{TRAIN} --preset homedepot --data {{files}}/relevance-word.csv", "'high'", id="relevance-not-numeric"),
    pytest.param(f"{TRAIN} --preset homedepot --data {{files}}/relevance-range.csv", "'4.5'", id="relevance-out-of-range"),
    pytest.param(f"{TRAIN} {ON_INCREMENT} --validation-fraction 0", "validation_fraction 0.0", id="validation-fraction-zero"),
    pytest.param(f"{TRAIN} --preset homedepot --data {{files}}/increment.csv", "version 1 was already trained", id="increment-trained-twice"),
    pytest.param(f"{TRAIN} {ON_INCREMENT} --freeze-layers 2", "--freeze-layers 2", id="freeze-layers-too-large"),
    pytest.param(f"{TRAIN} {ON_INCREMENT} --method adalora --tinit 100", "tinit 100", id="adalora-no-budget-phase"),
    pytest.param(f"{TRAIN} {ON_INCREMENT} --epochs 0", "epochs 0", id="epochs-zero"),
    pytest.param(f"{TRAIN} {ON_INCREMENT} --from 99", "99", id="train-parent-unknown"),
    pytest.param(f"{TRAIN} {ON_INCREMENT} --threads 0", "threads 0 must be at least 1", id="threads-zero"),
    pytest.param(f"{TRAIN} {ON_INCREMENT} --group-window 0", "group_window 0 must be at least 1", id="group-window-zero"),
    pytest.param(f"{TRAIN} {ON_INCREMENT} --cache-budget-mb -5", "cache_budget_mb -5.0 must be 0 or more", id="cache-budget-negative"),
    pytest.param(f"{TRAIN} --preset homedepot --data {{files}}/header-only.csv", "has a header but no rows", id="data-header-only"),
    pytest.param("bench --quick --out {work}/bench-out --base {base} --data {files}/increment.csv --preset homedepot",
                 "the quick benchmark needs 2000; pass a larger --data", id="bench-data-too-small"),
    pytest.param(f"train --registry {{registry}} --base {{files}}/increment.csv {ON_INCREMENT}", "increment.csv", id="base-not-a-folder"),
    pytest.param("merge 1 --weights 0.5,0.5 --out {work}/merge-out --registry {registry}", "2 values", id="merge-weights-count"),
    pytest.param("merge 1 --alpha 1.5 --out {work}/merge-out --registry {registry}", "--alpha 1.5", id="merge-alpha-above-one"),
    pytest.param("merge 1 --alpha nan --out {work}/merge-out --registry {registry}", "--alpha nan", id="merge-alpha-nan"),
    pytest.param("merge 1 --out {work}/merged-out --registry {registry} --base {base}", "merged-out", id="merge-out-not-empty"),
    pytest.param("show 99 --registry {registry}", "99", id="show-version-unknown"),
    pytest.param("show nope --registry {registry}", "'nope'", id="show-alias-unknown"),
    pytest.param("show 1.5 --registry {registry}", "'1.5'", id="show-reference-invalid"),
    pytest.param("promote 1 --alias ../x --registry {registry}", "'../x'", id="promote-alias-invalid"),
    pytest.param("rollback --alias production --registry {registry}", "'production'", id="rollback-no-earlier-target"),
    pytest.param("rollback --alias production --to 99 --registry {registry}", "99", id="rollback-to-unknown"),
    pytest.param("list", "--registry", id="registry-not-given"),
    pytest.param("list --registry {work}/foreign-folder", "foreign-folder", id="registry-foreign-folder"),
    pytest.param("evaluate {work}/not-a-model --data {files}/increment.csv --preset homedepot", "not-a-model", id="evaluate-not-a-model"),
    pytest.param("evaluate 1 --registry {registry} --base {other_base} --data {files}/increment.csv --preset homedepot", "tiny-bert-seed-1", id="evaluate-base-fingerprint-wrong"),
    pytest.param("split {files}/increment.csv --by uid --parts 2 --out {work}/split-out", "'uid'", id="split-by-unknown-column"),
    pytest.param("split {files}/increment.csv --by product_uid --parts 500 --out {work}/split-out", "--parts 500", id="split-parts-above-rows"),
    pytest.param(
        "train --registry {registry} --base {base} --text-column query --label-column grade --data {files}/empty.jsonl",
        "empty.jsonl", id="data-jsonl-empty",
    ),
    pytest.param(
        f"{TRAIN} --preset homedepot --encoding utf-8 --data {{files}}/latin1-long.csv", "not valid utf-8", id="data-encoding-wrong-past-header",
    ),
    pytest.param(
        f"{TRAIN} {ON_INCREMENT} --learning-rate nan", "nan", id="learning-rate-nan",
    ),
    pytest.param(
        f"{TRAIN} {ON_INCREMENT} --weight-decay -1", "-1", id="weight-decay-negative",
    ),
    pytest.param(
        f"{TRAIN} {ON_INCREMENT} --seed -1", "-1", id="seed-negative",
    ),
    pytest.param(
        "merge 1 --out {files}/increment.csv --registry {registry}", "increment.csv", id="merge-out-is-file",
    ),
    pytest.param(
        "split {files}/increment.csv --by product_uid --parts 2 --out {files}/grades.csv", "grades.csv", id="split-out-is-file",
    ),
    pytest.param(
        "train --registry {work}/fresh-registry --base {base} --preset homedepot --data {files}/missing.csv", "missing.csv",
        id="train-new-registry-data-missing",
    ),
    pytest.param(
        "train --registry {work}/foreign-folder --base {base} --preset homedepot --data {files}/increment.csv", "foreign-folder",
        id="train-registry-foreign-folder",
    ),
    pytest.param("verify 99 --registry {registry}", "Version 99 not found", id="verify-version-unknown"),
    pytest.param("verify ../1 --registry {registry}", "'../1'", id="verify-reference-invalid"),
    pytest.param("verify 1234567890 --registry {registry}", "'1234567890'", id="verify-id-too-long"),
    pytest.param("verify", "--registry", id="verify-registry-not-given"),
    pytest.param("history nope --registry {registry}", "'nope'", id="history-alias-unknown"),
    pytest.param("history ../x --registry {registry}", "'../x'", id="history-alias-invalid"),
    pytest.param("delete 1 --registry {registry}", "alias 'production' points to it", id="delete-aliased-version"),
    pytest.param("delete 99 --registry {registry}", "Version 99 not found", id="delete-version-unknown"),
    pytest.param("delete /etc/passwd --force --registry {registry}", "'/etc/passwd'", id="delete-reference-absolute-path"),
    pytest.param(f"delete 1 --force --reason {LONG_REASON} --registry {{registry}}", "501 characters", id="delete-reason-too-long"),
    pytest.param(f"promote 1 --alias staging --reason {LONG_REASON} --registry {{registry}}", "501 characters", id="promote-reason-too-long"),
    pytest.param(f"rollback --alias production --reason {LONG_REASON} --registry {{registry}}", "501 characters", id="rollback-reason-too-long"),
    pytest.param("rollback --alias production --to ../1 --registry {registry}", "'../1'", id="rollback-to-invalid"),
    pytest.param("export 99 --out {work}/export.tar --registry {registry}", "Version 99 not found", id="export-version-unknown"),
    pytest.param("export 1 --out {files}/increment.csv --registry {registry}", "increment.csv", id="export-out-exists"),
    pytest.param("export 1 --out {work}/no-such-folder/out.tar --registry {registry}", "no-such-folder", id="export-out-folder-missing"),
    pytest.param("export 1 --out {registry}/inside.tar --registry {registry}", "inside the registry", id="export-out-inside-registry"),
    pytest.param("import {work}/missing.tar --registry {registry}", "missing.tar", id="import-archive-missing"),
    pytest.param("import {files}/increment.csv --registry {registry}", "not a readable uncompressed tar archive", id="import-not-a-tar"),
    pytest.param("gc --registry {work}/foreign-folder", "foreign-folder", id="gc-registry-foreign-folder"),
]

# Errors that argparse raises before any handler runs, as (command template, text the error line must contain).
ARGPARSE_ERRORS = [
    ("evaluate 1 --registry {registry} --data {files}/increment.csv --preset homedepot --batch-size 0", "0 must be at least 1"),
    pytest.param("merge 1 --weights nan --out {work}/merge-out --registry {registry}", "'nan'", id="merge-weights-nan"),
    pytest.param("merge 1 --weights 0.4,abc --out {work}/merge-out --registry {registry}", "'0.4,abc'", id="merge-weights-not-numbers"),
    pytest.param(f"{TRAIN} --preset kaggle --data {{files}}/increment.csv", "'kaggle'", id="preset-unknown"),
    pytest.param(f"{TRAIN} {ON_INCREMENT} --epochs x", "'x'", id="epochs-not-integer"),
    pytest.param(f"{TRAIN} {ON_INCREMENT} --method prefix", "'prefix'", id="method-unknown"),
    pytest.param(f"{TRAIN} {ON_INCREMENT} --precision fp16", "'fp16'", id="precision-unknown"),
    pytest.param("evaluate 1 --registry {registry} --data {files}/increment.csv --split dev", "'dev'", id="evaluate-split-unknown"),
    pytest.param("show --registry {registry}", "version", id="show-version-absent"),
    pytest.param("export 1 --registry {registry}", "--out", id="export-out-absent"),
    pytest.param("delete --registry {registry}", "version", id="delete-version-absent"),
    pytest.param("history --registry {registry}", "alias", id="history-alias-absent"),
    pytest.param("import --registry {registry}", "FILE.tar", id="import-archive-absent"),
]


@pytest.mark.parametrize("template, expected", PRODUCT_ERRORS)
def test_product_error_is_one_line(workspace, template, expected, capsys, caplog, monkeypatch):
    monkeypatch.delenv("ADAPTERS_REGISTRY", raising=False)
    argv = expand(template, workspace)
    before = snapshot(Path(workspace["work"]))

    status, stderr = run_in_process(argv, capsys)
    lines = non_empty_lines(stderr)
    problems = [record for record in caplog.records if record.levelno >= logging.WARNING]
    logged = [f"{record.levelname} {record.name}: {record.getMessage()}" for record in problems]

    assert status == 2
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"adapters {argv[0]}: error: ")
    assert expected in lines[0]
    assert "Traceback" not in stderr
    assert logged == []
    assert snapshot(Path(workspace["work"])) == before


@pytest.mark.parametrize("template, expected", ARGPARSE_ERRORS)
def test_argparse_error_prints_usage_line(workspace, template, expected, capsys, monkeypatch):
    monkeypatch.delenv("ADAPTERS_REGISTRY", raising=False)
    argv = expand(template, workspace)
    before = snapshot(Path(workspace["work"]))

    status, stderr = run_in_process(argv, capsys)
    lines = non_empty_lines(stderr)
    error_lines = [line for line in lines if line.startswith(f"adapters {argv[0]}: error: ")]

    assert status == 2
    assert lines[0].startswith(f"usage: adapters {argv[0]} ")
    assert len(error_lines) == 1, stderr
    assert lines[-1] == error_lines[0]
    assert expected in error_lines[0]
    assert "Traceback" not in stderr
    assert snapshot(Path(workspace["work"])) == before


def test_registry_read_from_environment(workspace, capsys, monkeypatch):
    monkeypatch.setenv("ADAPTERS_REGISTRY", workspace["registry"])

    status = main(["list", "--json"])
    listed = json.loads(capsys.readouterr().out)

    assert status == 0
    assert listed["registry"] == workspace["registry"]
    assert [version["id"] for version in listed["versions"]] == [1]
    assert listed["aliases"] == {"production": 1}


def test_subprocess_error_exits_two(workspace):
    environment = {name: value for name, value in os.environ.items() if name != "ADAPTERS_REGISTRY"}
    environment["HF_HUB_OFFLINE"] = "1"
    command = [sys.executable, "-m", "adapters", "show", "99", "--registry", workspace["registry"]]

    finished = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    lines = non_empty_lines(finished.stderr)

    assert finished.returncode == 2
    assert len(lines) == 1, finished.stderr
    assert lines[0].startswith("adapters show: error: ")
    assert "99" in lines[0]
    assert "Traceback" not in finished.stderr
    assert finished.stdout == ""


# Registry archives, read-only registries and full disks.


def assert_one_line_error(argv: list[str], expected: str, capsys, caplog) -> None:
    """Run the CLI and check exit status 2, one error line containing `expected`, no traceback and no warnings.

    Training's progress bar lines ("epoch 1/1: ...") are not errors, so they are left out.
    """
    caplog.clear()
    status, stderr = run_in_process(argv, capsys)
    progress_line = re.compile(r"epoch \d+/\d+: ")
    lines = [line for line in non_empty_lines(stderr) if not progress_line.match(line.strip())]
    problems = [record for record in caplog.records if record.levelno >= logging.WARNING]
    logged = [f"{record.levelname} {record.name}: {record.getMessage()}" for record in problems]

    assert status == 2
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"adapters {argv[0]}: error: ")
    assert expected in lines[0]
    assert "Traceback" not in stderr
    assert logged == []


def copy_archive(source: Path, destination: Path, change=None, extra: tarfile.TarInfo | None = None, skip: str | None = None) -> None:
    """Copy an archive entry by entry; `change(name, data)` may return new bytes, `extra` is appended."""
    with tarfile.open(source) as reader, tarfile.open(destination, "w") as writer:
        for member in reader.getmembers():
            if member.name == skip:
                continue
            data = reader.extractfile(member).read()
            data = (change(member.name, data) if change else None) or data
            member.size = len(data)
            writer.addfile(member, io.BytesIO(data))
        if extra is not None:
            writer.addfile(extra, io.BytesIO(b"x" * extra.size) if extra.isreg() else None)


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, 1 if kind == tarfile.REGTYPE else 0
    return info


def changed_manifest(**changes):
    def change(name: str, data: bytes) -> bytes | None:
        if not name.endswith("manifest.json"):
            return None
        manifest = json.loads(data) | changes
        manifest["manifest_sha256"] = manifest_digest(manifest)
        return serialize_manifest(manifest)

    return change


def flip_weights(name: str, data: bytes) -> bytes | None:
    return bytes([data[0] ^ 1]) + data[1:] if name.endswith(".safetensors") else None


@pytest.fixture(scope="module")
def archives(workspace) -> Path:
    """An export of version 1 of the workspace registry, plus altered copies, in {work}/archives."""
    folder = Path(workspace["work"]) / "archives"
    folder.mkdir()
    good = folder / "good.tar"
    Registry(workspace["registry"]).export([1], good)
    weights = "versions/000001/adapter_model.safetensors"
    copy_archive(good, folder / "absolute.tar", extra=entry("/tmp/adapters-escape"))
    copy_archive(good, folder / "dot-dot.tar", extra=entry("versions/000001/../../escape"))
    copy_archive(good, folder / "symlink.tar", extra=entry("versions/000001/shadow", tarfile.SYMTYPE, "/etc/passwd"))
    copy_archive(good, folder / "hard-link.tar", extra=entry("versions/000001/linked", tarfile.LNKTYPE, weights))
    copy_archive(good, folder / "device.tar", extra=entry("versions/000001/null", tarfile.CHRTYPE))
    copy_archive(good, folder / "fifo.tar", extra=entry("versions/000001/pipe", tarfile.FIFOTYPE))
    copy_archive(good, folder / "outside.tar", extra=entry("notes.txt"))
    copy_archive(good, folder / "pickle.tar", extra=entry("versions/000001/adapter_model.bin"))
    copy_archive(good, folder / "no-index.tar", skip="export.json")
    copy_archive(good, folder / "damaged.tar", change=flip_weights)
    copy_archive(good, folder / "newer.tar", change=changed_manifest(format_version=99))
    copy_archive(good, folder / "other-labels.tar", change=changed_manifest(labels=["cat", "dog"]))
    (folder / "truncated.tar").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return folder


IMPORT_ERRORS = [
    pytest.param("absolute.tar", "'/tmp/adapters-escape' has an absolute path", id="archive-absolute-path"),
    pytest.param("dot-dot.tar", "'..'", id="archive-dot-dot"),
    pytest.param("symlink.tar", "is a symlink to '/etc/passwd'", id="archive-symlink"),
    pytest.param("hard-link.tar", "is a hard link", id="archive-hard-link"),
    pytest.param("device.tar", "is a device file", id="archive-device-file"),
    pytest.param("fifo.tar", "is a FIFO", id="archive-fifo"),
    pytest.param("outside.tar", "'notes.txt' lies outside versions/<id>/", id="archive-entry-outside-versions"),
    pytest.param("pickle.tar", "pickle-based format", id="archive-pickle-file"),
    pytest.param("no-index.tar", "no export.json", id="archive-index-missing"),
    pytest.param("damaged.tar", "adapter_model.safetensors has", id="archive-checksum-mismatch"),
    pytest.param("newer.tar", "format_version 99", id="archive-newer-format"),
    pytest.param("other-labels.tar", "['cat', 'dog']", id="archive-other-labels"),
    pytest.param("truncated.tar", "the archive is damaged (unexpected end of data)", id="archive-truncated"),
]


@pytest.mark.parametrize("archive, expected", IMPORT_ERRORS)
def test_bad_archive_import_is_one_line(workspace, archives, archive, expected, capsys, caplog):
    before = snapshot(Path(workspace["work"]))

    assert_one_line_error(["import", str(archives / archive), "--registry", workspace["registry"]], expected, capsys, caplog)

    assert snapshot(Path(workspace["work"])) == before
    assert not Path("/tmp/adapters-escape").exists()


def test_bad_archive_creates_no_registry(workspace, archives, capsys, caplog):
    target = Path(workspace["work"]) / "new-registry"

    assert_one_line_error(["import", str(archives / "damaged.tar"), "--registry", str(target)], "adapter_model.safetensors has", capsys, caplog)

    assert not target.exists()


def mount_or_skip(arguments: list[str], purpose: str) -> None:
    finished = subprocess.run(["mount", *arguments], capture_output=True, text=True)
    if finished.returncode != 0:
        pytest.skip(f"cannot {purpose} here (`mount {' '.join(arguments)}` failed: {finished.stderr.strip()})")


@pytest.fixture
def read_only_registry(workspace, tmp_path) -> Path:
    """A copy of the workspace registry, bind-mounted read-only.

    chmod does not stop root, who runs these tests in CI, from writing, so only a
    read-only mount makes every write fail.
    """
    writable, mount_point = tmp_path / "writable", tmp_path / "read-only"
    shutil.copytree(workspace["registry"], writable / "registry")
    mount_point.mkdir()
    mount_or_skip(["--bind", str(writable), str(mount_point)], "bind-mount a folder")
    try:
        mount_or_skip(["-o", "remount,bind,ro", str(mount_point)], "remount a bind mount read-only")
        yield mount_point / "registry"
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


READ_ONLY_WRITES = [
    pytest.param("promote 1 --alias staging", id="promote"),
    pytest.param("rollback --alias production", id="rollback"),
    pytest.param("delete 1 --force", id="delete"),
    pytest.param("gc", id="gc"),
    pytest.param("import {archives}/good.tar", id="import"),
]


@pytest.mark.parametrize("template", READ_ONLY_WRITES)
def test_read_only_registry_rejects_writes(read_only_registry, archives, template, capsys, caplog):
    argv = expand(template, {"archives": str(archives)}) + ["--registry", str(read_only_registry)]
    before = snapshot(read_only_registry)

    assert_one_line_error(argv, f"Read-only file system ({read_only_registry}/", capsys, caplog)
    assert_one_line_error(argv, f"; make {read_only_registry} writable (or mount it read-write)", capsys, caplog)

    assert snapshot(read_only_registry) == before


def test_read_only_registry_still_readable(read_only_registry, tmp_path, capsys):
    for argv in (["verify"], ["list"], ["history", "production"], ["show", "1"], ["export", "1", "--out", str(tmp_path / "copy.tar")]):
        status, stderr = run_in_process(argv + ["--registry", str(read_only_registry)], capsys)
        assert status == 0, (argv, stderr)
    assert tarfile.is_tarfile(tmp_path / "copy.tar")


def fill_file_system(path: Path) -> None:
    """Write `path` until its file system reports no space left."""
    with open(path, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * (1 << 16))
                handle.flush()
        except OSError as error:
            assert error.errno == 28, error


@pytest.mark.parametrize("template", [
    pytest.param(f"train --registry {{registry}} --base {{base}} {ON_INCREMENT} --epochs 1", id="train"),
    pytest.param("import {archives}/good.tar --registry {registry}", id="import"),
])
def test_disk_full_during_publish_changes_nothing(workspace, archives, tmp_path, template, capsys, caplog):
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mount_or_skip(["-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], "mount a small tmpfs")
    try:
        registry = mount_point / "registry"
        shutil.copytree(workspace["registry"], registry)
        fill_file_system(mount_point / "filler")
        before = snapshot(registry)
        argv = expand(template, workspace | {"registry": str(registry), "archives": str(archives)})

        assert_one_line_error(argv, "No space left on device", capsys, caplog)

        assert snapshot(registry) == before
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def limit_file_size() -> None:
    """Limit files this process writes to 4 KiB, so that a larger write fails with EFBIG instead of a signal."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_file_size_limit_during_import_changes_nothing(workspace, archives, tmp_path):
    registry = tmp_path / "registry"
    shutil.copytree(workspace["registry"], registry)
    before = snapshot(registry)
    environment = {name: value for name, value in os.environ.items() if name != "ADAPTERS_REGISTRY"}
    command = [sys.executable, "-m", "adapters", "import", str(archives / "good.tar"), "--registry", str(registry)]

    finished = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300, preexec_fn=limit_file_size)
    lines = non_empty_lines(finished.stderr)

    assert finished.returncode == 2
    assert len(lines) == 1, finished.stderr
    assert lines[0].startswith("adapters import: error: ")
    assert "File too large" in lines[0]
    assert "ulimit -f" in lines[0]
    assert "Traceback" not in finished.stderr
    assert snapshot(registry) == before
