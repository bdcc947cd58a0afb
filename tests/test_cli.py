"""The documented CLI path on a tiny base: train, list, show, promote, merge, evaluate, roll back."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from adapters.cli.main import main
from adapters.precision import resolve_precision
from conftest import synthetic_rows, write_homedepot_csv


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory):
    """A registry with a LoRA version on increment 1 and an AdaLoRA version on increment 2."""
    folder = tmp_path_factory.mktemp("cli")
    first = write_homedepot_csv(folder / "part-1.csv", synthetic_rows(120, seed=1))
    second = write_homedepot_csv(folder / "part-2.csv", synthetic_rows(120, seed=2))
    registry = folder / "registry"
    common = ["--registry", str(registry), "--preset", "homedepot", "--base", str(tiny_bert), "--batch-size", "16"]
    assert main(["train", "--data", str(first), "--method", "lora", "--epochs", "1", *common]) == 0
    assert main(["train", "--data", str(second), "--method", "adalora", "--epochs", "2", *common]) == 0
    return {"registry": registry, "first": first, "second": second, "folder": folder}


def test_train_prints_version_id_last(tiny_bert, tmp_path, capsys):
    data = write_homedepot_csv(tmp_path / "part.csv", synthetic_rows(90, seed=3))

    code, out, _ = run_cli(capsys, "train", "--registry", str(tmp_path / "reg"), "--data", str(data), "--preset", "homedepot",
                           "--base", str(tiny_bert), "--epochs", "1", "--batch-size", "16")

    assert code == 0
    assert out.strip().splitlines()[-1] == "1"


def test_list_json_describes_both_versions(trained, capsys):
    code, out, _ = run_cli(capsys, "list", "--registry", str(trained["registry"]), "--json")

    document = json.loads(out)
    assert code == 0
    assert [v["id"] for v in document["versions"]] == [1, 2]
    assert [v["method"] for v in document["versions"]] == ["lora", "adalora"]
    assert document["labels"] == ["irrelevant", "partial", "relevant"]


def test_show_json_has_lineage_and_rank_pattern(trained, capsys):
    code, out, _ = run_cli(capsys, "show", "--registry", str(trained["registry"]), "2", "--json")

    manifest = json.loads(out)["manifest"]
    assert code == 0
    assert manifest["base"]["fingerprint"].startswith("sha256:")
    assert manifest["data"]["fingerprint"].startswith("sha256:")
    assert manifest["data"]["rows"]["read"] == 120
    assert manifest["hyperparameters"]["method"] == "adalora"
    assert manifest["adalora"]["update_and_allocate_calls"] == manifest["adalora"]["total_step"]
    assert len(manifest["adalora"]["rank_pattern"]) == 4
    assert {"adapter_model.safetensors", "adapter_config.json"} <= set(manifest["files"])


def test_show_text_prints_rank_pattern(trained, capsys):
    code, out, _ = run_cli(capsys, "show", "--registry", str(trained["registry"]), "2")

    assert code == 0
    assert "rank pattern" in out
    assert "bert.encoder.layer.0.attention.self.query" in out
    assert f"precision=auto ({resolve_precision('auto')})" in out


def test_promote_and_rollback_move_alias_and_keep_history(trained, capsys, monkeypatch):
    monkeypatch.setenv("ADAPTERS_REGISTRY", str(trained["registry"]))

    assert run_cli(capsys, "promote", "1", "--alias", "staging")[0] == 0
    assert run_cli(capsys, "promote", "2", "--alias", "staging", "--reason", "new increment")[0] == 0
    code, out, _ = run_cli(capsys, "rollback", "--alias", "staging")

    assert code == 0
    assert out.strip() == "staging: 2 -> 1"
    document = json.loads(run_cli(capsys, "list", "--json")[1])
    moves = [m for m in document["alias_history"] if m["alias"] == "staging"]
    assert [(m["action"], m["from"], m["to"]) for m in moves] == [("promote", None, 1), ("promote", 1, 2), ("rollback", 2, 1)]
    assert document["aliases"]["staging"] == 1


def test_merged_folder_loads_without_peft_and_matches_adapter(trained, tiny_bert, capsys):
    out_dir = trained["folder"] / "deploy-single"

    code, _, _ = run_cli(capsys, "merge", "--registry", str(trained["registry"]), "2", "--out", str(out_dir), "--base", str(tiny_bert))

    assert code == 0
    assert {"config.json", "model.safetensors", "README.md", "tokenizer_config.json"} <= {p.name for p in out_dir.iterdir()}
    umask = os.umask(0)
    os.umask(umask)
    assert (out_dir / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
    assert out_dir.stat().st_mode & 0o777 == 0o777 & ~umask
    merged = AutoModelForSequenceClassification.from_pretrained(out_dir).eval()
    from adapters.workflow import load_version_model, open_registry

    adapter = load_version_model(open_registry(trained["registry"]), "2", str(tiny_bert)).model
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    inputs = tokenizer(["angle bracket", "deck paint"], ["steel angle bracket", "wood deck"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(merged(**inputs).logits, adapter(**inputs).logits, atol=1e-5)
    assert merged.config.id2label == {0: "irrelevant", 1: "partial", 2: "relevant"}


def test_merge_is_recorded_and_card_lists_versions(trained, tiny_bert, capsys):
    out_dir = trained["folder"] / "deploy-pair"

    code, _, _ = run_cli(capsys, "merge", "--registry", str(trained["registry"]), "1", "2", "--weights", "0.4,0.6",
                         "--out", str(out_dir), "--base", str(tiny_bert))

    assert code == 0
    card = (out_dir / "README.md").read_text()
    assert "| 1 | lora | 0.4 |" in card
    assert "| 2 | adalora | 0.6 |" in card
    merges = json.loads(run_cli(capsys, "list", "--registry", str(trained["registry"]), "--json")[1])["merges"]
    assert merges[-1]["versions"] == [1, 2]
    assert merges[-1]["weights"] == [0.4, 0.6]


def test_evaluate_prints_matrix_for_targets_by_increments(trained, tiny_bert, capsys):
    out_dir = trained["folder"] / "deploy-eval"
    main(["merge", "--registry", str(trained["registry"]), "1", "2", "--out", str(out_dir), "--base", str(tiny_bert)])
    capsys.readouterr()

    code, out, _ = run_cli(capsys, "evaluate", "--registry", str(trained["registry"]), str(out_dir), "1",
                           "--data", str(trained["first"]), str(trained["second"]), "--preset", "homedepot", "--base", str(tiny_bert), "--json")

    matrix = json.loads(out)["matrix"]
    assert code == 0
    assert set(matrix) == {str(out_dir), "1"}
    for results in matrix.values():
        assert set(results) == {str(trained["first"]), str(trained["second"])}
        for metrics in results.values():
            assert 0.0 <= metrics["accuracy"] <= 1.0
            assert {"macro_precision", "macro_recall", "macro_f1", "per_class", "ndcg@10"} <= set(metrics)


def test_python_dash_m_matches_console_script():
    result = subprocess.run([sys.executable, "-m", "adapters", "--help"], capture_output=True, text=True, timeout=120)

    assert result.returncode == 0
    for command in ("split", "train", "list", "show", "promote", "rollback", "merge", "evaluate", "bench", "demo"):
        assert command in result.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_accelerate_launch_two_processes_publishes_once(tiny_bert, tmp_path):
    # accelerate starts several CPU processes only through torchrun, which its --multi_gpu flag
    # selects; adapters.distributed then joins them into one gloo group on loopback.
    data = write_homedepot_csv(tmp_path / "part.csv", synthetic_rows(120, seed=4))
    registry = tmp_path / "registry"
    environment = {**os.environ, "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()),
        "-m", "adapters", "train", "--registry", str(registry), "--data", str(data), "--preset", "homedepot",
        "--base", str(tiny_bert), "--epochs", "1", "--batch-size", "8",
    ]

    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment, cwd=tmp_path)

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "1"
    assert result.stdout.count("validation accuracy") == 1
    versions = sorted(p.name for p in (registry / "versions").iterdir())
    assert versions == ["000001"]
    manifest = json.loads((registry / "versions" / "000001" / "manifest.json").read_text())
    assert manifest["training"]["num_processes"] == 2
    micro_batches_per_process = -(-(-(-manifest["data"]["rows"]["train"] // 8)) // 2)
    assert manifest["training"]["optimizer_steps"] == micro_batches_per_process


def test_merge_as_exact_adapter_prints_new_version(trained, tiny_bert, capsys):
    code, out, _ = run_cli(capsys, "merge", "--registry", str(trained["registry"]), "1", "2", "--as-adapter", "exact", "--base", str(tiny_bert))

    new_id = out.strip().splitlines()[-1]
    assert code == 0
    shown = json.loads(run_cli(capsys, "show", "--registry", str(trained["registry"]), new_id, "--json")[1])["manifest"]
    assert shown["parents"] == [1, 2]
    assert shown["merge"]["form"] == "exact"


def test_merge_dry_run_prints_module_norms(trained, tiny_bert, capsys):
    before = sorted(p.name for p in (trained["registry"] / "versions").iterdir())

    code, out, _ = run_cli(capsys, "merge", "--registry", str(trained["registry"]), "1", "2", "--method", "ties", "--density", "0.5",
                           "--as-adapter", "svd", "--rank", "2", "--dry-run", "--base", str(tiny_bert))

    assert code == 0
    assert "svd error" in out
    assert "bert.encoder.layer.0.attention.self.query" in out
    assert "nothing was written" in out
    assert sorted(p.name for p in (trained["registry"] / "versions").iterdir()) == before
