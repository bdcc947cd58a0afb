"""Shared fixtures: a tiny random BERT checkpoint, the packaged MiniLM base and the real data file."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

# Fail at once on a wrong model path instead of waiting for a network time-out.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HOMEDEPOT_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "homedepot" / "train.csv"

WORDS = (
    "angle bracket deck paint drill bit faucet chrome shower kit wood screw light bulb led white black "
    "steel brass door hinge tile floor fan ceiling hose garden rake pipe valve saw blade cordless"
).split()


def write_tiny_bert(folder: Path, *, layers: int = 2, hidden: int = 32, seed: int = 0) -> Path:
    """Save a randomly initialised BERT backbone and a word-level tokenizer to `folder`."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + [f"{digit}" for digit in range(10)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
        intermediate_size=2 * hidden, max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def write_homedepot_csv(path: Path, rows: list[tuple], encoding: str = "iso-8859-1") -> Path:
    """Write (product_uid, title, query, relevance) rows in the Home Depot CSV format."""
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        writer.writerow(["id", "product_uid", "product_title", "search_term", "relevance"])
        for index, (uid, title, query, relevance) in enumerate(rows, start=1):
            writer.writerow([index, uid, title, query, relevance])
    return path


def synthetic_rows(count: int, seed: int = 0) -> list[tuple]:
    """Rows whose relevance depends on whether query and title share a word, so a model can learn it."""
    import random

    generator = random.Random(seed)
    rows = []
    for index in range(count):
        title_words = generator.sample(WORDS, 4)
        if index % 3 == 0:
            query, relevance = " ".join(title_words[:2]), 3.0
        elif index % 3 == 1:
            query, relevance = title_words[0] + " " + generator.choice(WORDS), 2.33
        else:
            query, relevance = " ".join(generator.sample([w for w in WORDS if w not in title_words], 2)), 1.0
        rows.append((100000 + index, " ".join(title_words), query, relevance))
    return rows


@pytest.fixture
def increment_csv(tmp_path) -> Path:
    return write_homedepot_csv(tmp_path / "increment.csv", synthetic_rows(120))


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    from adapters.base import default_base_path
    from adapters.errors import AdaptersError

    try:
        return default_base_path()
    except AdaptersError as error:
        pytest.skip(f"the packaged MiniLM base is not installed: {error}")


@pytest.fixture(scope="session")
def homedepot_csv() -> Path:
    if not HOMEDEPOT_CSV.is_file():
        pytest.skip(f"real Home Depot data not found at {HOMEDEPOT_CSV}; it lives in ../shared/data next to the checkout")
    return HOMEDEPOT_CSV
