"""The whole product path on the real MiniLM base and real Home Depot data, a few hundred rows per increment."""

from __future__ import annotations

import json

import pytest
import torch

from adapters.cli.main import main
from adapters.workflow import load_merged_model, load_version_model, open_registry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_path(homedepot_csv, minilm_path, tmp_path_factory):
    """Split the real file into 4 increments of 300 rows, train LoRA on part 1 and AdaLoRA on part 2."""
    folder = tmp_path_factory.mktemp("real")
    registry = folder / "registry"
    assert main(["split", str(homedepot_csv), "--preset", "homedepot", "--by", "product_uid", "--parts", "4",
                 "--max-rows", "300", "--out", str(folder / "increments")]) == 0
    common = ["--registry", str(registry), "--preset", "homedepot", "--epochs", "2", "--batch-size", "16"]
    assert main(["train", "--data", str(folder / "increments" / "part-1.csv"), "--method", "lora", *common]) == 0
    assert main(["train", "--data", str(folder / "increments" / "part-2.csv"), "--method", "adalora", *common]) == 0
    return {"folder": folder, "registry": registry, "parts": [folder / "increments" / f"part-{i}.csv" for i in (1, 2)]}


def test_real_increments_follow_product_order(real_path):
    import csv

    last_uid = 0
    for part in real_path["parts"]:
        with open(part, encoding="iso-8859-1", newline="") as handle:
            uids = [int(row["product_uid"]) for row in csv.DictReader(handle)]
        assert len(uids) == 300
        assert uids == sorted(uids)
        assert uids[0] > last_uid
        last_uid = uids[-1]


def test_real_versions_record_lineage(real_path):
    registry = open_registry(real_path["registry"])
    first, second = registry.versions()

    assert first.manifest["method"] == "lora"
    assert second.manifest["method"] == "adalora"
    assert first.manifest["base"]["fingerprint"] == second.manifest["base"]["fingerprint"]
    assert first.manifest["data"]["fingerprint"] != second.manifest["data"]["fingerprint"]
    assert sum(second.manifest["adalora"]["rank_pattern"].values()) <= 8 * 12


def test_real_merge_of_one_version_matches_peft_logits(real_path, capsys):
    out_dir = real_path["folder"] / "deploy-adalora"
    assert main(["merge", "--registry", str(real_path["registry"]), "2", "--out", str(out_dir)]) == 0

    merged = load_merged_model(out_dir)
    adapter = load_version_model(open_registry(real_path["registry"]), "2")
    inputs = merged.tokenizer(["angle bracket", "cordless drill 18v"], ["Simpson Strong-Tie 12-Gauge Angle", "DEWALT 20-Volt Drill"],
                              padding=True, return_tensors="pt")
    with torch.no_grad():
        difference = (merged.model(**inputs).logits - adapter.model(**inputs).logits).abs().max().item()
    assert difference <= 1e-5


def test_real_merge_evaluate_and_rollback(real_path, capsys):
    registry = str(real_path["registry"])
    out_dir = real_path["folder"] / "deploy"
    assert main(["merge", "--registry", registry, "1", "2", "--weights", "0.4,0.6", "--out", str(out_dir)]) == 0
    capsys.readouterr()

    assert main(["evaluate", "--registry", registry, str(out_dir), "--data", *map(str, real_path["parts"]),
                 "--preset", "homedepot", "--json"]) == 0
    matrix = json.loads(capsys.readouterr().out)["matrix"][str(out_dir)]
    for metrics in matrix.values():
        assert metrics["n"] > 20
        assert 0.0 <= metrics["ndcg@10"] <= 1.0

    assert main(["promote", "--registry", registry, "1", "--alias", "production"]) == 0
    assert main(["promote", "--registry", registry, "2", "--alias", "production"]) == 0
    assert main(["rollback", "--registry", registry, "--alias", "production"]) == 0
    assert open_registry(real_path["registry"]).aliases()["production"] == 1


def test_real_wrong_base_is_refused(real_path, tiny_bert, capsys):
    code = main(["evaluate", "--registry", str(real_path["registry"]), "1", "--data", str(real_path["parts"][0]),
                 "--preset", "homedepot", "--base", str(tiny_bert)])

    error = capsys.readouterr().err
    assert code == 2
    assert "fingerprint" in error
    assert "--base" in error
