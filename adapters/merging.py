"""Merge adapters by exact arithmetic on their weight updates.

Works on state dicts and adapter configs, never on live peft models, so every merge is plain
tensor arithmetic that tests can check against hand-computed references.

For each adapted linear module, the merged weight is W = W0 + merge(dW_1, ..., dW_n), where dW_i
is adapter i's exact update (see `delta_weights`), an adapter that does not target the module
contributes zero, and merge is one of the methods in `adapters.merge_methods`; the default,
`linear`, is sum_i w_i * dW_i. The classification head, which every adapter trains from scratch, is
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
from adapters.merge_methods import MergeOptions, combine

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

    dW = up @ down for the factors that `factor_pairs` returns, with the formulas given there.
    """
    return {module: up @ down for module, (down, up) in factor_pairs(adapter).items()}


def factor_pairs(adapter: AdapterWeights) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Return, per adapted module, float32 factors (down, up) with dW = up @ down and the scaling folded into up.

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

    pairs = {}
    for module, parts in sorted(factors.items()):
        if "lora_A" not in parts or "lora_B" not in parts:
            raise AdaptersError(f"adapter {adapter.name} has an incomplete module {module!r}: found {sorted(parts)}, expected lora_A and lora_B")
        lora_A, lora_B = parts["lora_A"], parts["lora_B"]
        if lora_B.shape[1] != lora_A.shape[0]:
            raise AdaptersError(f"adapter {adapter.name} module {module!r} has lora_B {tuple(lora_B.shape)} and lora_A {tuple(lora_A.shape)} of different ranks")
        if adapter.peft_type == "ADALORA":
            pairs[module] = _adalora_factors(adapter.config, lora_A, lora_B, parts.get("lora_E"), adapter.name, module)
        else:
            pairs[module] = (lora_A, _lora_scaling(adapter.config, module, lora_A.shape[0]) * lora_B)
    return pairs


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


def _adalora_factors(config: dict, lora_A, lora_B, lora_E, name: str, module: str) -> tuple[torch.Tensor, torch.Tensor]:
    if lora_E is None:
        raise AdaptersError(f"AdaLoRA adapter {name} has no lora_E for module {module!r}; the file is incomplete")
    rank = lora_A.shape[0]
    scaling = config["lora_alpha"] if config["lora_alpha"] > 0 else float(rank)
    ranknum = float(config["init_r"])
    return lora_A * lora_E, lora_B * (scaling / (ranknum + 1e-5))


def weight_problems(count: int, weights: list[float] | None = None, alpha: float | None = None) -> list[str]:
    """List every problem with the merge weights, for one error that names them all."""
    problems = []
    if count == 0:
        problems.append("no versions to merge; name at least one version")
    if weights is not None and alpha is not None:
        problems.append("--weights and --alpha both given; choose one")
    if alpha is not None and not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        problems.append(f"--alpha {alpha} must be a number in [0, 1]")
    if weights is not None:
        if count and len(weights) != count:
            problems.append(f"--weights has {len(weights)} values for {count} versions; give one weight per version")
        bad = [w for w in weights if not math.isfinite(w)]
        if bad:
            problems.append(f"--weights contains {bad[0]}; every weight must be a finite number")
    return problems


def combine_weights(count: int, weights: list[float] | None = None, alpha: float | None = None, *, default: float | None = None) -> list[float]:
    """Turn the merge options into one weight per adapter.

    Without options every adapter gets `default`, or 1 / count when that is None. With `alpha`, the
    recursive fusion theta_k = (1 - alpha) * theta_(k-1) + alpha * theta_k over the adapters in order
    unrolls to w_1 = (1 - alpha)^(n-1) and w_k = alpha * (1 - alpha)^(n-k) for k >= 2, which sum to 1.

    Raises:
        AdaptersError: listing every problem that `weight_problems` finds.
    """
    problems = weight_problems(count, weights, alpha)
    if problems:
        raise AdaptersError("; ".join(problems))
    if alpha is not None:
        return [(1 - alpha) ** (count - 1)] + [alpha * (1 - alpha) ** (count - k) for k in range(2, count + 1)]
    if weights is None:
        return [1.0 / count if default is None else default] * count
    return list(weights)


def merged_updates(adapters: list[AdapterWeights], weights: list[float], options: MergeOptions | None = None) -> dict[str, torch.Tensor]:
    """Merge the updates of every module that any adapter adapts; an adapter without it contributes zero.

    Raises AdaptersError naming the module and both shapes when two adapters disagree on its shape.
    """
    options = options or MergeOptions()
    per_adapter = [delta_weights(adapter) for adapter in adapters]
    modules = sorted(set().union(*per_adapter))
    merged = {}
    for module in modules:
        shapes = {tuple(deltas[module].shape): adapter.name for adapter, deltas in zip(adapters, per_adapter) if module in deltas}
        if len(shapes) > 1:
            described = " and ".join(f"{shape} in {name}" for shape, name in shapes.items())
            raise AdaptersError(f"module {module!r} has different shapes: {described}; were these adapters trained on one base?")
        shape = next(iter(shapes))
        deltas = [deltas.get(module, torch.zeros(shape)) for deltas in per_adapter]
        merged[module] = combine(deltas, weights, options, module)
    return merged


def merged_heads(adapters: list[AdapterWeights], weights: list[float]) -> dict[str, torch.Tensor]:
    """Average each fully trained tensor (head, pooler) over the adapters that carry it, weighted and normalised."""
    parts: dict[str, list[tuple[float, torch.Tensor]]] = {}
    for adapter, weight in zip(adapters, weights):
        for key, tensor in head_weights(adapter).items():
            parts.setdefault(key, []).append((weight, tensor))
    return {key: _weighted_average(values, key) for key, values in parts.items()}


def merge_state_dict(
    base_state: dict[str, torch.Tensor], adapters: list[AdapterWeights], weights: list[float], options: MergeOptions | None = None
) -> dict[str, torch.Tensor]:
    """Return a new state dict with the merged updates and heads of `adapters` applied to `base_state`.

    `base_state` is not modified. Raises AdaptersError naming the key when an adapter module has no
    matching base weight or the shapes differ, and when the result is not finite.
    """
    if len(adapters) != len(weights):
        raise AdaptersError(f"{len(weights)} weights for {len(adapters)} adapters; give one weight per adapter")
    updates = merged_updates(adapters, weights, options)
    heads = merged_heads(adapters, weights)
    for module, update in updates.items():
        _check_shape(base_state, f"{module}.weight", update.shape, _owner(adapters, module))
    for key, tensor in heads.items():
        _check_shape(base_state, key, tensor.shape, "the merged adapters")

    state = dict(base_state)
    for module, update in updates.items():
        key = f"{module}.weight"
        state[key] = _finite(base_state[key].to(torch.float32) + update, key).to(base_state[key].dtype)
    for key, tensor in heads.items():
        state[key] = _finite(tensor, key).to(base_state[key].dtype)
    return state


def _owner(adapters: list[AdapterWeights], module: str) -> str:
    for adapter in adapters:
        if any(key.removeprefix(PREFIX).startswith(module + ".") for key in adapter.tensors):
            return adapter.name
    return "the merged adapters"


def _weighted_average(parts: list[tuple[float, torch.Tensor]], key: str) -> torch.Tensor:
    total = sum(weight for weight, _ in parts)
    if abs(total) < 1e-12:
        raise AdaptersError(f"the weights of the adapters that carry {key!r} sum to 0, so the head cannot be averaged; choose weights with a non-zero sum")
    return sum(weight * tensor for weight, tensor in parts) / total


def _check_shape(base_state: dict, key: str, shape: torch.Size, name: str) -> None:
    if key not in base_state:
        raise AdaptersError(f"{name} has {key!r}, which the base model does not have; was it trained on another architecture?")
    if tuple(base_state[key].shape) != tuple(shape):
        raise AdaptersError(f"{name} gives {key!r} shape {tuple(shape)}, but the base has {tuple(base_state[key].shape)}")


def _finite(tensor: torch.Tensor, key: str) -> torch.Tensor:
    if not torch.isfinite(tensor).all():
        raise AdaptersError(f"merged {key!r} contains NaN or infinity; check the adapter weights and --weights")
    return tensor
