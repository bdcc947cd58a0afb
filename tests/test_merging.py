"""Merging: exact weight updates against hand-computed references, and merged logits against peft."""

from __future__ import annotations

import math

import pytest
import torch
from peft import AdaLoraConfig, LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from adapters.errors import AdaptersError
from adapters.merging import (
    AdapterWeights,
    combine_weights,
    delta_weights,
    head_weights,
    merge_state_dict,
    read_adapter,
)

MODULE = "bert.encoder.layer.0.attention.self.query"
PREFIX = "base_model.model."


def lora_adapter(name: str, lora_A, lora_B, *, alpha: float, head=None, **config) -> AdapterWeights:
    tensors = {
        f"{PREFIX}{MODULE}.lora_A.weight": torch.tensor(lora_A, dtype=torch.float32),
        f"{PREFIX}{MODULE}.lora_B.weight": torch.tensor(lora_B, dtype=torch.float32),
    }
    if head is not None:
        tensors[f"{PREFIX}classifier.weight"] = torch.tensor(head, dtype=torch.float32)
    return AdapterWeights(name, {"peft_type": "LORA", "lora_alpha": alpha, **config}, tensors)


def test_lora_delta_is_scaled_b_times_a():
    adapter = lora_adapter("a", [[1, 0, 2], [0, 1, 0]], [[1, 0], [0, 1], [1, 1], [0, 0]], alpha=4)

    delta = delta_weights(adapter)[MODULE]

    # B @ A = [[1,0,2],[0,1,0],[1,1,2],[0,0,0]], scaled by alpha / r = 4 / 2.
    expected = torch.tensor([[2, 0, 4], [0, 2, 0], [2, 2, 4], [0, 0, 0]], dtype=torch.float32)
    assert torch.allclose(delta, expected, atol=1e-7)


def test_lora_delta_uses_rslora_scaling():
    adapter = lora_adapter("a", [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]], [[1, 0, 0, 0], [0, 1, 0, 0]], alpha=4, use_rslora=True)

    delta = delta_weights(adapter)[MODULE]

    # r = 4 and B @ A is the 2x2 identity, so dW = identity * 4 / sqrt(4).
    assert torch.allclose(delta, 2 * torch.eye(2), atol=1e-7)


def test_lora_delta_follows_alpha_pattern():
    adapter = lora_adapter("a", [[1.0]], [[1.0]], alpha=4, alpha_pattern={"query": 10})

    assert delta_weights(adapter)[MODULE].item() == pytest.approx(10.0, abs=1e-6)


def test_adalora_delta_matches_peft_formula():
    lora_A = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]])
    lora_E = torch.tensor([[2.0], [0.5]])
    lora_B = torch.tensor([[1.0, 0.0], [1.0, 2.0]])
    tensors = {f"{PREFIX}{MODULE}.lora_A": lora_A, f"{PREFIX}{MODULE}.lora_E": lora_E, f"{PREFIX}{MODULE}.lora_B": lora_B}
    adapter = AdapterWeights("ada", {"peft_type": "ADALORA", "lora_alpha": 8, "init_r": 4}, tensors)

    delta = delta_weights(adapter)[MODULE]

    # A * E = [[2,4,0],[0,0.5,0.5]]; B @ (A * E) = [[2,4,0],[2,5,1]]; scaled by 8 / (4 + 1e-5).
    expected = torch.tensor([[2.0, 4.0, 0.0], [2.0, 5.0, 1.0]]) * 8 / (4 + 1e-5)
    assert torch.allclose(delta, expected, atol=1e-6)


def test_adalora_module_pruned_to_rank_zero_gives_zero_update():
    tensors = {
        f"{PREFIX}{MODULE}.lora_A": torch.zeros(0, 3),
        f"{PREFIX}{MODULE}.lora_E": torch.zeros(0, 1),
        f"{PREFIX}{MODULE}.lora_B": torch.zeros(2, 0),
    }
    adapter = AdapterWeights("ada", {"peft_type": "ADALORA", "lora_alpha": 8, "init_r": 4}, tensors)

    delta = delta_weights(adapter)[MODULE]

    assert delta.shape == (2, 3)
    assert torch.count_nonzero(delta) == 0


def test_dora_adapter_is_rejected():
    adapter = lora_adapter("dora", [[1.0]], [[1.0]], alpha=1, use_dora=True)

    with pytest.raises(AdaptersError, match="use_dora"):
        delta_weights(adapter)


def test_combine_weights_alpha_unrolls_recursion():
    weights = combine_weights(3, alpha=0.5)

    # theta = 0.5 * (0.5 * v1 + 0.5 * v2) + 0.5 * v3
    assert weights == pytest.approx([0.25, 0.25, 0.5], abs=1e-12)


def test_combine_weights_defaults_to_equal_shares():
    assert combine_weights(4) == pytest.approx([0.25] * 4)


@pytest.mark.parametrize(
    ("count", "weights", "alpha", "message"),
    [
        (0, None, None, "no versions"),
        (2, [0.5], None, "2 versions"),
        (2, [0.5, math.nan], None, "finite"),
        (2, [0.5, math.inf], None, "finite"),
        (2, None, 1.5, "alpha"),
        (2, [0.5, 0.5], 0.5, "choose one"),
    ],
)
def test_combine_weights_rejects_bad_input(count, weights, alpha, message):
    with pytest.raises(AdaptersError, match=message):
        combine_weights(count, weights, alpha)


def random_lora(name: str, rank: int, seed: int, *, with_head: bool = True) -> AdapterWeights:
    generator = torch.Generator().manual_seed(seed)
    lora_A = torch.randn(rank, 6, generator=generator).tolist()
    lora_B = torch.randn(5, rank, generator=generator).tolist()
    head = torch.randn(3, 6, generator=generator).tolist() if with_head else None
    return lora_adapter(name, lora_A, lora_B, alpha=2 * rank, head=head)


def small_base_state() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    return {f"{MODULE}.weight": torch.randn(5, 6, generator=generator), "classifier.weight": torch.randn(3, 6, generator=generator)}


def test_merge_of_two_ranks_equals_weighted_delta_sum():
    first, second = random_lora("r4", 4, seed=1), random_lora("r8", 8, seed=2)
    base = small_base_state()

    merged = merge_state_dict(base, [first, second], [0.7, 0.3])

    delta_1, delta_2 = delta_weights(first)[MODULE], delta_weights(second)[MODULE]
    expected = base[f"{MODULE}.weight"] + 0.7 * delta_1 + 0.3 * delta_2
    assert torch.allclose(merged[f"{MODULE}.weight"], expected, atol=1e-6)


def test_merge_with_weights_one_zero_reproduces_first_adapter():
    first, second = random_lora("r4", 4, seed=1), random_lora("r8", 8, seed=2)
    base = small_base_state()

    merged = merge_state_dict(base, [first, second], [1.0, 0.0])

    expected = base[f"{MODULE}.weight"] + delta_weights(first)[MODULE]
    assert torch.allclose(merged[f"{MODULE}.weight"], expected, atol=1e-6)
    assert torch.allclose(merged["classifier.weight"], head_weights(first)["classifier.weight"], atol=1e-7)


def test_merge_with_negative_weight_subtracts_update():
    first, second = random_lora("r4", 4, seed=1), random_lora("r8", 8, seed=2, with_head=False)
    base = small_base_state()

    merged = merge_state_dict(base, [first, second], [1.0, -1.0])

    expected = base[f"{MODULE}.weight"] + delta_weights(first)[MODULE] - delta_weights(second)[MODULE]
    assert torch.allclose(merged[f"{MODULE}.weight"], expected, atol=1e-6)


def test_merged_head_is_weighted_average_of_heads():
    first, second = random_lora("r4", 4, seed=1), random_lora("r8", 8, seed=2)

    merged = merge_state_dict(small_base_state(), [first, second], [0.5, 0.5])

    head_1, head_2 = head_weights(first)["classifier.weight"], head_weights(second)["classifier.weight"]
    assert torch.allclose(merged["classifier.weight"], 0.5 * head_1 + 0.5 * head_2, atol=1e-6)


def test_merge_leaves_base_state_unchanged():
    base = small_base_state()
    before = {key: value.clone() for key, value in base.items()}

    merge_state_dict(base, [random_lora("r4", 4, seed=1)], [1.0])

    for key, value in before.items():
        assert torch.equal(base[key], value)


def test_merge_rejects_shape_mismatch_naming_both_shapes():
    base = small_base_state()
    base[f"{MODULE}.weight"] = torch.zeros(5, 7)

    with pytest.raises(AdaptersError, match=r"shape \(5, 6\).*\(5, 7\)"):
        merge_state_dict(base, [random_lora("r4", 4, seed=1)], [1.0])


def test_merge_rejects_module_missing_from_base():
    base = small_base_state()
    del base[f"{MODULE}.weight"]

    with pytest.raises(AdaptersError, match="does not have"):
        merge_state_dict(base, [random_lora("r4", 4, seed=1)], [1.0])


def test_merge_rejects_non_finite_result():
    adapter = random_lora("r4", 4, seed=1)
    adapter.tensors[f"{PREFIX}{MODULE}.lora_A.weight"][0, 0] = math.inf

    with pytest.raises(AdaptersError, match="NaN or infinity"):
        merge_state_dict(small_base_state(), [adapter], [1.0])


def test_merge_casts_once_to_base_dtype():
    base = {key: value.to(torch.bfloat16) for key, value in small_base_state().items()}

    merged = merge_state_dict(base, [random_lora("r4", 4, seed=1)], [1.0])

    assert merged[f"{MODULE}.weight"].dtype == torch.bfloat16
    expected = base[f"{MODULE}.weight"].float() + delta_weights(random_lora("r4", 4, seed=1))[MODULE]
    assert torch.allclose(merged[f"{MODULE}.weight"].float(), expected, atol=0.05 * expected.abs().max().item())


# Merged models against peft's own forward pass on a tiny BERT.

def _tiny_classifier(tiny_bert, seed: int = 0):
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3).eval()


def _inputs(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    return tokenizer(["angle bracket", "deck paint white"], ["steel angle bracket", "wood deck paint"], padding=True, return_tensors="pt")


def _save_random_adapter(tiny_bert, folder, config, seed: int, rank_pattern=None):
    torch.manual_seed(seed)
    model = get_peft_model(_tiny_classifier(tiny_bert), config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name or "classifier" in name:
                param.normal_(0, 0.5)
    if rank_pattern is not None:
        model.peft_config["default"].rank_pattern = rank_pattern
    model.save_pretrained(folder)
    return folder


def _peft_logits(tiny_bert, folder, inputs):
    model = PeftModel.from_pretrained(_tiny_classifier(tiny_bert), str(folder)).eval()
    with torch.no_grad():
        return model(**inputs).logits


def _merged_logits(tiny_bert, folders, weights, inputs):
    model = _tiny_classifier(tiny_bert)
    adapters = [read_adapter(folder) for folder in folders]
    model.load_state_dict(merge_state_dict(model.state_dict(), adapters, weights))
    with torch.no_grad():
        return model(**inputs).logits


def test_merged_lora_logits_equal_peft_logits(tiny_bert, tmp_path):
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=4, lora_alpha=8, target_modules=["query", "value"])
    folder = _save_random_adapter(tiny_bert, tmp_path / "lora", config, seed=1)
    inputs = _inputs(tiny_bert)

    expected = _peft_logits(tiny_bert, folder, inputs)
    merged = _merged_logits(tiny_bert, [folder], [1.0], inputs)

    assert torch.allclose(merged, expected, atol=1e-5)
    assert expected.abs().max() > 1e-3


def test_adalora_with_pruned_module_reloads_and_merges_exactly(tiny_bert, tmp_path):
    config = AdaLoraConfig(task_type=TaskType.SEQ_CLS, init_r=4, target_r=2, total_step=10, tinit=1, tfinal=2, target_modules=["query", "value"])
    pattern = {
        "bert.encoder.layer.0.attention.self.query.lora_E.default": [True, False, True, False],
        "bert.encoder.layer.0.attention.self.value.lora_E.default": [False, False, False, False],
        "bert.encoder.layer.1.attention.self.query.lora_E.default": [True, True, True, False],
        "bert.encoder.layer.1.attention.self.value.lora_E.default": [True, False, False, False],
    }
    folder = _save_random_adapter(tiny_bert, tmp_path / "adalora", config, seed=2, rank_pattern=pattern)
    inputs = _inputs(tiny_bert)

    deltas = delta_weights(read_adapter(folder))
    expected = _peft_logits(tiny_bert, folder, inputs)
    merged = _merged_logits(tiny_bert, [folder], [1.0], inputs)

    assert torch.count_nonzero(deltas["bert.encoder.layer.0.attention.self.value"]) == 0
    assert torch.allclose(merged, expected, atol=1e-5)


def test_merge_of_lora_and_adalora_matches_weighted_updates(tiny_bert, tmp_path):
    lora = _save_random_adapter(tiny_bert, tmp_path / "lora", LoraConfig(task_type=TaskType.SEQ_CLS, r=8, target_modules=["query", "key"]), seed=3)
    adalora_config = AdaLoraConfig(task_type=TaskType.SEQ_CLS, init_r=4, target_r=2, total_step=10, tinit=1, tfinal=2, target_modules=["query", "value"])
    adalora = _save_random_adapter(tiny_bert, tmp_path / "adalora", adalora_config, seed=4)
    base = _tiny_classifier(tiny_bert).state_dict()

    merged = merge_state_dict(base, [read_adapter(lora), read_adapter(adalora)], [0.5, 0.5])

    lora_deltas, adalora_deltas = delta_weights(read_adapter(lora)), delta_weights(read_adapter(adalora))
    query = "bert.encoder.layer.1.attention.self.query"
    key, value = "bert.encoder.layer.1.attention.self.key", "bert.encoder.layer.1.attention.self.value"
    assert torch.allclose(merged[f"{query}.weight"], base[f"{query}.weight"] + 0.5 * lora_deltas[query] + 0.5 * adalora_deltas[query], atol=1e-6)
    assert torch.allclose(merged[f"{key}.weight"], base[f"{key}.weight"] + 0.5 * lora_deltas[key], atol=1e-6)
    assert torch.allclose(merged[f"{value}.weight"], base[f"{value}.weight"] + 0.5 * adalora_deltas[value], atol=1e-6)
