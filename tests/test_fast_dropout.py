"""FastDropout drops at the requested rate, keeps the expected output, and swaps in and out of a model cleanly."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoTokenizer

from adapters.base import BaseSpec, load_classifier
from adapters.config import TrainConfig
from adapters.data import column_map, load_increment
from adapters.fast_dropout import FastDropout, fast_dropout, keep_mask
from adapters.modeling import wrap_for_training
from adapters.training import train_adapter


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_drop_rate_per_lane(p):
    torch.manual_seed(0)
    count = 1 << 20
    layer = FastDropout(p).train()
    dropped = layer(torch.ones(count)) == 0
    # Each 64-bit draw feeds four neighbouring elements; every lane must drop at the same rate.
    tolerance = 5 * math.sqrt(p * (1 - p) / (count // 4))
    for lane in range(4):
        assert dropped[lane::4].float().mean().item() == pytest.approx(p, abs=tolerance)


def test_kept_values_keep_the_mean():
    torch.manual_seed(1)
    layer = FastDropout(0.1).train()
    inputs = torch.rand(4096) + 0.5
    outputs = layer(inputs)
    kept = outputs != 0
    # 0.1 rounds to 6554 of 65536 levels, so kept values are scaled by 65536 / 58982.
    torch.testing.assert_close(outputs[kept], inputs[kept] * (65536 / 58982), rtol=1e-6, atol=0)
    draws = torch.stack([layer(inputs) for _ in range(2000)])
    # The standard error of the mean of 2000 draws is below 0.0075 for inputs under 1.5.
    torch.testing.assert_close(draws.mean(0), inputs, rtol=0, atol=0.04)


def test_gradient_uses_the_forward_mask():
    torch.manual_seed(2)
    inputs = (torch.rand(3, 5, 16) + 0.5).requires_grad_()
    outputs = FastDropout(0.3).train()(inputs)
    upstream = torch.randn_like(outputs)
    outputs.backward(upstream)
    scale = 65536 / (65536 - round(0.3 * 65536))
    torch.testing.assert_close(inputs.grad, upstream * (outputs != 0) * scale, rtol=1e-6, atol=0)


def test_eval_mode_and_zero_probability_return_the_input():
    inputs = torch.randn(8, 8)
    assert FastDropout(0.1).eval()(inputs) is inputs
    assert FastDropout(0.0).train()(inputs) is inputs


def test_masks_follow_the_torch_seed():
    torch.manual_seed(7)
    first = keep_mask(torch.Size([64, 33]), 6554)
    torch.manual_seed(7)
    again = keep_mask(torch.Size([64, 33]), 6554)
    torch.manual_seed(8)
    other = keep_mask(torch.Size([64, 33]), 6554)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_probability_outside_range_is_rejected():
    with pytest.raises(ValueError, match="invalid dropout probability 1.0"):
        FastDropout(1.0)


def _peft_model(tiny_bert, labels):
    spec = BaseSpec(model_id=str(tiny_bert), location=str(tiny_bert))
    return wrap_for_training(load_classifier(spec, labels, seed=0), TrainConfig(), total_steps=10)


def test_swap_covers_every_dropout_and_restores_the_originals(tiny_bert):
    model = _peft_model(tiny_bert, ["a", "b"])
    originals = {name: module for name, module in model.named_modules() if type(module) is torch.nn.Dropout and module.p > 0}
    # Tiny BERT has 2 layers: the embedding dropout, three per layer (attention, attention output,
    # feed-forward output), query and value LoRA dropout per layer, and the classifier's.
    assert len(originals) == 1 + 3 * 2 + 2 * 2 + 1
    with fast_dropout(model) as swapped:
        assert swapped == len(originals)
        assert all(isinstance(model.get_submodule(name), FastDropout) for name in originals)
    assert all(model.get_submodule(name) is module for name, module in originals.items())


def test_swap_restores_after_error(tiny_bert):
    model = _peft_model(tiny_bert, ["a", "b"]).eval()
    inputs = {"input_ids": torch.tensor([[2, 7, 9, 3, 11, 3]]), "attention_mask": torch.ones(1, 6, dtype=torch.long)}
    with torch.no_grad():
        expected = model(**inputs).logits
    with pytest.raises(RuntimeError, match="stop"), fast_dropout(model):
        with torch.no_grad():
            torch.testing.assert_close(model(**inputs).logits, expected, rtol=0, atol=0)
        raise RuntimeError("stop")
    assert not any(isinstance(module, FastDropout) for module in model.modules())


def test_disabled_swap_changes_nothing(tiny_bert):
    model = _peft_model(tiny_bert, ["a", "b"])
    with fast_dropout(model, enabled=False) as swapped:
        assert swapped == 0
        assert not any(isinstance(module, FastDropout) for module in model.modules())


def test_training_swaps_dropout_back(tiny_bert, increment_csv):
    increment = load_increment(increment_csv, column_map("homedepot"))
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    spec = BaseSpec(model_id=str(tiny_bert), location=str(tiny_bert))
    seen = {}
    for enabled in (True, False):
        config = TrainConfig(epochs=1, batch_size=16, fast_dropout=enabled)

        def build(total_steps, config=config, enabled=enabled):
            model = wrap_for_training(load_classifier(spec, increment.labels, seed=0), config, total_steps)
            layer = next(module for module in model.modules() if type(module) is torch.nn.Dropout and module.p > 0)
            calls = seen.setdefault(enabled, [])
            layer.register_forward_hook(lambda module, args, output: calls.append(module.training))
            return model

        result = train_adapter(build, tokenizer, increment.train, increment.validation, increment.labels, config)
        assert not any(isinstance(module, FastDropout) for module in result.model.modules())
        assert math.isfinite(result.metrics["loss"])
    # The hooked torch module runs in training steps only when fast dropout is off.
    assert True not in seen[True]
    assert True in seen[False]
