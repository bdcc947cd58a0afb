"""Merge adapters by exact arithmetic on their weight updates.

Works on state dicts and adapter configs, never on live peft models, so every merge is plain
tensor arithmetic that tests can check against hand-computed references.

For each adapted linear module, the merged weight is

    W = W0 + sum_i w_i * dW_i

where dW_i is adapter i's exact update (see `delta_weights`) and an adapter that does not target
the module contributes zero. The classification head, which every adapter trains from scratch, is
the weighted average sum_i w_i * head_i / sum_i w_i. All arithmetic is in float32; the result is
cast to the base dtype once, at the end, and checked for NaN and infinity.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from adapters.errors import AdaptersError

PREFIX = "base_model.model."
FACTOR_KEY = re.compile(r"^(?P<module>.+)\.(?P<factor>lora_[ABE])(?:\.weight)?$")


@dataclass(frozen=True)
class AdapterWeights:
    """One adapter as stored by peft: its `adapter_config.json` and its tensors."""

    name: str
    config: dict
    tensors: dict[str, torch.Tensor]

    @property
    def peft_type(self) -> str:
        return self.config.get("peft_type", "")


def read_adapter(folder: str | Path, name: str | None = None) -> AdapterWeights:
    """Read `adapter_config.json` and `adapter_model.safetensors` from a peft adapter folder."""
    folder = Path(folder)
    config_path, weights_path = folder / "adapter_config.json", folder / "adapter_model.safetensors"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise AdaptersError(f"adapter folder {str(folder)!r} has no {path.name}; pass a folder saved by peft's save_pretrained")
    config = json.loads(config_path.read_text())
    return AdapterWeights(name or str(folder), config, load_file(str(weights_path)))


def delta_weights(adapter: AdapterWeights) -> dict[str, torch.Tensor]:
    """Compute the exact float32 update dW (out_features x in_features) of every adapted module.

    LoRA:    dW = scaling * B @ A, with scaling = alpha / r, or alpha / sqrt(r) with rsLoRA; r and
             alpha follow `rank_pattern` and `alpha_pattern` where a module matches them.
    AdaLoRA: dW = B @ (A * E) * scaling / (ranknum + 1e-5), as peft's SVDLinear computes it.
             scaling = lora_alpha (or the kept rank if lora_alpha is 0) and ranknum = init_r, which
             peft keeps when it resizes a module to its final rank. A module pruned to rank 0 has
             dW = 0.

    Keys are module names of the base model, such as `bert.encoder.layer.0.attention.self.query`.
    """
    _check_supported(adapter)
    factors: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in adapter.tensors.items():
        match = FACTOR_KEY.match(key.removeprefix(PREFIX))
        if match:
            factors.setdefault(match["module"], {})[match["factor"]] = tensor.to(torch.float32)

    deltas = {}
    for module, parts in sorted(factors.items()):
        if "lora_A" not in parts or "lora_B" not in parts:
            raise AdaptersError(f"adapter {adapter.name} has an incomplete module {module!r}: found {sorted(parts)}, expected lora_A and lora_B")
        lora_A, lora_B = parts["lora_A"], parts["lora_B"]
        if lora_B.shape[1] != lora_A.shape[0]:
            raise AdaptersError(f"adapter {adapter.name} module {module!r} has lora_B {tuple(lora_B.shape)} and lora_A {tuple(lora_A.shape)} of different ranks")
        if adapter.peft_type == "ADALORA":
            deltas[module] = _adalora_delta(adapter.config, lora_A, lora_B, parts.get("lora_E"), adapter.name, module)
        else:
            deltas[module] = _lora_scaling(adapter.config, module, lora_A.shape[0]) * (lora_B @ lora_A)
    return deltas


def head_weights(adapter: AdapterWeights) -> dict[str, torch.Tensor]:
    """Return the full (not low-rank) tensors an adapter saved, such as the classifier head, in float32."""
    heads = {}
    for key, tensor in adapter.tensors.items():
        name = key.removeprefix(PREFIX)
        if not FACTOR_KEY.match(name):
            heads[name] = tensor.to(torch.float32)
    return heads


def _check_supported(adapter: AdapterWeights) -> None:
    config = adapter.config
    if adapter.peft_type not in ("LORA", "ADALORA"):
        raise AdaptersError(f"adapter {adapter.name} has peft_type {adapter.peft_type!r}; only LORA and ADALORA can be merged")
    unsupported = [key for key in ("use_dora", "fan_in_fan_out", "lora_bias") if config.get(key)]
    if unsupported:
        raise AdaptersError(f"adapter {adapter.name} uses {', '.join(unsupported)}, which merging does not support; retrain without it")


def _lora_scaling(config: dict, module: str, rank: int) -> float:
    alpha = _pattern_value(config.get("alpha_pattern") or {}, module, config["lora_alpha"])
    if rank == 0:
        return 0.0
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def _pattern_value(pattern: dict, module: str, default):
    """Apply peft's rule for `rank_pattern`/`alpha_pattern` keys: a key matches a module name ending in it."""
    for key, value in pattern.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def _adalora_delta(config: dict, lora_A, lora_B, lora_E, name: str, module: str) -> torch.Tensor:
    if lora_E is None:
        raise AdaptersError(f"AdaLoRA adapter {name} has no lora_E for module {module!r}; the file is incomplete")
    rank = lora_A.shape[0]
    if rank == 0:
        return torch.zeros(lora_B.shape[0], lora_A.shape[1])
    scaling = config["lora_alpha"] if config["lora_alpha"] > 0 else float(rank)
    ranknum = float(config["init_r"])
    return lora_B @ (lora_A * lora_E) * scaling / (ranknum + 1e-5)


def combine_weights(count: int, weights: list[float] | None = None, alpha: float | None = None) -> list[float]:
    """Turn the merge options into one weight per adapter.

    Without options every adapter gets 1 / count. With `alpha`, the recursive fusion
    theta_k = (1 - alpha) * theta_(k-1) + alpha * theta_k over the adapters in order unrolls to
    w_1 = (1 - alpha)^(n-1) and w_k = alpha * (1 - alpha)^(n-k) for k >= 2, which sum to 1.
    """
    if count == 0:
        raise AdaptersError("no versions to merge; name at least one version")
    if weights is not None and alpha is not None:
        raise AdaptersError("--weights and --alpha both given; choose one")
    if alpha is not None:
        if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
            raise AdaptersError(f"--alpha {alpha} must be a number in [0, 1]")
        return [(1 - alpha) ** (count - 1)] + [alpha * (1 - alpha) ** (count - k) for k in range(2, count + 1)]
    if weights is None:
        return [1.0 / count] * count
    if len(weights) != count:
        raise AdaptersError(f"--weights has {len(weights)} values for {count} versions; give one weight per version")
    bad = [w for w in weights if not math.isfinite(w)]
    if bad:
        raise AdaptersError(f"--weights contains {bad[0]}; every weight must be a finite number")
    return list(weights)


def merge_state_dict(
    base_state: dict[str, torch.Tensor], adapters: list[AdapterWeights], weights: list[float]
) -> dict[str, torch.Tensor]:
    """Return a new state dict with the weighted updates and heads of `adapters` applied to `base_state`.

    `base_state` is not modified. Raises AdaptersError naming the key when an adapter module has no
    matching base weight or the shapes differ, and when the result is not finite.
    """
    if len(adapters) != len(weights):
        raise AdaptersError(f"{len(weights)} weights for {len(adapters)} adapters; give one weight per adapter")
    merged_updates: dict[str, torch.Tensor] = {}
    merged_heads: dict[str, torch.Tensor] = {}
    for adapter, weight in zip(adapters, weights):
        for module, delta in delta_weights(adapter).items():
            key = f"{module}.weight"
            _check_shape(base_state, key, delta.shape, adapter.name)
            merged_updates[key] = merged_updates.get(key, 0) + weight * delta
        for key, tensor in head_weights(adapter).items():
            _check_shape(base_state, key, tensor.shape, adapter.name)
            merged_heads.setdefault(key, []).append((weight, tensor))

    state = dict(base_state)
    for key, update in merged_updates.items():
        state[key] = _finite(base_state[key].to(torch.float32) + update, key).to(base_state[key].dtype)
    for key, parts in merged_heads.items():
        state[key] = _finite(_weighted_average(parts, key), key).to(base_state[key].dtype)
    return state


def _weighted_average(parts: list[tuple[float, torch.Tensor]], key: str) -> torch.Tensor:
    total = sum(weight for weight, _ in parts)
    if abs(total) < 1e-12:
        raise AdaptersError(f"the weights of the adapters that carry {key!r} sum to 0, so the head cannot be averaged; choose weights with a non-zero sum")
    return sum(weight * tensor for weight, tensor in parts) / total


def _check_shape(base_state: dict, key: str, shape: torch.Size, name: str) -> None:
    if key not in base_state:
        raise AdaptersError(f"adapter {name} has {key!r}, which the base model does not have; was it trained on another architecture?")
    if tuple(base_state[key].shape) != tuple(shape):
        raise AdaptersError(f"adapter {name} gives {key!r} shape {tuple(shape)}, but the base has {tuple(base_state[key].shape)}")


def _finite(tensor: torch.Tensor, key: str) -> torch.Tensor:
    if not torch.isfinite(tensor).all():
        raise AdaptersError(f"merged {key!r} contains NaN or infinity; check the adapter weights and --weights")
    return tensor
