"""Choice of floating-point precision: `auto` takes bfloat16 where the hardware computes in it natively.

bfloat16 autocast only pays where matrix multiplies run in bfloat16 natively: CPUs with AMX or
AVX512-BF16 instructions and GPUs with bfloat16 support. Elsewhere torch emulates it and a step
becomes slower than in float32 (30 times slower on an AVX2-only CPU, measured by `adapters bench`).
"""

from __future__ import annotations

import torch

from adapters.errors import AdaptersError

PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Return whether `device` multiplies bfloat16 matrices in hardware."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    return False


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """Resolve "auto" to "bf16" or "fp32" for `device`. "fp32" and "bf16" are returned unchanged."""
    if precision not in PRECISIONS:
        raise AdaptersError(f"invalid precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def autocast(precision: str, device: torch.device | str = "cpu"):
    """Return a bfloat16 autocast context for a resolved `precision` "bf16", and a no-op one for "fp32"."""
    device = torch.device(device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
