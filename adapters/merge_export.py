"""Write a merge as a single LoRA adapter in peft's format, exactly or by truncated SVD.

Both forms set lora_alpha equal to the rank of every module (through peft's `rank_pattern` and
`alpha_pattern`), so the LoRA scaling is 1 and dW = lora_B @ lora_A exactly.

- exact: the factors of every adapter are concatenated, rank = the sum of the ranks, with the
  weights and each adapter's own scaling folded into lora_B. Only the linear methods (`linear`,
  `task-arithmetic`) have such a form, because the others act on single entries of dW.
- svd: each merged dW = U S V^T is truncated to its top R singular values (a fixed `rank`, or the
  smallest R whose singular values hold the `energy` fraction of sum S^2), with lora_B = U_R S_R
  and lora_A = V_R^T. The relative Frobenius error ||dW - lora_B @ lora_A|| / ||dW|| of every
  module is returned.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from peft import LoraConfig, TaskType, get_peft_model, set_peft_model_state_dict

from adapters.errors import AdaptersError
from adapters.merge_methods import LINEAR_METHODS, MergeOptions
from adapters.merging import PREFIX, AdapterWeights, factor_pairs

logger = logging.getLogger(__name__)

Factors = dict[str, tuple[torch.Tensor, torch.Tensor]]


def exact_factors(adapters: list[AdapterWeights], weights: list[float], options: MergeOptions) -> Factors:
    """Concatenate every adapter's (down, up) factors into one pair per module, weights folded into up."""
    if options.method not in LINEAR_METHODS:
        raise AdaptersError(f"--as-adapter exact needs a linear method ({', '.join(LINEAR_METHODS)}), not {options.method!r}; use --as-adapter svd")
    scale = options.scale if options.method == "task-arithmetic" else 1.0
    collected: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    for adapter, weight in zip(adapters, weights):
        for module, (down, up) in factor_pairs(adapter).items():
            if down.shape[0] > 0:
                collected.setdefault(module, []).append((down, scale * weight * up))
    return {module: (torch.cat([d for d, _ in pairs], dim=0), torch.cat([u for _, u in pairs], dim=1)) for module, pairs in collected.items()}


def svd_factors(updates: dict[str, torch.Tensor], *, rank: int | None = None, energy: float | None = None) -> tuple[Factors, dict[str, float]]:
    """Truncate each merged update to rank `rank` or to the `energy` fraction; return factors and relative errors."""
    if (rank is None) == (energy is None):
        raise AdaptersError("--as-adapter svd needs exactly one of --rank R or --energy E")
    factors, errors = {}, {}
    for module, delta in updates.items():
        norm = torch.linalg.matrix_norm(delta).item()
        if norm == 0.0:
            continue
        left, singular, right = torch.linalg.svd(delta, full_matrices=False)
        kept = min(rank, singular.numel()) if rank is not None else _rank_for_energy(singular, energy)
        up, down = left[:, :kept] * singular[:kept], right[:kept]
        factors[module] = (down.contiguous(), up.contiguous())
        errors[module] = torch.linalg.matrix_norm(delta - up @ down).item() / norm
    return factors, errors


def _rank_for_energy(singular: torch.Tensor, energy: float) -> int:
    if energy >= 1.0:
        return singular.numel()
    # float64, because a float32 running share reaches 1.0 before the smallest singular values.
    squares = singular.double() ** 2
    share = torch.cumsum(squares, dim=0) / squares.sum()
    return min(int(torch.searchsorted(share, torch.tensor(energy, dtype=torch.float64)).item()) + 1, singular.numel())


def write_adapter(base_model, factors: Factors, heads: dict[str, torch.Tensor], modules_to_save: list[str], folder: Path, base_id: str) -> None:
    """Save `factors` and `heads` as a peft LoRA adapter folder loadable with `PeftModel.from_pretrained`.

    The adapter is built as a real peft model and saved with `save_pretrained`, so its file layout
    is exactly peft's. `base_model` is wrapped in place; pass a fresh copy.
    """
    if not factors:
        raise AdaptersError("the merged update is zero in every module, so there is no adapter to write")
    ranks = {module: down.shape[0] for module, (down, _) in factors.items()}
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=max(ranks.values()), lora_alpha=max(ranks.values()), lora_dropout=0.0,
        target_modules=sorted(factors), rank_pattern=dict(ranks), alpha_pattern=dict(ranks),
        modules_to_save=modules_to_save or None,
    )
    model = get_peft_model(base_model, config)
    # get_peft_model records the base's local folder; the portable model id is stored instead.
    model.peft_config["default"].base_model_name_or_path = base_id
    state = {f"{PREFIX}{module}.lora_A.weight": down for module, (down, _) in factors.items()}
    state |= {f"{PREFIX}{module}.lora_B.weight": up for module, (_, up) in factors.items()}
    state |= {f"{PREFIX}{key}": tensor for key, tensor in heads.items()}
    result = set_peft_model_state_dict(model, state)
    unexpected = [key for key in result.unexpected_keys if "lora_" in key or key.startswith(PREFIX)]
    if unexpected:
        raise AdaptersError(f"merged adapter key {unexpected[0]!r} matches no module of the base; the adapters do not fit this base")
    model.save_pretrained(str(folder))
