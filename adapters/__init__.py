"""Incremental LoRA and AdaLoRA adapters for BERT ranking models.

Each data increment trains one adapter on a frozen base, the adapter is published to a versioned
registry, and chosen versions are merged into one deployable `transformers` model.
"""

__version__ = "0.1.0"
