"""Dropout whose masks cost a quarter of the random numbers of torch's CPU dropout.

torch's CPU dropout draws one random number per element. Here each 64-bit draw is split into four
16-bit values, and an element is dropped when its value falls below a threshold. The mask is
therefore Bernoulli with the drop probability rounded to a multiple of 1/65536 (0.1 becomes
0.100006). Kept elements are scaled by 1 / (1 - that probability), so the expected output equals
the input. `adapters bench` measures the step time with both kinds of dropout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

_LEVELS = 1 << 16


class _MaskedScale(torch.autograd.Function):
    """Zero the elements outside `keep` and scale the rest; the backward pass applies the same mask."""

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.where(keep, inputs, 0.0).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return torch.where(keep, grad, 0.0).mul_(ctx.scale), None, None


def keep_mask(shape: torch.Size, dropped_levels: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean mask of `shape` that is False with probability dropped_levels / 65536 per element.

    Draws from torch's default generator, so `torch.manual_seed` makes it reproducible.
    """
    count = 1
    for size in shape:
        count *= size
    bits = torch.empty((count + 3) // 4, dtype=torch.int64, device=device).random_(-(2**63), None)
    return bits.view(torch.int16)[:count].view(shape) >= -(_LEVELS // 2) + dropped_levels


class FastDropout(torch.nn.Module):
    """Drop-in replacement for `torch.nn.Dropout` in training, identity in eval mode."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"invalid dropout probability {p}: use a value in [0, 1)")
        self.p = p
        self.dropped_levels = round(p * _LEVELS)
        self.scale = _LEVELS / (_LEVELS - self.dropped_levels)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.dropped_levels == 0:
            return inputs
        return _MaskedScale.apply(inputs, keep_mask(inputs.shape, self.dropped_levels, inputs.device), self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"


@contextlib.contextmanager
def fast_dropout(model: torch.nn.Module, enabled: bool = True) -> Iterator[int]:
    """Swap every `torch.nn.Dropout` with p > 0 in `model` for FastDropout and restore them on exit.

    Yields the number of modules swapped. BERT's attention modules pass their dropout module's `p`
    to the attention function instead of calling it, so attention-probability dropout stays torch's.
    """
    swapped = []
    if enabled:
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is torch.nn.Dropout and child.p > 0:
                    replacement = FastDropout(child.p)
                    replacement.train(child.training)
                    setattr(parent, name, replacement)
                    swapped.append((parent, name, child))
    try:
        yield len(swapped)
    finally:
        for parent, name, child in swapped:
            child.train(getattr(parent, name).training)
            setattr(parent, name, child)
