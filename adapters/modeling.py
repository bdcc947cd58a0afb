"""Build peft models for training and load published adapters for inference.

Holds the peft configuration for LoRA and AdaLoRA, the AdaLoRA schedule check, and the
tokenisation shared by training, evaluation and benchmarks.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path

import datasets
import torch
from peft import AdaLoraConfig, LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from adapters.config import TrainConfig
from adapters.errors import AdaptersError

logger = logging.getLogger(__name__)


def adalora_schedule(config: TrainConfig, total_steps: int) -> tuple[int, int, int]:
    """Return AdaLoRA's (tinit, tfinal, deltaT) in optimizer steps for a run of `total_steps`.

    Unset values default to 10%, 30% and 2% of the steps. The budget is only reallocated between
    step tinit and step total_steps - tfinal, so that window must hold at least one step.

    Raises:
        AdaptersError: the window is empty; the message names all three numbers.
    """
    tinit = config.tinit if config.tinit is not None else int(0.1 * total_steps)
    tfinal = config.tfinal if config.tfinal is not None else max(1, int(0.3 * total_steps))
    delta_t = config.delta_t if config.delta_t is not None else max(1, int(0.02 * total_steps))
    if tinit < 0 or tfinal < 1 or delta_t < 1:
        raise AdaptersError(f"AdaLoRA needs tinit >= 0, tfinal >= 1 and delta_t >= 1, got {tinit}, {tfinal}, {delta_t}")
    if tinit + tfinal >= total_steps:
        raise AdaptersError(
            f"AdaLoRA schedule leaves no budgeting phase: tinit {tinit} + tfinal {tfinal} >= total steps {total_steps}; "
            "lower --tinit or --tfinal, or train more steps (more epochs, smaller batches or less accumulation)"
        )
    return tinit, tfinal, delta_t


def peft_config(config: TrainConfig, num_layers: int, total_steps: int):
    """Build the peft LoraConfig or AdaLoraConfig for a sequence-classification model.

    peft's SEQ_CLS task type adds the classifier head to `modules_to_save`, so the head is trained
    and saved with the adapter, next to the modules the config names (the pooler by default).
    """
    if config.freeze_layers >= num_layers:
        raise AdaptersError(f"--freeze-layers {config.freeze_layers} leaves no layer of {num_layers} for adapters; use at most {num_layers - 1}")
    layers = list(range(config.freeze_layers, num_layers)) if config.freeze_layers else None
    common = dict(
        task_type=TaskType.SEQ_CLS,
        target_modules=list(config.target_modules),
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        layers_to_transform=layers,
        layers_pattern="layer" if layers else None,
        modules_to_save=list(config.modules_to_save) or None,
    )
    if config.method == "lora":
        return LoraConfig(r=config.r, **common)
    tinit, tfinal, delta_t = adalora_schedule(config, total_steps)
    return AdaLoraConfig(
        init_r=config.init_r,
        target_r=config.target_r,
        tinit=tinit,
        tfinal=tfinal,
        deltaT=delta_t,
        total_step=total_steps,
        orth_reg_weight=config.orth_reg_weight,
        **common,
    )


def wrap_for_training(model: PreTrainedModel, config: TrainConfig, total_steps: int) -> PeftModel:
    """Freeze the base and inject adapters, so only the adapters and `modules_to_save` are trained."""
    num_layers = model.config.num_hidden_layers
    lora_config = peft_config(config, num_layers, total_steps)
    try:
        peft_model = get_peft_model(model, lora_config)
    except ValueError as error:
        raise AdaptersError(f"cannot inject adapters into {list(config.target_modules)}: {error}; check --target-modules") from None
    if config.gradient_checkpointing:
        # With a frozen base, checkpointed segments need inputs that require grad, or the
        # adapter weights inside them would get no gradient.
        peft_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        peft_model.enable_input_require_grads()
    return peft_model


def load_adapter(model: PreTrainedModel, adapter_dir: str | Path, *, trainable: bool = False) -> PeftModel:
    """Load a peft adapter folder onto `model` with plain `PeftModel.from_pretrained`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ff]ound missing adapter keys.*")
        # A saved AdaLoRA adapter is already pruned to its rank pattern, so peft's notice that the
        # pattern's lora_E keys match no module on reload is expected (tests compare the logits).
        warnings.filterwarnings("ignore", message=".*rank_pattern keys did not match.*")
        try:
            peft_model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
        except (ValueError, RuntimeError, KeyError) as error:
            message = str(error).strip().splitlines()[0]
            raise AdaptersError(f"cannot load adapter {str(adapter_dir)!r} onto the base: {message}") from None
    if not trainable:
        peft_model.eval()
    return peft_model


def encode(dataset: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> datasets.Dataset:
    """Tokenise text and text_pair into input ids without padding; keep `labels` and `length`.

    Pairs longer than `max_length` are truncated longest-first, so whichever side is long gives up
    tokens and the encoding still ends with the separator token.
    """
    def tokenize(batch):
        pairs = batch["text_pair"] if any(pair is not None for pair in batch["text_pair"]) else None
        encoded = tokenizer(batch["text"], pairs, truncation="longest_first", max_length=max_length)
        encoded["labels"] = batch["label"]
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return encoded

    columns = [name for name in dataset.column_names]
    # Naming the result's fingerprint spares datasets from hashing the tokenizer, which takes
    # seconds per call for a full vocabulary.
    key = f"{dataset._fingerprint}|{getattr(tokenizer, 'name_or_path', '')}|{len(tokenizer)}|{max_length}"
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
    return dataset.map(tokenize, batched=True, remove_columns=columns, desc=None, new_fingerprint=fingerprint)


def pad_rows(input_ids: list[list[int]], token_type_ids: list[list[int]] | None = None, pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Pad token rows on the right to the longest one and build the attention mask, as tensors."""
    width = max(len(row) for row in input_ids)
    batch = {
        "input_ids": torch.tensor([row + [pad_id] * (width - len(row)) for row in input_ids]),
        "attention_mask": torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in input_ids]),
    }
    if token_type_ids is not None:
        batch["token_type_ids"] = torch.tensor([row + [0] * (width - len(row)) for row in token_type_ids])
    return batch


class TokenRows(torch.utils.data.Dataset):
    """Tokenised rows held as Python lists; items are row indices and `collate` pads a batch of them.

    Reading all columns once and padding by hand avoids an Arrow read and a tokenizer call per row,
    which cost more than the model's forward pass on short pairs.
    """

    def __init__(self, encoded: datasets.Dataset, pad_id: int = 0):
        columns = encoded.to_dict()
        self.input_ids = columns["input_ids"]
        self.token_type_ids = columns.get("token_type_ids")
        self.labels = columns.get("labels")
        self.pad_id = pad_id

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> int:
        return index

    def collate(self, indices: list[int]) -> dict[str, torch.Tensor]:
        types = [self.token_type_ids[i] for i in indices] if self.token_type_ids is not None else None
        batch = pad_rows([self.input_ids[i] for i in indices], types, self.pad_id)
        if self.labels is not None:
            batch["labels"] = torch.tensor([self.labels[i] for i in indices])
        return batch


def model_inputs(batch: dict) -> dict:
    """Keep only the tensors the model's forward takes."""
    return {key: value for key, value in batch.items() if key in ("input_ids", "attention_mask", "token_type_ids", "labels", "prefix")}


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copy every trainable parameter, for keeping the best epoch."""
    return {name: param.detach().clone() for name, param in model.named_parameters() if param.requires_grad}
