"""Ways to combine the weight updates of several adapters for one module.

Every function takes the float32 updates dW_i of one module (the same shape, zeros where an adapter
does not adapt the module) and one weight w_i per adapter, and returns the merged update. Each is
plain elementwise arithmetic, so tests can check it against hand-computed tensors.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch

from adapters.config import MERGE_METHODS
from adapters.errors import AdaptersError

METHODS = MERGE_METHODS
LINEAR_METHODS = ("linear", "task-arithmetic")


@dataclass(frozen=True)
class MergeOptions:
    """The method and its settings; every default in one place."""

    method: str = "linear"
    scale: float = 1.0
    density: float = 0.2
    drop_rate: float = 0.5
    seed: int = 0

    def problems(self) -> list[str]:
        """List every invalid setting, for one error that names them all."""
        found = []
        if self.method not in METHODS:
            found.append(f"--method {self.method!r} is not one of {', '.join(METHODS)}")
        if not torch.isfinite(torch.tensor(self.scale)):
            found.append(f"--lambda {self.scale} must be a finite number")
        if not 0.0 < self.density <= 1.0:
            found.append(f"--density {self.density} must be in (0, 1]")
        if not 0.0 <= self.drop_rate < 1.0:
            found.append(f"--drop-rate {self.drop_rate} must be in [0, 1)")
        return found


def linear(deltas: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """sum_i w_i * dW_i."""
    return sum(weight * delta for weight, delta in zip(weights, deltas))


def task_arithmetic(deltas: list[torch.Tensor], weights: list[float], scale: float) -> torch.Tensor:
    """lambda * sum_i w_i * dW_i; with the default weights of 1 this is lambda * sum_i dW_i."""
    return scale * linear(deltas, weights)


def trim(delta: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the `density` fraction of entries with the largest magnitude and zero the rest.

    The number kept is ceil(density * numel). Entries tied at the threshold are chosen by
    `torch.topk`, so exactly that many survive.
    """
    keep = int(torch.ceil(torch.tensor(density * delta.numel())).item())
    if keep >= delta.numel():
        return delta.clone()
    flat = delta.flatten()
    kept = torch.zeros_like(flat)
    indices = torch.topk(flat.abs(), keep, sorted=False).indices
    kept[indices] = flat[indices]
    return kept.view_as(delta)


def disjoint_mean(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Elect a sign per element by summed mass and average the entries that agree with it.

    elected = sign(sum_i t_i); merged = sum_i [sign(t_i) = elected] t_i / count_i, where count_i is
    the number of agreeing non-zero entries (an element with none is 0).
    """
    stacked = torch.stack(tensors)
    elected = torch.sign(stacked.sum(dim=0))
    agree = (torch.sign(stacked) == elected) & (stacked != 0)
    count = agree.sum(dim=0).clamp(min=1)
    return (stacked * agree).sum(dim=0) / count


def ties(deltas: list[torch.Tensor], weights: list[float], density: float) -> torch.Tensor:
    """TIES: trim each w_i * dW_i to its top `density` entries, elect signs, take the disjoint mean."""
    return disjoint_mean([trim(weight * delta, density) for weight, delta in zip(weights, deltas)])


def drop_and_rescale(delta: torch.Tensor, drop_rate: float, generator: torch.Generator) -> torch.Tensor:
    """DARE: zero each entry with probability p and scale the survivors by 1 / (1 - p)."""
    if drop_rate == 0.0:
        return delta.clone()
    keep = torch.rand(delta.shape, generator=generator) >= drop_rate
    return delta * keep / (1.0 - drop_rate)


def dare_generator(seed: int, adapter_index: int, module: str) -> torch.Generator:
    """A generator that depends only on the seed, the adapter's position and the module name.

    The drop masks therefore do not depend on the order in which modules are visited.
    """
    return torch.Generator().manual_seed(zlib.crc32(f"{seed}:{adapter_index}:{module}".encode()))


def dare(deltas: list[torch.Tensor], weights: list[float], drop_rate: float, seed: int, module: str, *, elect: bool) -> torch.Tensor:
    """DARE, then the weighted sum (`dare`) or the sign election and disjoint mean (`dare-ties`)."""
    dropped = [drop_and_rescale(delta, drop_rate, dare_generator(seed, index, module)) for index, delta in enumerate(deltas)]
    if elect:
        return disjoint_mean([weight * delta for weight, delta in zip(weights, dropped)])
    return linear(dropped, weights)


def combine(deltas: list[torch.Tensor], weights: list[float], options: MergeOptions, module: str) -> torch.Tensor:
    """Merge one module's updates with the method in `options`."""
    if options.method == "linear":
        return linear(deltas, weights)
    if options.method == "task-arithmetic":
        return task_arithmetic(deltas, weights, options.scale)
    if options.method == "ties":
        return ties(deltas, weights, options.density)
    if options.method in ("dare", "dare-ties"):
        return dare(deltas, weights, options.drop_rate, options.seed, module, elect=options.method == "dare-ties")
    raise AdaptersError(f"--method {options.method!r} is not one of {', '.join(METHODS)}")
