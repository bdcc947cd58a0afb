"""Frozen-prefix caching: one step on cached states equals one step through the whole model."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from adapters.base import BaseSpec, load_classifier
from adapters.config import TrainConfig
from adapters.data import column_map, load_increment
from adapters.modeling import wrap_for_training
from adapters.prefix_cache import CachedPrefixModel, collate_cached, compute_prefix, fits_budget
from adapters.training import train_adapter

LABELS = ["irrelevant", "partial", "relevant"]


def fresh_model(tiny_bert, config):
    torch.manual_seed(3)
    model = wrap_for_training(load_classifier(BaseSpec(str(tiny_bert), str(tiny_bert)), LABELS, seed=1), config, total_steps=10)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    return model.eval()


def test_cached_step_matches_full_step(tiny_bert, increment_csv):
    config = TrainConfig(freeze_layers=1, lora_dropout=0.0)
    increment = load_increment(increment_csv, column_map("homedepot"))
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    encoded = tokenizer(increment.train["text"][:12], increment.train["text_pair"][:12])
    labels = torch.tensor(increment.train["label"][:12])
    full, cached = fresh_model(tiny_bert, config), fresh_model(tiny_bert, config)

    padded = tokenizer.pad(encoded, return_tensors="pt")
    full_loss = full(**padded, labels=labels).loss
    full_loss.backward()
    states = compute_prefix(cached, encoded["input_ids"], encoded["token_type_ids"], layers=1)
    batch = collate_cached([{"prefix": state, "labels": label} for state, label in zip(states, labels.tolist())])
    cached_loss = CachedPrefixModel(cached, 1)(**batch).loss
    cached_loss.backward()

    assert cached_loss.item() == pytest.approx(full_loss.item(), abs=1e-5)
    cached_parameters = dict(cached.named_parameters())
    compared = 0
    for name, param in full.named_parameters():
        if param.requires_grad:
            assert torch.allclose(cached_parameters[name].grad, param.grad, atol=1e-5), name
            compared += 1
    assert compared >= 4


def test_training_with_cache_matches_uncached_metrics(tiny_bert, increment_csv):
    increment = load_increment(increment_csv, column_map("homedepot"))
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    spec = BaseSpec(str(tiny_bert), str(tiny_bert))
    results = {}
    for cache in (True, False):
        config = TrainConfig(freeze_layers=1, lora_dropout=0.0, epochs=2, batch_size=16, cache_prefix=cache)

        def build(total_steps, config=config):
            model = wrap_for_training(load_classifier(spec, LABELS, seed=config.seed), config, total_steps)
            model.get_base_model().config.hidden_dropout_prob = 0.0
            for module in model.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = 0.0
            return model

        results[cache] = train_adapter(build, tokenizer, increment.train, increment.validation, increment.labels, config)

    assert results[True].optimizer_steps == results[False].optimizer_steps
    assert results[True].metrics["loss"] == pytest.approx(results[False].metrics["loss"], abs=1e-4)


def test_cache_over_budget_falls_back():
    assert fits_budget([10, 20], hidden_size=32, budget_mb=1.0)
    assert not fits_budget([10_000] * 100, hidden_size=384, budget_mb=1.0)
