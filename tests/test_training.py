"""Training on a tiny random BERT: AdaLoRA scheduling, determinism, frozen base, truncation, fingerprints."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoTokenizer

from adapters.base import BaseSpec, fingerprint_model, load_classifier
from adapters.config import TrainConfig
from adapters.data import column_map, load_increment
from adapters.errors import AdaptersError
from adapters.modeling import adalora_schedule, encode, wrap_for_training
from adapters.training import train_adapter


def tiny_spec(tiny_bert) -> BaseSpec:
    return BaseSpec(model_id=str(tiny_bert), location=str(tiny_bert))


def run_training(tiny_bert, increment_csv, **overrides):
    config = TrainConfig(**{"epochs": 1, "batch_size": 8, "eval_batch_size": 32, **overrides})
    increment = load_increment(increment_csv, column_map("homedepot"))
    spec = tiny_spec(tiny_bert)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    models = []

    def build(total_steps):
        model = wrap_for_training(load_classifier(spec, increment.labels, seed=config.seed), config, total_steps)
        models.append(model)
        return model

    result = train_adapter(build, tokenizer, increment.train, increment.validation, increment.labels, config)
    return result, increment, config


def test_adalora_allocates_once_per_optimizer_step(tiny_bert, increment_csv):
    result, increment, config = run_training(tiny_bert, increment_csv, method="adalora", grad_accum=2, epochs=2)

    micro_batches = math.ceil(len(increment.train) / config.batch_size)
    expected_steps = math.ceil(micro_batches / 2) * 2
    assert result.optimizer_steps == expected_steps
    assert result.allocation_calls == expected_steps
    assert result.model.peft_config["default"].total_step == expected_steps


def test_adalora_reallocates_ranks_to_budget(tiny_bert, increment_csv):
    result, _, config = run_training(tiny_bert, increment_csv, method="adalora", epochs=2, init_r=6, target_r=2)

    pattern = result.model.peft_config["default"].rank_pattern
    kept = {name: sum(bool(flag) for flag in mask) for name, mask in pattern.items()}
    assert len(kept) == 4
    assert sum(kept.values()) <= config.target_r * len(kept)
    assert any(rank != config.init_r for rank in kept.values())


def test_adalora_schedule_without_budget_phase_names_three_numbers():
    config = TrainConfig(method="adalora", tinit=10, tfinal=5)

    with pytest.raises(AdaptersError, match=r"tinit 10 \+ tfinal 5 >= total steps 12"):
        adalora_schedule(config, total_steps=12)


def test_adalora_schedule_defaults_scale_with_steps():
    assert adalora_schedule(TrainConfig(method="adalora"), total_steps=100) == (10, 30, 2)


def test_same_seed_gives_same_adapter(tiny_bert, increment_csv):
    first, _, _ = run_training(tiny_bert, increment_csv)
    second, _, _ = run_training(tiny_bert, increment_csv)

    first_state = {n: p for n, p in first.model.named_parameters() if p.requires_grad}
    second_state = {n: p for n, p in second.model.named_parameters() if p.requires_grad}
    assert first_state.keys() == second_state.keys()
    for name in first_state:
        assert torch.equal(first_state[name], second_state[name]), name


def test_training_leaves_base_weights_unchanged(tiny_bert, increment_csv):
    base = load_classifier(tiny_spec(tiny_bert), ["irrelevant", "partial", "relevant"])
    before = {key: value.clone() for key, value in base.state_dict().items() if not key.startswith("classifier")}

    result, _, _ = run_training(tiny_bert, increment_csv, epochs=2)

    lora_B = [p for n, p in result.model.named_parameters() if "lora_B" in n]
    assert lora_B
    assert all(torch.count_nonzero(p) > 0 for p in lora_B)
    # The frozen originals sit under base_layer (adapted modules) and original_module (trained copies).
    after = {}
    for key, value in result.model.get_base_model().state_dict().items():
        if "lora_" not in key and "modules_to_save" not in key:
            after[key.replace(".base_layer", "").replace(".original_module", "")] = value
    assert set(before) <= set(after)
    for key, value in before.items():
        assert torch.equal(after[key], value), key


def test_freeze_layers_keeps_lowest_layers_free(tiny_bert, increment_csv):
    result, _, _ = run_training(tiny_bert, increment_csv, freeze_layers=1)

    adapted = {n.split(".layer.")[1].split(".")[0] for n, _ in result.model.named_parameters() if "lora_A" in n}
    assert adapted == {"1"}


def test_gradient_checkpointing_trains_every_lora_b(tiny_bert, increment_csv):
    config = TrainConfig(gradient_checkpointing=True, lora_dropout=0.0)
    increment = load_increment(increment_csv, column_map("homedepot"))
    model = wrap_for_training(load_classifier(tiny_spec(tiny_bert), increment.labels), config, total_steps=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    batch = tokenizer(increment.train["text"][:8], increment.train["text_pair"][:8], padding=True, return_tensors="pt")
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    lora_B = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)

    model.train()
    model(**batch, labels=torch.tensor(increment.train["label"][:8])).loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if "lora_B" in n}
    optimizer.step()

    parameters = dict(model.named_parameters())
    for name, grad in grads.items():
        assert grad is not None and torch.count_nonzero(grad) > 0, name
        assert not torch.equal(parameters[name], lora_B[name]), name
    for name, value in frozen.items():
        assert torch.equal(parameters[name], value), name


@pytest.mark.parametrize("long_side", ["query", "product", "both"])
def test_long_pairs_are_truncated_and_end_with_separator(tiny_bert, long_side):
    import datasets

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    long_text = " ".join(["angle bracket steel"] * 40)
    query = long_text if long_side in ("query", "both") else "deck paint"
    product = long_text if long_side in ("product", "both") else "wood deck paint"
    rows = datasets.Dataset.from_dict({"text": [query], "text_pair": [product], "label": [0]})

    encoded = encode(rows, tokenizer, max_length=24)

    ids = encoded["input_ids"][0]
    assert len(ids) == 24
    assert ids[-1] == tokenizer.sep_token_id
    assert ids.count(tokenizer.sep_token_id) == 2


def test_fingerprint_is_stable_across_sharded_save(tiny_bert, tmp_path):
    labels = ["a", "b", "c"]
    original = load_classifier(tiny_spec(tiny_bert), labels)
    original.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(tmp_path / "sharded")

    reloaded = load_classifier(BaseSpec(str(tmp_path / "sharded"), str(tmp_path / "sharded")), labels, seed=5)

    assert len(list((tmp_path / "sharded").glob("model-*.safetensors"))) > 1
    assert fingerprint_model(reloaded) == fingerprint_model(original)


def test_fingerprint_changes_with_base_weights(tiny_bert, tmp_path):
    from conftest import write_tiny_bert

    other = write_tiny_bert(tmp_path / "other", seed=1)
    labels = ["a", "b"]

    assert fingerprint_model(load_classifier(tiny_spec(tiny_bert), labels)) != fingerprint_model(load_classifier(tiny_spec(other), labels))


def test_invalid_config_lists_every_problem():
    config = TrainConfig(method="prefix", epochs=0, batch_size=0)

    with pytest.raises(AdaptersError) as raised:
        config.validate()

    message = str(raised.value)
    assert "method 'prefix'" in message
    assert "epochs 0" in message
    assert "batch_size 0" in message
