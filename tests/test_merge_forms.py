"""Merging registry versions: trained AdaLoRA plus LoRA, adapter output forms, dry runs and input checks."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch
from peft import AdaLoraConfig, PeftModel, TaskType, get_peft_model
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from adapters.base import BaseSpec, load_classifier
from adapters.config import TrainConfig
from adapters.data import column_map
from adapters.deploy import merge_versions
from adapters.errors import AdaptersError
from adapters.merge_methods import MergeOptions
from adapters.merging import delta_weights, merge_state_dict, read_adapter
from adapters.workflow import load_version_model, open_registry, train_increment
from conftest import synthetic_rows, write_homedepot_csv

LABELS = ["irrelevant", "partial", "relevant"]


@pytest.fixture(scope="module")
def registry(tiny_bert, tmp_path_factory):
    """Versions 1 and 2 are trained AdaLoRA adapters after rank reallocation; version 3 is LoRA."""
    folder = tmp_path_factory.mktemp("merge-forms")
    root = folder / "registry"
    for index, method in enumerate(["adalora", "adalora", "lora"], start=1):
        data = write_homedepot_csv(folder / f"part-{index}.csv", synthetic_rows(120, seed=10 + index))
        config = TrainConfig(method=method, epochs=2, batch_size=8, init_r=6, target_r=3, r=4)
        train_increment(root, data, column_map("homedepot"), config, base=str(tiny_bert))
    return root


def logits_of(model, tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    inputs = tokenizer(["angle bracket", "deck paint white", "garden hose"], ["steel angle bracket", "wood deck paint", "brass valve"],
                       padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits.float()


def tree_hash(root) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_trained_adalora_versions_have_reallocated_ranks(registry):
    for version in open_registry(registry).versions()[:2]:
        ranks = version.manifest["adalora"]["rank_pattern"]
        assert sum(ranks.values()) <= 3 * len(ranks)
        assert set(ranks.values()) != {6}


def test_two_adalora_and_one_lora_match_peft_updates(registry, tiny_bert, tmp_path):
    result = merge_versions(registry, ["1", "2", "3"], tmp_path / "dense", weights=[1 / 3] * 3, base=str(tiny_bert))

    # Reference: the base plus a third of each update as peft's own layers compute it.
    spec = BaseSpec(str(tiny_bert), str(tiny_bert))
    reference = load_classifier(spec, LABELS)
    state = {key: value.clone() for key, value in reference.state_dict().items()}
    reg = open_registry(registry)
    for ref in ("1", "2", "3"):
        peft_model = load_version_model(reg, ref, str(tiny_bert)).model
        for name, module in peft_model.named_modules():
            if hasattr(module, "get_delta_weight") and "default" in getattr(module, "lora_A", {}):
                key = name.removeprefix("base_model.model.") + ".weight"
                state[key] += module.get_delta_weight("default").float() / 3
    saved = [read_adapter(reg.get(ref).path).tensors for ref in ("1", "2", "3")]
    for key in ("classifier.weight", "classifier.bias", "bert.pooler.dense.weight", "bert.pooler.dense.bias"):
        state[key] = sum(tensors[f"base_model.model.{key}"] for tensors in saved) / 3
    reference.load_state_dict(state)

    merged = AutoModelForSequenceClassification.from_pretrained(result.out_dir).eval()
    assert torch.allclose(logits_of(merged, tiny_bert), logits_of(reference, tiny_bert), atol=1e-5)


def test_exact_adapter_reproduces_dense_merge(registry, tiny_bert, tmp_path):
    dense = merge_versions(registry, ["1", "3"], tmp_path / "dense", weights=[0.6, 0.4], base=str(tiny_bert))
    exact = merge_versions(registry, ["1", "3"], weights=[0.6, 0.4], form="exact", base=str(tiny_bert))

    version = open_registry(registry).get(exact.version)
    assert version.manifest["parents"] == [1, 3]
    config = json.loads((version.path / "adapter_config.json").read_text())
    ranks_1 = open_registry(registry).get(1).manifest["adalora"]["rank_pattern"]
    query = "bert.encoder.layer.0.attention.self.query"
    assert config["rank_pattern"][query] == ranks_1[query] + 4
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3)
    loaded = PeftModel.from_pretrained(base, str(version.path)).eval()
    merged = AutoModelForSequenceClassification.from_pretrained(dense.out_dir).eval()
    assert torch.allclose(logits_of(loaded, tiny_bert), logits_of(merged, tiny_bert), atol=1e-5)


def test_svd_adapter_reports_true_relative_error(registry, tiny_bert, tmp_path):
    result = merge_versions(registry, ["1", "2", "3"], form="svd", rank=1, base=str(tiny_bert))

    version = open_registry(registry).get(result.version)
    stored = version.manifest["merge"]["modules"]
    dense_updates = {}
    adapters = [read_adapter(open_registry(registry).get(ref).path) for ref in ("1", "2", "3")]
    for module in stored:
        dense_updates[module] = sum(delta_weights(adapter).get(module, 0) / 3 for adapter in adapters)
    merged = delta_weights(read_adapter(version.path))
    for module, figures in stored.items():
        truth = torch.linalg.matrix_norm(dense_updates[module] - merged[module]) / torch.linalg.matrix_norm(dense_updates[module])
        assert figures["svd_relative_error"] == pytest.approx(truth.item(), abs=1e-5)
        assert 0.0 < figures["svd_relative_error"] < 1.0


def test_svd_at_full_energy_matches_dense_logits(registry, tiny_bert, tmp_path):
    dense = merge_versions(registry, ["2", "3"], tmp_path / "dense", base=str(tiny_bert))
    svd = merge_versions(registry, ["2", "3"], form="svd", energy=1.0, base=str(tiny_bert))

    version = open_registry(registry).get(svd.version)
    assert max(f["svd_relative_error"] for f in version.manifest["merge"]["modules"].values()) < 1e-5
    loaded = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3), str(version.path)).eval()
    merged = AutoModelForSequenceClassification.from_pretrained(dense.out_dir).eval()
    assert torch.allclose(logits_of(loaded, tiny_bert), logits_of(merged, tiny_bert), atol=1e-5)


def test_dry_run_writes_nothing(registry, tiny_bert, tmp_path):
    before = tree_hash(registry)

    result = merge_versions(registry, ["1", "2"], form="svd", rank=2, dry_run=True, base=str(tiny_bert),
                            options=MergeOptions(method="ties", density=0.5))

    assert tree_hash(registry) == before
    assert result.version is None
    figures = result.modules["bert.encoder.layer.0.attention.self.query"]
    assert len(figures["delta_norms"]) == 2
    assert figures["merged_norm"] > 0
    assert "svd_relative_error" in figures


def test_merge_lists_every_problem_at_once(registry, tiny_bert, tmp_path):
    reg = open_registry(registry)
    relabelled = tmp_path / "relabelled"
    shutil.copytree(reg.get(3).path, relabelled)
    (relabelled / "manifest.json").unlink()
    manifest = {k: v for k, v in reg.get(3).manifest.items() if k not in ("id", "created", "format_version", "files")}
    other = reg.publish(relabelled, manifest | {"labels": ["bad", "ok", "good"]})
    before = tree_hash(registry)

    with pytest.raises(AdaptersError) as raised:
        merge_versions(registry, ["1", "1", str(other.id)], tmp_path / "out", weights=[1.0, float("nan"), 1.0], base=str(tiny_bert))

    message = str(raised.value)
    assert "listed twice" in message
    assert "different label maps" in message
    assert "['bad', 'ok', 'good']" in message
    assert "nan" in message
    assert tree_hash(registry) == before
    assert not (tmp_path / "out").exists()


def test_exact_form_rejects_ties(registry, tiny_bert):
    with pytest.raises(AdaptersError, match="exact needs --method linear or task-arithmetic"):
        merge_versions(registry, ["1", "3"], form="exact", options=MergeOptions(method="ties"), base=str(tiny_bert))


def test_bfloat16_base_merge_is_close_to_float32(registry, tiny_bert):
    spec = BaseSpec(str(tiny_bert), str(tiny_bert))
    adapters = [read_adapter(open_registry(registry).get(ref).path) for ref in ("1", "3")]
    full = load_classifier(spec, LABELS, dtype=torch.float32)
    half = load_classifier(spec, LABELS, dtype=torch.bfloat16)

    full.load_state_dict(merge_state_dict(full.state_dict(), adapters, [0.5, 0.5]))
    half.load_state_dict(merge_state_dict(half.state_dict(), adapters, [0.5, 0.5]))

    assert next(half.parameters()).dtype == torch.bfloat16
    assert torch.allclose(logits_of(half, tiny_bert), logits_of(full, tiny_bert), atol=1e-2)


def test_adalora_pruned_module_reloads_with_same_logits(tiny_bert, tmp_path):
    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3).eval()
    config = AdaLoraConfig(task_type=TaskType.SEQ_CLS, init_r=4, target_r=2, total_step=10, tinit=1, tfinal=2, target_modules=["query", "value"])
    model = get_peft_model(base, config).eval()
    masks = {"bert.encoder.layer.0.attention.self.value": [False] * 4, "bert.encoder.layer.0.attention.self.query": [True, False, True, False],
             "bert.encoder.layer.1.attention.self.query": [True] * 4, "bert.encoder.layer.1.attention.self.value": [False, True, False, False]}
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.normal_(0, 0.5)
        for module, mask in masks.items():
            lora_E = model.get_submodule(f"base_model.model.{module}").lora_E["default"]
            lora_E[~torch.tensor(mask)] = 0.0
    model.peft_config["default"].rank_pattern = {f"{module}.lora_E.default": mask for module, mask in masks.items()}
    original = logits_of(model, tiny_bert)
    model.save_pretrained(tmp_path / "pruned")

    torch.manual_seed(0)
    reloaded = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3), str(tmp_path / "pruned")).eval()
    deltas = delta_weights(read_adapter(tmp_path / "pruned"))

    assert torch.allclose(logits_of(reloaded, tiny_bert), original, atol=1e-6)
    assert torch.count_nonzero(deltas["bert.encoder.layer.0.attention.self.value"]) == 0


def test_adapter_for_missing_module_is_rejected(registry, tiny_bert, tmp_path):
    adapter = read_adapter(open_registry(registry).get(3).path)
    renamed = {key.replace("layer.1.", "layer.7."): value for key, value in adapter.tensors.items()}
    stray = type(adapter)("stray", adapter.config, renamed)
    base = load_classifier(BaseSpec(str(tiny_bert), str(tiny_bert)), LABELS).state_dict()

    with pytest.raises(AdaptersError, match=r"bert\.encoder\.layer\.7\..*weight.*does not have"):
        merge_state_dict(base, [stray], [1.0])
