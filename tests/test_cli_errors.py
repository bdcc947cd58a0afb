"""Tests of malformed command lines. Each must exit with status 2, print one error line and change no file.

The table runs `adapters.cli.main.main` in-process for speed. An exception that escapes `main`
would be a traceback and exit status 1 in a real run, so the helper fails the case on it. Log
records at WARNING or above count as extra stderr lines, because `--quiet` still prints them.
One subprocess test checks the real exit status and stderr of the installed entry point.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.cli.main import main
from conftest import synthetic_rows, write_homedepot_csv, write_tiny_bert


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
]

# Errors that argparse raises before any handler runs, as (command template, text the error line must contain).
ARGPARSE_ERRORS = [
    ("evaluate 1 --registry {registry} --data {files}/increment.csv --preset homedepot --batch-size 0", "0 must be at least 1"),
    pytest.param("merge 1 --weights nan --out {work}/merge-out --registry {registry}", "'nan'", id="merge-weights-nan"),
    pytest.param("merge 1 --weights 0.4,abc --out {work}/merge-out --registry {registry}", "'0.4,abc'", id="merge-weights-not-numbers"),
    pytest.param(f"{TRAIN} --preset kaggle --data {{files}}/increment.csv", "'kaggle'", id="preset-unknown"),
    pytest.param(f"{TRAIN} {ON_INCREMENT} --epochs x", "'x'", id="epochs-not-integer"),
    pytest.param(f"{TRAIN} {ON_INCREMENT} --method prefix", "'prefix'", id="method-unknown"),
    pytest.param("evaluate 1 --registry {registry} --data {files}/increment.csv --split dev", "'dev'", id="evaluate-split-unknown"),
    pytest.param("show --registry {registry}", "version", id="show-version-absent"),
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
