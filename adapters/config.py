"""Training configuration: every default in one place, with help text that the CLI reuses."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from adapters.errors import AdaptersError
from adapters.precision import PRECISIONS

METHODS = ("lora", "adalora")
MERGE_METHODS = ("linear", "task-arithmetic", "ties", "dare", "dare-ties")
EVALUATION_SPLITS = ("validation", "train", "all")
SELECT_METRICS = ("accuracy", "macro_f1", "loss")
# Rows per inference batch. Measured once by hand on 2 AVX2 cores with 1,000 length-sorted Home Depot
# rows, 64 rows per batch scored faster than 128, 256 or 512, likely because smaller activations stay in cache.
INFERENCE_BATCH_SIZE = 64


def _option(default, help: str, **kwargs):
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass
class TrainConfig:
    """Hyperparameters of one adapter training run; `validate()` checks them all at once."""

    method: str = _option("lora", "adapter method", choices=METHODS)
    r: int = _option(8, "LoRA rank r")
    lora_alpha: float = _option(16.0, "LoRA alpha; the update is scaled by lora_alpha / r")
    lora_dropout: float = _option(0.1, "dropout on the adapter input")
    target_modules: tuple[str, ...] = _option(("query", "value"), "names of the linear modules that get adapters, comma separated")
    freeze_layers: int = _option(0, "keep the lowest N encoder layers free of adapters")
    cache_prefix: bool = _option(True, "with --freeze-layers N and LoRA, compute the frozen lowest layers once per increment and train on their cached output")
    cache_budget_mb: float = _option(2048.0, "memory limit of the frozen-prefix cache in MB; above it the frozen layers are recomputed every step")
    modules_to_save: tuple[str, ...] = _option(("pooler",), "modules trained in full and saved with the adapter, besides the classifier head, comma separated")
    init_r: int = _option(12, "AdaLoRA: initial rank of every module")
    target_r: int = _option(8, "AdaLoRA: average rank per module after the budget is reallocated")
    tinit: int | None = _option(None, "AdaLoRA: optimizer steps of warm-up before pruning (default: 10%% of the steps)")
    tfinal: int | None = _option(None, "AdaLoRA: final optimizer steps with a fixed rank pattern (default: 30%% of the steps)")
    delta_t: int | None = _option(None, "AdaLoRA: optimizer steps between two budget updates (default: 2%% of the steps, at least 1)")
    orth_reg_weight: float = _option(0.5, "AdaLoRA: weight of the orthogonality regulariser")
    learning_rate: float = _option(1e-3, "peak AdamW learning rate")
    weight_decay: float = _option(0.01, "AdamW weight decay")
    warmup_ratio: float = _option(0.06, "share of optimizer steps with a linear learning-rate warm-up")
    epochs: int = _option(3, "passes over the train part")
    batch_size: int = _option(32, "samples per micro-batch on each process")
    grad_accum: int = _option(1, "micro-batches per optimizer step")
    max_length: int = _option(128, "maximum tokens per query + product pair; longer pairs are truncated")
    group_by_length: bool = _option(True, "batch pairs of similar length together, so dynamic padding adds few pad tokens")
    # transformers' Trainer sorts windows of 50 batches. In the speed suite on Home Depot data that cost about a
    # point of LoRA accuracy against the plain loop, while 8 cost none measurable and kept most of the padding savings.
    group_window: int = _option(8, "with length grouping, batches whose pairs are sorted by length together; more saves more padding "
                                "but puts pairs of one length into long runs of steps (`benchmarks/ablation.py --factor window` "
                                "measures the accuracy of 8 against 50)")
    fast_dropout: bool = _option(True, "on CPU, draw dropout masks from 16 random bits per element instead of torch's one random number each "
                                 "(same masks in distribution, cheaper; `adapters bench` measures both)")
    eval_batch_size: int = _option(INFERENCE_BATCH_SIZE, "samples per batch during validation and scoring")
    validation_fraction: float = _option(0.15, "share of query groups held out for validation")
    select_metric: str = _option("accuracy", "validation metric that picks the best epoch", choices=SELECT_METRICS)
    seed: int = _option(42, "seed for the head initialisation, the data order and dropout")
    gradient_checkpointing: bool = _option(False, "recompute activations in the backward pass to save memory")
    precision: str = _option(
        "auto", "bf16 runs the forward pass under bfloat16 autocast, fp32 in float32; auto takes bf16 where the hardware computes "
        "in bfloat16 natively (CPUs with AMX or AVX512-BF16, most recent GPUs) and fp32 elsewhere (`adapters bench` measures both)",
        choices=PRECISIONS)
    threads: int | None = _option(None, "torch threads for training (default: torch's choice, one per physical core)")

    def validate(self) -> None:
        """Raise one AdaptersError listing every invalid field."""
        problems = []
        if self.method not in METHODS:
            problems.append(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        if self.select_metric not in SELECT_METRICS:
            problems.append(f"select_metric {self.select_metric!r} is not one of {', '.join(SELECT_METRICS)}")
        for name in ("r", "init_r", "target_r", "epochs", "batch_size", "grad_accum", "max_length", "eval_batch_size", "group_window"):
            if getattr(self, name) < 1:
                problems.append(f"{name} {getattr(self, name)} must be at least 1")
        if self.method == "adalora" and self.target_r > self.init_r:
            problems.append(f"target_r {self.target_r} must not exceed init_r {self.init_r}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.threads is not None and self.threads < 1:
            problems.append(f"threads {self.threads} must be at least 1")
        if not self.cache_budget_mb >= 0:
            problems.append(f"cache_budget_mb {self.cache_budget_mb} must be 0 or more")
        if self.freeze_layers < 0:
            problems.append(f"freeze_layers {self.freeze_layers} must be 0 or more")
        if not 0.0 <= self.lora_dropout < 1.0:
            problems.append(f"lora_dropout {self.lora_dropout} must be in [0, 1)")
        if not 0.0 <= self.warmup_ratio < 1.0:
            problems.append(f"warmup_ratio {self.warmup_ratio} must be in [0, 1)")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            problems.append(f"learning_rate {self.learning_rate} must be a positive number")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            problems.append(f"weight_decay {self.weight_decay} must be 0 or more")
        if not (math.isfinite(self.lora_alpha) and self.lora_alpha > 0):
            problems.append(f"lora_alpha {self.lora_alpha} must be a positive number")
        if not (math.isfinite(self.orth_reg_weight) and self.orth_reg_weight >= 0):
            problems.append(f"orth_reg_weight {self.orth_reg_weight} must be 0 or more")
        if not 0.0 < self.validation_fraction < 1.0:
            problems.append(f"validation_fraction {self.validation_fraction} must be between 0 and 1, exclusive")
        if not 0 <= self.seed < 2**32:
            problems.append(f"seed {self.seed} must be in [0, 2**32)")
        for name in ("tinit", "tfinal", "delta_t"):
            value = getattr(self, name)
            if value is not None and value < 0:
                problems.append(f"{name} {value} must be 0 or more")
        if not self.target_modules:
            problems.append("target_modules is empty; name at least one module such as query")
        if problems:
            raise AdaptersError("invalid training options: " + "; ".join(problems))

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["target_modules"] = list(self.target_modules)
        values["modules_to_save"] = list(self.modules_to_save)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        config = cls(**{key: value for key, value in values.items() if key in known})
        config.target_modules = tuple(config.target_modules)
        config.modules_to_save = tuple(config.modules_to_save)
        return config
