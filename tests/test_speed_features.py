"""Each speed feature of the training path gives the same numbers as the plain path it replaces."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, DataCollatorWithPadding

from adapters.base import BaseSpec, load_classifier
from adapters.config import TrainConfig
from adapters.data import column_map, load_increment
from adapters.errors import AdaptersError
from adapters.modeling import encode, model_inputs, wrap_for_training
from adapters.precision import autocast, native_bf16, resolve_precision
from adapters.training import LengthGroupedBatchSampler, train_adapter, train_batches


def tiny_model(tiny_bert, labels, **overrides):
    config = TrainConfig(**{"lora_dropout": 0.0, **overrides})
    spec = BaseSpec(model_id=str(tiny_bert), location=str(tiny_bert))
    model = wrap_for_training(load_classifier(spec, labels, seed=3), config, total_steps=10)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1, generator=torch.Generator().manual_seed(len(name)))
    return model.eval()


def test_dynamic_padding_matches_max_length_padding(tiny_bert, increment_csv):
    increment = load_increment(increment_csv, column_map("homedepot"))
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    rows = encode(increment.train.select(range(12)), tokenizer, 64).remove_columns(["length"])
    features = [rows[i] for i in range(len(rows))]
    results = []
    for collator in (DataCollatorWithPadding(tokenizer, padding="max_length", max_length=64), DataCollatorWithPadding(tokenizer)):
        model = tiny_model(tiny_bert, increment.labels)
        batch = collator(features)
        loss = model(**model_inputs(batch)).loss
        loss.backward()
        gradients = {name: param.grad.clone() for name, param in model.named_parameters() if param.requires_grad}
        results.append((batch["input_ids"].shape[1], loss.item(), gradients))

    (padded_width, padded_loss, padded_grads), (dynamic_width, dynamic_loss, dynamic_grads) = results
    assert padded_width == 64
    assert dynamic_width < 64
    assert dynamic_loss == pytest.approx(padded_loss, abs=1e-5)
    for name, gradient in padded_grads.items():
        torch.testing.assert_close(dynamic_grads[name], gradient, atol=1e-5, rtol=1e-4)


def test_length_grouping_covers_rows_and_cuts_padding():
    generator = random.Random(11)
    lengths = [generator.randint(5, 120) for _ in range(1000)]
    sampler = LengthGroupedBatchSampler(lengths, batch_size=32, seed=0, window=10)

    for _ in range(2):
        batches = list(sampler)
        assert sorted(index for batch in batches for index in batch) == list(range(1000))
        assert [len(batch) for batch in batches] == [32] * 31 + [8]

    def pad_tokens(batches):
        return sum(len(batch) * max(lengths[i] for i in batch) - sum(lengths[i] for i in batch) for batch in batches)

    shuffled = list(range(1000))
    random.Random(0).shuffle(shuffled)
    plain = [shuffled[i : i + 32] for i in range(0, 1000, 32)]
    # Uniform lengths in [5, 120]: a random batch of 32 pads to about 117 tokens, a sorted window to
    # within a few tokens of its rows, so grouping must remove most of the padding.
    assert pad_tokens(batches) < 0.2 * pad_tokens(plain)


def test_group_window_setting_reaches_sampler():
    lengths = list(range(1, 101))

    sampler = train_batches(TrainConfig(batch_size=10, group_window=3), lengths)

    assert sampler.window == 3
    assert train_batches(TrainConfig(group_by_length=False), lengths) is None
    # Each window of 3 batches is sorted longest first, so every batch comes from one window.
    order = torch.randperm(100, generator=torch.Generator().manual_seed(42)).tolist()
    windows = [set(order[start : start + 30]) for start in range(0, 100, 30)]
    for batch in sampler:
        assert any(set(batch) <= window for window in windows)


def test_length_grouping_order_follows_seed_and_epoch():
    lengths = list(range(1, 201))
    first = list(LengthGroupedBatchSampler(lengths, 16, seed=1))
    again = LengthGroupedBatchSampler(lengths, 16, seed=1)
    assert list(again) == first
    assert list(again) != first
    assert list(LengthGroupedBatchSampler(lengths, 16, seed=2)) != first


def test_bf16_autocast_stays_close_to_float32(tiny_bert, increment_csv):
    increment = load_increment(increment_csv, column_map("homedepot"))
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    batch = DataCollatorWithPadding(tokenizer)([dict(row) for row in encode(increment.train.select(range(8)), tokenizer, 64).remove_columns(["length", "labels"])])
    model = tiny_model(tiny_bert, increment.labels)

    with torch.no_grad():
        full = model(**batch).logits
        with autocast("bf16", "cpu"):
            assert torch.nn.functional.linear(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
            reduced = model(**batch).logits
        with autocast("fp32", "cpu"):
            assert torch.nn.functional.linear(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32

    # bfloat16 keeps 8 significant bits, so logits of order 1 agree to a few hundredths.
    torch.testing.assert_close(reduced.float(), full, atol=0.05, rtol=0.05)


def test_bf16_training_updates_adapter(tiny_bert, increment_csv):
    increment = load_increment(increment_csv, column_map("homedepot"))
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    spec = BaseSpec(model_id=str(tiny_bert), location=str(tiny_bert))
    config = TrainConfig(epochs=1, batch_size=8, precision="bf16")

    def build(total_steps):
        return wrap_for_training(load_classifier(spec, increment.labels, seed=0), config, total_steps)

    result = train_adapter(build, tokenizer, increment.train, increment.validation, increment.labels, config)

    lora_b = [param for name, param in result.model.named_parameters() if "lora_B" in name]
    assert all(param.dtype == torch.float32 for param in lora_b)
    assert any(param.abs().sum() > 0 for param in lora_b)
    assert torch.isfinite(torch.tensor(result.metrics["loss"]))
    assert result.precision == "bf16"


def _cpu_flags() -> set[str]:
    with open("/proc/cpuinfo") as info:
        return set(next(line for line in info if line.startswith("flags")).split(":", 1)[1].split())


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="needs /proc/cpuinfo (Linux) to read the CPU flags")
def test_auto_precision_follows_the_cpu_flags():
    native = bool(_cpu_flags() & {"amx_tile", "avx512_bf16"})
    assert native_bf16("cpu") is native
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert [resolve_precision(p, "cpu") for p in ("fp32", "bf16")] == ["fp32", "bf16"]
    with pytest.raises(AdaptersError, match="invalid precision 'fp16'"):
        resolve_precision("fp16", "cpu")


def test_auto_precision_is_the_default_and_recorded(tiny_bert, increment_csv):
    increment = load_increment(increment_csv, column_map("homedepot"))
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    spec = BaseSpec(model_id=str(tiny_bert), location=str(tiny_bert))
    config = TrainConfig(epochs=1, batch_size=16)
    seen = []

    def build(total_steps):
        model = wrap_for_training(load_classifier(spec, increment.labels, seed=0), config, total_steps)
        model.register_forward_hook(lambda module, args, output: seen.append(output.logits.dtype))
        return model

    result = train_adapter(build, tokenizer, increment.train, increment.validation, increment.labels, config)

    assert config.precision == "auto"
    expected = resolve_precision("auto", "cpu")
    assert result.precision == expected
    assert set(seen) == {torch.bfloat16 if expected == "bf16" else torch.float32}


def test_threads_option_applies_then_restores(tiny_bert, increment_csv):
    increment = load_increment(increment_csv, column_map("homedepot"))
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    spec = BaseSpec(model_id=str(tiny_bert), location=str(tiny_bert))
    config = TrainConfig(epochs=1, batch_size=16, threads=1)
    seen = []

    def build(total_steps):
        seen.append(torch.get_num_threads())
        return wrap_for_training(load_classifier(spec, increment.labels, seed=0), config, total_steps)

    before = torch.get_num_threads()
    train_adapter(build, tokenizer, increment.train, increment.validation, increment.labels, config)

    assert seen == [1]
    assert torch.get_num_threads() == before


def test_every_linear_adapters_stay_above_frozen_layers(tiny_bert):
    model = tiny_model(tiny_bert, ["a", "b"], freeze_layers=1, target_modules=("query", "key", "value", "dense"))
    num_layers = model.config.num_hidden_layers

    adapted = sorted({name.split(".lora_A")[0].split("encoder.")[-1] for name, _ in model.named_parameters() if ".lora_A." in name})

    upper = [f"layer.{index}.{module}" for index in range(1, num_layers)
             for module in ("attention.output.dense", "attention.self.key", "attention.self.query", "attention.self.value",
                            "intermediate.dense", "output.dense")]
    assert adapted == sorted(upper)
    # The pooler is trained in full as a saved module, so its dense layer gets no adapter.
    assert not any("pooler" in name and "lora_" in name for name, _ in model.named_parameters())
