"""The accelerate training loop: the only place that builds optimizers and data loaders.

The same code runs in one process or in several started by `accelerate launch`. Accelerate shards
the batches and averages the gradients, and only the main process shows progress and logs.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import datasets
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from peft import PeftModel
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm
from transformers import (
    PreTrainedTokenizerBase,
    get_linear_schedule_with_warmup,
)

from adapters.config import TrainConfig
from adapters.distributed import make_accelerator
from adapters.evaluation_metrics import classification_metrics
from adapters.fast_dropout import fast_dropout
from adapters.modeling import TokenRows, encode, model_inputs, trainable_state
from adapters.precision import autocast, resolve_precision
from adapters.prefix_cache import CachedPrefixModel, CachedRows, collate_cached, compute_prefix, fits_budget

logger = logging.getLogger(__name__)

ModelBuilder = Callable[[int], PeftModel]


@dataclass
class TrainResult:
    """The outcome of a training run: the model with its best epoch loaded, its metrics and throughput."""

    model: PeftModel
    metrics: dict
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    optimizer_steps: int = 0
    allocation_calls: int = 0
    samples_per_s: float = 0.0
    tokens_per_s: float = 0.0
    elapsed_s: float = 0.0
    precision: str = "fp32"


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Yield shuffled batches of similar length, so dynamic padding adds few pad tokens.

    Each epoch shuffles the indices, sorts windows of `window` batches by length, cuts them into
    batches and shuffles the order of the full batches. A short batch, if any, comes last. The
    permutation comes from `seed` and the epoch number.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, window: int = 8):
        self.lengths, self.batch_size, self.seed, self.window = lengths, batch_size, seed, window
        self.drop_last = False
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        span = self.window * self.batch_size
        batches = []
        for start in range(0, len(order), span):
            chunk = sorted(order[start : start + span], key=lambda index: self.lengths[index], reverse=True)
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        # accelerate shards a batch sampler correctly only when a short batch comes last, so the
        # one short batch is held back from the shuffle.
        short = [batch for batch in batches if len(batch) < self.batch_size]
        full = [batch for batch in batches if len(batch) == self.batch_size]
        for position in torch.randperm(len(full), generator=generator).tolist():
            yield full[position]
        yield from short


def build_loaders(
    train: datasets.Dataset, validation: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, config: TrainConfig
) -> tuple[DataLoader, DataLoader, datasets.Dataset]:
    """Tokenise both parts and build loaders that pad each batch to its own longest pair.

    Also returns the tokenised train part, from which the frozen-prefix cache is computed.
    """
    pad_id = tokenizer.pad_token_id or 0
    train_tokens = encode(train, tokenizer, config.max_length)
    lengths = list(train_tokens["length"])
    train_rows = TokenRows(train_tokens, pad_id)
    validation_rows = TokenRows(encode(validation, tokenizer, config.max_length), pad_id)

    sampler = train_batches(config, lengths)
    if sampler is not None:
        train_loader = DataLoader(train_rows, batch_sampler=sampler, collate_fn=train_rows.collate)
    else:
        generator = torch.Generator().manual_seed(config.seed)
        train_loader = DataLoader(train_rows, batch_size=config.batch_size, shuffle=True, generator=generator, collate_fn=train_rows.collate)
    # Validation batches go shortest first, so each is padded only to rows of nearly its own length.
    by_length = sorted(range(len(validation_rows)), key=lambda index: len(validation_rows.input_ids[index]))
    validation_loader = DataLoader(validation_rows, batch_size=config.eval_batch_size, sampler=by_length, collate_fn=validation_rows.collate)
    return train_loader, validation_loader, train_tokens


def train_batches(config: TrainConfig, lengths: list[int]):
    """Return the train loader's batch sampler, or None for plain shuffling when length grouping is off."""
    return LengthGroupedBatchSampler(lengths, config.batch_size, config.seed, config.group_window) if config.group_by_length else None


def cached_train_loader(model, train_tokens: datasets.Dataset, config: TrainConfig) -> DataLoader | None:
    """Build a loader over frozen-prefix states, or return None when the cache is off or over budget.

    The cache applies to LoRA with `freeze_layers` > 0. Its batches follow the same sampler as the
    uncached loader, so the step count is unchanged.
    """
    if not (config.cache_prefix and config.freeze_layers > 0 and config.method == "lora"):
        return None
    lengths = list(train_tokens["length"])
    if not fits_budget(lengths, model.config.hidden_size, config.cache_budget_mb):
        return None
    started = time.perf_counter()
    token_types = train_tokens["token_type_ids"] if "token_type_ids" in train_tokens.column_names else [[0] * n for n in lengths]
    states = compute_prefix(model, list(train_tokens["input_ids"]), list(token_types), config.freeze_layers, config.eval_batch_size)
    logger.info("Cached the lowest %d layers for %d rows in %.1f s", config.freeze_layers, len(states), time.perf_counter() - started)
    rows = CachedRows(states, list(train_tokens["labels"]))
    sampler = train_batches(config, lengths)
    if sampler is None:
        generator = torch.Generator().manual_seed(config.seed)
        return DataLoader(rows, batch_size=config.batch_size, shuffle=True, generator=generator, collate_fn=collate_cached)
    return DataLoader(rows, batch_sampler=sampler, collate_fn=collate_cached)


def train_adapter(
    build_model: ModelBuilder,
    tokenizer: PreTrainedTokenizerBase,
    train: datasets.Dataset,
    validation: datasets.Dataset,
    labels: list[str],
    config: TrainConfig,
    *,
    accelerator: Accelerator | None = None,
) -> TrainResult:
    """Train an adapter, evaluate after every epoch and keep the best epoch's weights.

    Args:
        build_model: called with the total optimizer step count (AdaLoRA's schedule needs it) and
            returns a PeftModel whose trainable parameters are the adapter and the head.

    Returns:
        The unwrapped model with its best epoch loaded (on every process), and the metrics.
    """
    config.validate()
    if config.threads:
        previous = torch.get_num_threads()
        torch.set_num_threads(config.threads)
        try:
            return train_adapter(build_model, tokenizer, train, validation, labels, replace(config, threads=None), accelerator=accelerator)
        finally:
            torch.set_num_threads(previous)
    accelerator = accelerator or make_accelerator(config.grad_accum)
    set_seed(config.seed)

    train_loader, validation_loader, train_tokens = build_loaders(train, validation, tokenizer, config)
    # The AdaLoRA schedule and the learning-rate schedule both need the optimizer step count per
    # process, so the loaders are prepared (sharded) before the model is built.
    train_loader, validation_loader = accelerator.prepare(train_loader, validation_loader)
    steps_per_epoch = math.ceil(len(train_loader) / config.grad_accum)
    total_steps = steps_per_epoch * config.epochs

    peft_model = build_model(total_steps)
    trained = peft_model
    cached_loader = cached_train_loader(peft_model, train_tokens, config)
    if cached_loader is not None:
        # The cached loader uses the same batch sampler, so the step count computed above still holds.
        train_loader = accelerator.prepare(cached_loader)
        trained = CachedPrefixModel(peft_model, config.freeze_layers)
    parameters = [param for param in peft_model.parameters() if param.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    trained, optimizer = accelerator.prepare(trained, optimizer)
    peft_model = _peft_model_of(accelerator.unwrap_model(trained))
    # Stepped by hand once per optimizer step, not prepared, so that its length in steps does not
    # depend on the number of processes.
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)

    precision = resolve_precision(config.precision, accelerator.device)
    if accelerator.is_main_process and config.precision == "auto":
        logger.info("Precision auto: training in %s on %s", precision, accelerator.device.type)
    loop = _Loop(accelerator, trained, peft_model, optimizer, scheduler, replace(config, precision=precision), total_steps)
    best_state, best_epoch, best_metrics, history = None, -1, None, []
    started = time.perf_counter()
    with fast_dropout(peft_model, enabled=config.fast_dropout and accelerator.device.type == "cpu"):
        for epoch in range(config.epochs):
            loop.run_epoch(train_loader, epoch)
            metrics = evaluate_loader(accelerator, peft_model, validation_loader, labels, precision=precision)
            metrics["epoch"] = epoch + 1
            history.append(metrics)
            accelerator.log({f"validation/{key}": value for key, value in metrics.items() if isinstance(value, float)}, step=loop.step)
            if _is_better(metrics, best_metrics, config.select_metric) and loop.epoch_can_be_kept():
                best_state, best_epoch, best_metrics = trainable_state(peft_model), epoch + 1, metrics
            if accelerator.is_main_process:
                logger.info("Epoch %d: validation accuracy %.4f, macro F1 %.4f, loss %.4f", epoch + 1, metrics["accuracy"], metrics["macro_f1"],
                            metrics["loss"])
    elapsed_s = time.perf_counter() - started

    _load_trainable(peft_model, best_state)
    peft_model.eval()
    if accelerator.is_main_process:
        logger.info("Kept epoch %d of %d (%s %.4f)", best_epoch, config.epochs, config.select_metric, best_metrics[config.select_metric])
    return TrainResult(
        model=peft_model,
        metrics=best_metrics,
        best_epoch=best_epoch,
        history=history,
        optimizer_steps=loop.step,
        allocation_calls=loop.allocation_calls,
        samples_per_s=loop.samples / loop.train_s if loop.train_s else 0.0,
        tokens_per_s=loop.tokens / loop.train_s if loop.train_s else 0.0,
        elapsed_s=elapsed_s,
        precision=precision,
    )


class _Loop:
    """One epoch of micro-batches with gradient accumulation and AdaLoRA budget updates."""

    def __init__(self, accelerator, model, peft_model, optimizer, scheduler, config: TrainConfig, total_steps: int):
        self.accelerator, self.model, self.peft_model = accelerator, model, peft_model
        self.optimizer, self.scheduler = optimizer, scheduler
        self.config, self.total_steps = config, total_steps
        self.step = self.allocation_calls = self.samples = self.tokens = 0
        self.train_s = 0.0
        self.is_adalora = config.method == "adalora" and hasattr(peft_model.base_model, "update_and_allocate")

    def run_epoch(self, loader, epoch: int) -> None:
        self.model.train()
        progress = tqdm(loader, desc=f"epoch {epoch + 1}/{self.config.epochs}", disable=not self.accelerator.is_local_main_process, leave=False)
        started = time.perf_counter()
        for batch in progress:
            with self.accelerator.accumulate(self.model):
                with autocast(self.config.precision, self.accelerator.device):
                    loss = self.model(**model_inputs(batch)).loss
                self.accelerator.backward(loss)
                if self.accelerator.sync_gradients:
                    self.accelerator.clip_grad_norm_(self.model.parameters(), 1.0)
                self.optimizer.step()
                if self.accelerator.sync_gradients:
                    self._after_optimizer_step()
                self.optimizer.zero_grad()
            self.samples += len(batch["labels"]) * self.accelerator.num_processes
            self.tokens += int(batch["attention_mask"].sum()) * self.accelerator.num_processes
            progress.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        self.train_s += time.perf_counter() - started

    def _after_optimizer_step(self) -> None:
        self.scheduler.step()
        if self.is_adalora:
            # AdaLoRA scores importance from the gradients, so this runs after the optimizer step
            # and before zero_grad, once per optimizer step rather than once per micro-batch.
            self.peft_model.base_model.update_and_allocate(self.step)
            self.allocation_calls += 1
        self.step += 1

    def epoch_can_be_kept(self) -> bool:
        """For AdaLoRA, only epochs after the final budget allocation carry the final rank pattern."""
        if not self.is_adalora:
            return True
        peft_config = self.peft_model.peft_config["default"]
        return self.step > self.total_steps - peft_config.tfinal


@torch.no_grad()
def evaluate_loader(accelerator: Accelerator, model, loader, labels: list[str], precision: str = "fp32") -> dict:
    """Compute loss and classification metrics over a prepared loader, gathered from all processes."""
    model.eval()
    all_logits, all_labels = [], []
    for batch in loader:
        with autocast(precision, accelerator.device):
            logits = model(**{k: v for k, v in model_inputs(batch).items() if k != "labels"}).logits
        logits, batch_labels = accelerator.gather_for_metrics((logits, batch["labels"]))
        all_logits.append(logits.float().cpu())
        all_labels.append(batch_labels.cpu())
    logits, targets = torch.cat(all_logits), torch.cat(all_labels)
    metrics = classification_metrics(targets.tolist(), logits.argmax(-1).tolist(), labels)
    metrics["loss"] = float(torch.nn.functional.cross_entropy(logits, targets))
    return metrics


def _peft_model_of(module: torch.nn.Module):
    return module.peft_model if isinstance(module, CachedPrefixModel) else module


def _is_better(metrics: dict, best: dict | None, name: str) -> bool:
    if best is None:
        return True
    return metrics[name] < best[name] if name == "loss" else metrics[name] > best[name]


def _load_trainable(model: torch.nn.Module, state: dict[str, torch.Tensor] | None) -> None:
    if state is None:
        return
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            parameters[name].copy_(value)
