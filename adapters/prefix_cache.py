"""Frozen-prefix caching: compute the lowest encoder layers once per increment, train the rest.

With `--freeze-layers N`, the embeddings and the lowest N layers carry no adapters and no trainable
weights, so their output for a row is the same in every epoch. `PrefixCache` computes those hidden
states once, in eval mode, and `CachedPrefixModel` runs only the upper layers, the pooler and the
head on them. The frozen layers then run without dropout, which is the only difference from an
uncached step (a test checks that with dropout off both give the same loss and gradients).
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn
from torch.utils.data import Dataset
from transformers.masking_utils import create_bidirectional_mask

from adapters.modeling import pad_rows

logger = logging.getLogger(__name__)


def bert_of(peft_model) -> nn.Module:
    """Return the BertModel inside a peft sequence classifier."""
    return peft_model.get_base_model().bert


@torch.no_grad()
def compute_prefix(peft_model, input_ids: list[list[int]], token_type_ids: list[list[int]], layers: int, batch_size: int = 128) -> list[torch.Tensor]:
    """Return, for every row, the hidden states after the lowest `layers` layers: one (tokens, hidden) tensor each."""
    bert = bert_of(peft_model)
    was_training = bert.training
    bert.eval()
    order = sorted(range(len(input_ids)), key=lambda index: len(input_ids[index]))
    states: list[torch.Tensor | None] = [None] * len(input_ids)
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        batch = pad_rows([input_ids[i] for i in indices], [token_type_ids[i] for i in indices])
        hidden = bert.embeddings(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"])
        attention = create_bidirectional_mask(config=bert.config, inputs_embeds=hidden, attention_mask=batch["attention_mask"])
        for layer in bert.encoder.layer[:layers]:
            hidden = layer(hidden, attention)
        for row, index in enumerate(indices):
            states[index] = hidden[row, : len(input_ids[index])].clone()
    bert.train(was_training)
    return states


def cache_bytes(lengths: list[int], hidden_size: int) -> int:
    """Memory the cache takes in float32: one hidden vector per real token."""
    return sum(lengths) * hidden_size * 4


class CachedRows(Dataset):
    """Cached hidden states and labels of an increment's train part, one row per item."""

    def __init__(self, states: list[torch.Tensor], labels: list[int]):
        self.states, self.labels = states, labels

    def __len__(self) -> int:
        return len(self.states)

    def __getitem__(self, index: int) -> dict:
        return {"prefix": self.states[index], "labels": self.labels[index]}


def collate_cached(rows: list[dict]) -> dict:
    """Pad cached hidden states to the longest row of the batch and build the attention mask."""
    width = max(row["prefix"].shape[0] for row in rows)
    hidden = rows[0]["prefix"].shape[1]
    prefix = torch.zeros(len(rows), width, hidden)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for index, row in enumerate(rows):
        prefix[index, : row["prefix"].shape[0]] = row["prefix"]
        mask[index, : row["prefix"].shape[0]] = 1
    return {"prefix": prefix, "attention_mask": mask, "labels": torch.tensor([row["labels"] for row in rows])}


class CachedPrefixModel(nn.Module):
    """Run a peft BERT classifier from cached hidden states: upper layers, pooler, dropout, head.

    The loss is the same cross-entropy that BertForSequenceClassification computes for single-label
    classification.
    """

    def __init__(self, peft_model, layers: int):
        super().__init__()
        self.peft_model, self.layers = peft_model, layers

    def forward(self, prefix: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None):
        classifier_model = self.peft_model.get_base_model()
        bert = classifier_model.bert
        attention = create_bidirectional_mask(config=bert.config, inputs_embeds=prefix, attention_mask=attention_mask)
        hidden = prefix
        for layer in bert.encoder.layer[self.layers :]:
            hidden = layer(hidden, attention)
        pooled = bert.pooler(hidden)
        logits = classifier_model.classifier(classifier_model.dropout(pooled))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return _Output(loss=loss, logits=logits)


class _Output(dict):
    def __getattr__(self, name):
        return self[name]


def fits_budget(lengths: list[int], hidden_size: int, budget_mb: float) -> bool:
    """True when the cache for these rows fits in `budget_mb` megabytes."""
    needed = cache_bytes(lengths, hidden_size)
    fits = needed <= budget_mb * 2**20
    if not fits:
        logger.warning(
            "Frozen-prefix cache needs %.0f MB, more than --cache-budget-mb %.0f; recomputing the frozen layers every epoch instead",
            needed / 2**20, budget_mb,
        )
    return fits and math.isfinite(budget_mb)
